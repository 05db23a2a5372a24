"""The HTTP service: a real server on 127.0.0.1, real HTTP requests."""

from __future__ import annotations

import http.client
import json
import re
import threading

import numpy as np
import pytest

from hashlearn.codes import hamming_distances, reference_search
from hashlearn.index.flat import FlatIndex
from hashlearn.serve import make_server
from hashlearn.serve import server as server_module

N_BITS = 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(31)
    return rng.integers(0, 256, size=(400, N_BITS // 8), dtype=np.uint8), rng.integers(0, 256, size=(12, N_BITS // 8), dtype=np.uint8)


@pytest.fixture(scope="module")
def address(data):
    index = FlatIndex(N_BITS)
    index.add(data[0])
    index.search(data[1], 3), index.range_search(data[1], 3)  # compile the kernels before timing out requests
    server = make_server(index, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()
    thread.join(5)


def request(address, method, path, body=None, raw: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection(*address, timeout=60)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        connection.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_health_and_info(address):
    assert request(address, "GET", "/health") == (200, {"status": "ok", "ntotal": 400})
    status, info = request(address, "GET", "/info")
    assert status == 200 and info["kind"] == "flat" and info["n_bits"] == N_BITS and info["ntotal"] == 400


def test_search_hex_and_byte_lists(address, data):
    codes, queries = data
    body = {"queries": [q.tobytes().hex() if i % 2 else q.tolist() for i, q in enumerate(queries)], "k": 7}
    status, result = request(address, "POST", "/search", body)
    want = reference_search(queries, codes, 7)
    assert status == 200
    np.testing.assert_array_equal(result["ids"], want.ids)
    np.testing.assert_array_equal(result["distances"], want.distances)


def test_range_search(address, data):
    codes, queries = data
    status, result = request(address, "POST", "/range_search", {"queries": [q.tolist() for q in queries], "radius": 11})
    assert status == 200 and len(result["results"]) == len(queries)
    full = hamming_distances(queries, codes)
    for q, hits in enumerate(result["results"]):
        want = np.flatnonzero(full[q] <= 11)
        want = want[np.lexsort((want, full[q, want]))]
        assert hits["ids"] == want.tolist() and hits["distances"] == full[q, want].tolist()


def test_concurrent_requests(address, data):
    codes, queries = data
    want = reference_search(queries, codes, 3).ids.tolist()
    results = []

    def worker():
        results.append(request(address, "POST", "/search", {"queries": [q.tolist() for q in queries], "k": 3}))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 8 and all(status == 200 and r["ids"] == want for status, r in results)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"k": 3}, "'queries' must be a non-empty list"),
        ({"queries": [], "k": 3}, "'queries' must be a non-empty list"),
        ({"queries": ["zz00aa11"]}, r"queries\[0\] is not a valid hex string"),
        ({"queries": ["00ff"]}, r"queries\[0\] has 2 bytes; this index holds 4-byte \(32-bit\) codes"),
        ({"queries": [[1, 2, 3, 300]]}, r"queries\[0\] must be a hex string or a list of integers in 0..255"),
        ({"queries": [[1, 2, 3, 4]], "k": 0}, "'k' must be an integer in 1..10000"),
        ({"queries": [[1, 2, 3, 4]], "k": "5"}, "'k' must be an integer"),
    ],
)
def test_search_validation(address, body, message):
    status, result = request(address, "POST", "/search", body)
    assert status == 400
    assert re.search(message, result["error"]), result["error"]


def test_range_validation_and_http_errors(address):
    status, result = request(address, "POST", "/range_search", {"queries": [[0, 0, 0, 0]]})
    assert (status, result["error"]) == (400, "'radius' is required.")
    status, result = request(address, "POST", "/range_search", {"queries": [[0, 0, 0, 0]], "radius": 33})
    assert status == 400 and "0..32" in result["error"]
    assert request(address, "POST", "/search", raw=b"{not json")[0] == 400
    assert request(address, "POST", "/search", raw=b"[1, 2]")[1]["error"] == "the request body must be a JSON object."
    assert request(address, "GET", "/nowhere")[0] == 404
    assert request(address, "GET", "/search")[0] == 405
    assert request(address, "POST", "/health", {})[0] == 405


def test_body_size_limit(address, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_BODY_BYTES", 100)
    status, result = request(address, "POST", "/search", {"queries": [[0, 0, 0, 0]] * 50})
    assert status == 413 and "limit" in result["error"]


def test_make_server_rejects_non_index():
    with pytest.raises(TypeError, match="BinaryIndex"):
        make_server(np.zeros((2, 4), dtype=np.uint8), "127.0.0.1", 0)


def test_float_reranking_index_over_http(data):
    """A TwoStageIndex re-ranking by cosine takes query_vectors; missing results come back as null."""
    from hashlearn.index.two_stage import TwoStageIndex

    codes, queries = data
    rng = np.random.default_rng(32)
    vectors, query_vectors = rng.normal(size=(len(codes), 6)), rng.normal(size=(len(queries), 6))
    index = TwoStageIndex(N_BITS, FlatIndex(16), n_candidates=50, rerank="cosine")
    index.add(codes, vectors=vectors)
    small = TwoStageIndex(N_BITS, FlatIndex(16), rerank="l2")
    small.add(codes[:2], vectors=vectors[:2])
    for served, k in ((index, 5), (small, 4)):
        server = make_server(served, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            body = {"queries": [q.tolist() for q in queries], "k": k, "query_vectors": query_vectors.tolist()}
            status, result = request(server.server_address[:2], "POST", "/search", body)
            want = served.search(queries, k, query_vectors=query_vectors)
            assert status == 200 and result["ids"] == want.ids.tolist()
            got = np.array([[np.inf if d is None else d for d in row] for row in result["distances"]])
            np.testing.assert_allclose(got, want.distances, rtol=1e-6)
            status, result = request(server.server_address[:2], "POST", "/search", {"queries": [queries[0].tolist()]})
            assert status == 400 and "query_vectors is required" in result["error"]
            status, result = request(server.server_address[:2], "POST", "/search",
                                     {"queries": [queries[0].tolist()], "query_vectors": [[1, "x"]]})
            assert status == 400 and "query_vectors" in result["error"]
        finally:
            server.shutdown()
            server.server_close()
    assert (small.search(queries, 4, query_vectors=query_vectors).ids[:, 2:] == -1).all()
