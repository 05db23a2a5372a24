"""Hostile clients on raw sockets: bodies of every form of Content-Length, slow senders,
huge headers, idle and excess connections -- each answered with a JSON 4xx/503 and a
closed connection, while the server keeps serving."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

TIMEOUT = 0.6  # the header, body and keep-alive timeouts of the server under test
MAX_BODY = 2000


@pytest.fixture(scope="module")
def tight(index_file, start_server):
    return start_server("--index", str(index_file), "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT),
                           "--keep-alive", str(TIMEOUT), "--max-body", str(MAX_BODY), "--max-connections", "20")


def connect(server) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, dict, bool]:
    """``(status, headers, json body, closed)``: one response, then whether the server closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        rest += sock.recv(65536)
    sock.settimeout(3)
    try:
        closed = sock.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        closed = True
    return status, headers, json.loads(rest[:length]), closed


def exchange(server, raw: bytes):
    with connect(server) as sock:
        sock.sendall(raw)
        return read_response(sock)


def post(body: bytes, *headers: str) -> bytes:
    return b"\r\n".join([b"POST /search HTTP/1.1", b"Host: 127.0.0.1", *(h.encode() for h in headers), b"", body])


GOOD = b'{"queries": ["00000000"], "k": 2}'


@pytest.mark.parametrize(
    "raw, status, message",
    [
        (post(GOOD, "Content-Length: -1"), 400, "Invalid character in Content-Length"),
        (post(GOOD, "Content-Length: +33"), 400, "Invalid character in Content-Length"),
        (post(GOOD, f"Content-Length: {len(GOOD)}", f"Content-Length: {len(GOOD)}"), 400, "Duplicate Content-Length"),
        (post(GOOD, f"Content-Length: {len(GOOD)}", "Content-Length: 5"), 400, "Duplicate Content-Length"),
        (post(GOOD, f"Content-Length: {len(GOOD)}, {len(GOOD)}"), 400, "Invalid character in Content-Length"),
        (post(GOOD, "Content-Length: 99999999999999999999999"), 400, "Content-Length"),
        (post(b"5\r\nhello\r\n0\r\n\r\n", "Content-Length: 5", "Transfer-Encoding: chunked"), 400,
         "Transfer-Encoding can't be present with Content-Length"),
        (post(b"ffffffffffffffffffff\r\n", "Transfer-Encoding: chunked"), 400, "Chunk size overflow"),
        (post(b"", f"Content-Length: {MAX_BODY + 1}"), 413, f"exceeds the {MAX_BODY}-byte limit"),
        (post(b"", "Content-Length: 1000000000000"), 413, "exceeds"),
        (b"GARBAGE\r\n\r\n", 400, "invalid HTTP request"),
    ],
)
def test_malformed_or_oversized_bodies_are_refused(tight, raw, status, message):
    started = time.monotonic()
    got, headers, body, closed = exchange(tight, raw)
    assert (got, headers["content-type"]) == (status, "application/json")
    assert message in body["error"], body
    assert closed and time.monotonic() - started < 2  # answered at once, not after a timeout
    assert tight.get("/health").status_code == 200


def test_oversized_content_length_is_refused_before_the_body_is_sent(tight):
    with connect(tight) as sock:
        sock.sendall(post(b"", "Content-Length: 50000000"))  # headers only; 50 MB announced, none sent
        status, _, body, closed = read_response(sock)
    assert status == 413 and closed


def test_chunked_body_over_the_limit_is_cut_off(tight):
    chunk = b"x" * 500
    with connect(tight) as sock:
        sock.sendall(post(b"", "Transfer-Encoding: chunked"))
        status = None
        for _ in range(20):  # 10 kB in chunks of 500 bytes, far past the 2000-byte limit
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
        status, _, body, closed = read_response(sock)
    assert status == 413 and "limit" in body["error"] and closed


def test_chunked_body_within_the_limit_is_served(tight):
    body = GOOD
    raw = post(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), "Transfer-Encoding: chunked")
    status, _, result, _ = exchange(tight, raw + b"")
    assert status == 200 and len(result["ids"][0]) == 2


def test_slowloris_headers_time_out(tight):
    with connect(tight) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(40):  # a header line every 0.05 s: never finishing
            try:
                sock.sendall(b"X-Slow-%d: y\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
            if time.monotonic() - started > TIMEOUT + 0.5:
                break
        status, _, body, closed = read_response(sock)
        elapsed = time.monotonic() - started
    assert status == 408 and "headers not received" in body["error"] and closed
    assert TIMEOUT - 0.05 < elapsed < TIMEOUT + 1.5


def test_slow_body_times_out(tight):
    with connect(tight) as sock:
        started = time.monotonic()
        sock.sendall(post(b'{"queries"', f"Content-Length: {len(GOOD)}"))  # the rest never comes
        status, _, body, closed = read_response(sock)
    assert status == 408 and "body not received" in body["error"] and closed
    assert time.monotonic() - started < TIMEOUT + 1.5


def test_huge_headers_are_refused(tight):
    with connect(tight) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        try:
            for _ in range(20):  # 160 kB of headers: over the 64 kB limit
                sock.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body, closed = read_response(sock)
    assert status == 431 and "headers exceed" in body["error"] and closed


def test_idle_connections_are_closed(tight):
    with connect(tight) as sock:  # never sends a byte
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(1) == b""
        assert TIMEOUT - 0.05 < time.monotonic() - started < TIMEOUT + 1.5
    with connect(tight) as sock:  # idle after one keep-alive request
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")
        sock.settimeout(5)
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < TIMEOUT + 1.5


def test_keep_alive_serves_many_requests_on_one_connection(tight):
    with connect(tight) as sock:
        for _ in range(5):
            sock.sendall(post(GOOD, f"Content-Length: {len(GOOD)}"))
            data = b""
            while not data.endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200") and b"connection: close" not in data.lower()


def test_connections_over_the_limit_get_503(tight, helpers):
    held = [connect(tight) for _ in range(20)]  # the limit; the server keeps them (until idle)
    try:
        time.sleep(0.2)
        with connect(tight) as extra:
            extra.settimeout(5)
            data = extra.recv(65536)
        assert data.startswith(b"HTTP/1.1 503") and b"too many open connections" in data
    finally:
        for sock in held:
            sock.close()
    assert helpers.wait_for(lambda: tight.get("/health").status_code == 200, 5)


def test_server_sets_tcp_nodelay_on_accepted_sockets(digits_codes):
    """In process: read TCP_NODELAY back from the server's own socket of a live connection."""
    from hashlearn.index import FlatIndex
    from hashlearn.serve import make_server

    index = FlatIndex(32)
    index.add(digits_codes["db"])
    server = make_server(index, "127.0.0.1", 0)
    thread = server.start()
    try:
        with socket.create_connection(server.server_address, timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            connections = list(server._server.server_state.connections)
            assert len(connections) == 1
            server_side = connections[0].transport.get_extra_info("socket")
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert server.socket.getsockname()[0] == "127.0.0.1"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_server_survives_the_hostile_tests(tight, digits_codes):
    q = digits_codes["queries"][:3]
    response = tight.post("/search", {"queries": [row.tobytes().hex() for row in q], "k": 3})
    assert response.status_code == 200 and np.array(response.json()["ids"]).shape == (3, 3)
    assert tight.alive()
