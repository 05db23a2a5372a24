"""Benchmark of ``hashlearn serve`` on 127.0.0.1: throughput, latency, model-backed queries,
and hostile clients.

Each server is the real ``hashlearn serve`` command in a subprocess. The load generator
is one process multiplexing raw keep-alive sockets with ``selectors`` (no per-request
Python HTTP client overhead, no threads fighting for the GIL); it shares the machine's
cores with the server, so the tables record the load average and CPU time of both.
Every loop is bounded in count and time; nothing but 127.0.0.1 is ever contacted.

    python benchmarks/serve.py                 # everything, ~3 min; results/serve.{md,json}
    python benchmarks/serve.py --quick         # a smoke run (tests use it)
    python benchmarks/serve.py --only load     # load | model | hostile
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"


# --- the load generator --------------------------------------------------------------
def http_request(path: str, body: dict | bytes | None = None, headers: dict | None = None, method: str | None = None) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body, separators=(",", ":")).encode()
    method = method or ("GET" if data is None else "POST")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if data is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (data or b"")


class _Connection:
    def __init__(self, address, requests, rng):
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.requests, self.rng = requests, rng
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.pending = b""

    def next_request(self):
        self.pending = self.requests[self.rng.integers(len(self.requests))]
        self.buffer.clear()
        self.sent_at = time.perf_counter()
        sent = self.sock.send(self.pending)
        self.pending = self.pending[sent:]

    def response(self):
        """``(status, body)`` once a whole response is buffered, else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        match = re.search(r"(?im)^content-length:\s*(\d+)", head)
        length = int(match.group(1)) if match else 0
        if len(self.buffer) < end + 4 + length:
            return None
        status = int(head.split(" ", 2)[1])
        return status, bytes(self.buffer[end + 4 : end + 4 + length])


def run_load(address, requests: list[bytes], clients: int, duration_s: float, max_requests: int, seed: int = 0,
             check=None) -> dict:
    """``clients`` keep-alive connections, each sending one request after another (chosen
    at random from ``requests``) for ``duration_s`` seconds or ``max_requests`` in all.
    Returns requests/s, latency percentiles (ms), error count and the statuses seen."""
    rng = np.random.default_rng(seed)
    selector = selectors.DefaultSelector()
    connections = [_Connection(address, requests, rng) for _ in range(clients)]
    latencies, statuses, errors = [], {}, 0
    start = time.perf_counter()
    deadline = start + duration_s
    for connection in connections:
        connection.next_request()
        selector.register(connection.sock, selectors.EVENT_READ, connection)
    done = 0
    open_connections = len(connections)
    while open_connections and time.perf_counter() < deadline + 10:
        for key, _ in selector.select(timeout=1.0):
            connection = key.data
            try:
                chunk = connection.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                errors += 1
                selector.unregister(connection.sock)
                connection.sock.close()
                open_connections -= 1
                continue
            connection.buffer += chunk
            answer = connection.response()
            if answer is None:
                continue
            latencies.append(time.perf_counter() - connection.sent_at)
            status, body = answer
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200 or (check is not None and not check(body)):
                errors += 1
            done += 1
            if done + open_connections > max_requests or time.perf_counter() >= deadline:
                selector.unregister(connection.sock)
                connection.sock.close()
                open_connections -= 1
            else:
                connection.next_request()
    elapsed = time.perf_counter() - start
    for connection in connections:
        try:
            connection.sock.close()
        except OSError:
            pass
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"clients": clients, "requests": done, "seconds": round(elapsed, 3), "requests_per_s": round(done / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 3), "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "max_ms": round(float(lat.max()), 3), "errors": errors, "statuses": {str(k): v for k, v in sorted(statuses.items())}}


# --- the server under test -----------------------------------------------------------
class Server:
    """``hashlearn serve`` in a subprocess on 127.0.0.1 with a free port."""

    def __init__(self, *args: str, env: dict | None = None):
        full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        self.process = subprocess.Popen([sys.executable, "-m", "hashlearn", "serve", "--host", HOST, "--port", "0", "-q", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line!r} {self.process.stderr.read()[-2000:]}")
        self.address = (HOST, int(match.group(1)))
        import psutil

        self.ps = psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return round(self.ps.memory_info().rss / 2**20, 1)

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
