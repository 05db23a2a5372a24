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
        # stderr to a file: a pipe nobody reads would block the server once its log fills the pipe
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "hashlearn", "serve", "--host", HOST, "--port", "0", "-q", *args],
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, env=full_env)
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.process.kill()
            self.process.wait(10)
            self.log.seek(0)
            raise RuntimeError(f"the server did not start: {line!r} {self.log.read()[-2000:]}")
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


def machine() -> dict:
    import psutil

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-m", "hashlearn", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"hashlearn {' '.join(args)} failed: {result.stderr[-2000:]}")


def measured(server: Server, requests, clients, duration_s, max_requests, label: str, **extra) -> dict:
    """One load run with the server's and this process's CPU, memory and the load average around it."""
    load_before = os.getloadavg()[0]
    rss_before, cpu_before, own_before = server.rss_mb(), server.cpu_s(), time.process_time()
    result = run_load(server.address, requests, clients, duration_s, max_requests)
    seconds = result["seconds"]
    result.update(label=label, server_rss_mb_before=rss_before, server_rss_mb_after=server.rss_mb(),
                  server_cpu_share=round((server.cpu_s() - cpu_before) / seconds, 2),
                  client_cpu_share=round((time.process_time() - own_before) / seconds, 2),
                  load_avg_1min=round((load_before + os.getloadavg()[0]) / 2, 2), **extra)
    print(json.dumps(result), flush=True)
    return result


def random_code_requests(n_bytes: int, batch: int, count: int, rng) -> list[bytes]:
    return [http_request("/search", {"queries": [rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes().hex() for _ in range(batch)],
                                     "k": 10}) for _ in range(count)]


# --- the three parts ----------------------------------------------------------------------
def bench_load(folder: Path, scale: float, quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    n = 2_000 if quick else 100_000
    np.save(folder / "codes.npy", rng.integers(0, 256, size=(n, 8), dtype=np.uint8))
    cli("index", "build", "--codes", str(folder / "codes.npy"), "-o", str(folder / "flat.hlx"), "-q")
    server = Server("--index", str(folder / "flat.hlx"))
    rows = []
    try:
        singles, batches = random_code_requests(8, 1, 500, rng), random_code_requests(8, 100, 50, rng)
        run_load(server.address, singles, 8, 1.0 * scale, 2000)  # warm-up, not recorded
        for batch, requests in ((1, singles), (100, batches)):
            for clients in (1, 8, 64):
                rows.append(measured(server, requests, clients, 5.0 * scale, 200_000, f"{n // 1000}k x 64-bit Flat",
                                     index_size=n, batch=batch))
    finally:
        server.close()
    return rows


def bench_model(folder: Path, scale: float, quick: bool) -> list[dict]:
    from hashlearn.data import load_dataset

    run = folder / "run"
    cli("train", "--method", "csq", "--bits", "64", "--dataset", "digits", "--epochs", "1" if quick else "5", "--run-dir", str(run), "-q")
    cli("index", "build", "--model", str(run), "--dataset", "digits", "--part", "all", "-o", str(folder / "digits.hlx"), "-q")
    X = load_dataset("digits").data
    rng = np.random.default_rng(1)
    server = Server("--index", str(folder / "digits.hlx"), "--model", str(run))
    rows = []
    try:
        from PIL import Image

        def png(row):
            buffer = io.BytesIO()
            Image.fromarray(np.round(row.reshape(8, 8) * 255).astype(np.uint8)).save(buffer, "PNG")
            return base64.b64encode(buffer.getvalue()).decode()

        inputs1 = [http_request("/search", {"inputs": X[[i]].tolist(), "k": 10}) for i in rng.integers(len(X), size=300)]
        inputs100 = [http_request("/search", {"inputs": X[rng.integers(len(X), size=100)].tolist(), "k": 10}) for _ in range(20)]
        images1 = [http_request("/search", {"images": [png(X[i])], "k": 10}) for i in rng.integers(len(X), size=300)]
        run_load(server.address, inputs1, 8, 1.0 * scale, 500)
        for label, requests, batch in (("inputs", inputs1, 1), ("inputs", inputs100, 100), ("images (PNG)", images1, 1)):
            for clients in (1, 8):
                rows.append(measured(server, requests, clients, 4.0 * scale, 100_000, f"digits CSQ 64-bit, {label}",
                                     index_size=len(X), batch=batch))
    finally:
        server.close()
    return rows


# --- hostile clients ------------------------------------------------------------------------
def _answer(sock: socket.socket, limit_s: float) -> int | None:
    """The status of the server's answer on ``sock`` (None: no answer within ``limit_s``)."""
    sock.settimeout(limit_s)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def _send_then_answer(address, raw: bytes, then=None, limit_s: float = 10.0) -> tuple[int | None, float]:
    started = time.perf_counter()
    with socket.create_connection(address, timeout=limit_s) as sock:
        try:
            sock.sendall(raw)
            if then is not None:
                then(sock)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = _answer(sock, limit_s)
    return status, time.perf_counter() - started


def _stream_chunked(total: int):
    def send(sock):
        chunk = b"%x\r\n%s\r\n" % (65536, b"7" * 65536)
        for _ in range(total // 65536):
            sock.sendall(chunk)
    return send


def _trickle(pieces: list[bytes], pause_s: float, max_s: float):
    def send(sock):
        started = time.perf_counter()
        for piece in pieces:
            if time.perf_counter() - started > max_s:
                return
            sock.sendall(piece)
            time.sleep(pause_s)
    return send


def hostile_requests(address, n_slow: int, n_bytes: int) -> list[tuple[str, bytes, object]]:
    """``(name, first bytes, what follows)`` of every attack."""
    def post(body: bytes, *headers: str, path: bytes = b"/search") -> bytes:
        return b"\r\n".join([b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *(h.encode() for h in headers), b"", body])

    good = json.dumps({"queries": ["00" * n_bytes], "k": 1}).encode()
    bomb_k = json.dumps({"queries": ["00" * n_bytes] * 10_000, "k": 10_000}).encode()
    bomb_range = json.dumps({"queries": ["00" * n_bytes] * 10_000, "radius": 64}, separators=(",", ":")).encode()
    unknown = json.dumps({"queries": ["00" * n_bytes], "topk": 5}).encode()
    slow_headers = [b"POST /search HTTP/1.1\r\n"] + [b"X-Slow-%d: y\r\n" % i for i in range(100)]
    attacks = [
        ("Content-Length: -1 with a 64 KiB body", post(b"x" * 65536, "Content-Length: -1"), None),
        ("duplicate Content-Length", post(good, f"Content-Length: {len(good)}", f"Content-Length: {len(good)}"), None),
        ("Content-Length + chunked", post(good, f"Content-Length: {len(good)}", "Transfer-Encoding: chunked"), None),
        ("Content-Length: 1 GiB announced", post(b"", f"Content-Length: {1 << 30}"), None),
        ("chunked 64 MiB body", post(b"", "Transfer-Encoding: chunked"), _stream_chunked(64 << 20)),
        ("1 MiB of headers", b"GET /health HTTP/1.1\r\n", _trickle([b"X-Big: " + b"a" * 65536 + b"\r\n"] * 16, 0.0, 5)),
        ("work bomb: 10,000 queries x k=10,000", post(bomb_k, f"Content-Length: {len(bomb_k)}"), None),
        ("work bomb: range radius 64 x 10,000 queries", post(bomb_range, f"Content-Length: {len(bomb_range)}", path=b"/range_search"), None),
        ("unknown key 'topk'", post(unknown, f"Content-Length: {len(unknown)}"), None),
    ]
    attacks += [(f"slowloris headers ({n_slow} clients)", b"", _trickle(slow_headers, 0.2, 30))] * n_slow
    attacks += [(f"slow body ({n_slow} clients)", post(b'{"queries": [', "Content-Length: 5000"), _trickle([b" "] * 200, 0.2, 30))] * n_slow
    return attacks


def _hostile_worker(address, n_slow, n_bytes, n_idle, queue):
    from concurrent.futures import ThreadPoolExecutor

    idle = []
    for _ in range(n_idle):  # connections that open and say nothing
        try:
            idle.append(socket.create_connection(address, timeout=5))
        except OSError:
            break
    attacks = hostile_requests(address, n_slow, n_bytes)
    with ThreadPoolExecutor(max_workers=len(attacks)) as pool:
        futures = [(name, pool.submit(_send_then_answer, address, raw, then)) for name, raw, then in attacks]
        results = []
        for name, future in futures:
            try:
                status, seconds = future.result(60)
            except Exception as error:  # noqa: BLE001 -- reported, not hidden
                status, seconds = f"client error {type(error).__name__}", float("nan")
            results.append({"attack": name, "status": status, "seconds": round(seconds, 3)})
    closed = 0
    for sock in idle:
        sock.settimeout(8)
        try:
            closed += sock.recv(1) == b""
        except (socket.timeout, OSError):
            pass
        sock.close()
    results.append({"attack": f"{n_idle} idle connections", "status": f"{closed} closed by the server", "seconds": None})
    queue.put(results)


def bench_hostile(folder: Path, scale: float, quick: bool) -> dict:
    import multiprocessing

    rng = np.random.default_rng(2)
    path = folder / "flat.hlx"
    if not path.exists():
        np.save(folder / "codes.npy", rng.integers(0, 256, size=(2_000 if quick else 100_000, 8), dtype=np.uint8))
        cli("index", "build", "--codes", str(folder / "codes.npy"), "-o", str(path), "-q")
    server = Server("--index", str(path), "--header-timeout", "1", "--body-timeout", "1")
    try:
        singles = random_code_requests(8, 1, 500, rng)
        run_load(server.address, singles, 8, 1.0, 2000)
        baseline = measured(server, singles, 8, 5.0 * scale, 200_000, "8 normal clients, no attack")
        rss_before = server.rss_mb()
        peak = [rss_before]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        queue = multiprocessing.get_context("fork").Queue()
        attacker = multiprocessing.get_context("fork").Process(
            target=_hostile_worker, args=(server.address, 5 if quick else 50, 8, 20 if quick else 300, queue))
        attacker.start()
        during = measured(server, singles, 8, 8.0 * scale, 400_000, "8 normal clients during the attack")
        attacks = queue.get(timeout=120)
        attacker.join(30)
        sampling.set()
        sampler.join(5)
        after = measured(server, singles, 8, 3.0 * scale, 200_000, "8 normal clients after the attack")
        return {"baseline": baseline, "during": during, "after": after, "attacks": attacks,
                "server_rss_mb": {"before": rss_before, "peak": round(peak[0], 1), "after": server.rss_mb()},
                "server_alive": server.process.poll() is None}
    finally:
        server.close()


# --- report ---------------------------------------------------------------------------------
def _load_table(rows: list[dict]) -> list[str]:
    lines = ["| setup | batch | clients | requests/s | queries/s | p50 ms | p99 ms | errors | server CPU | client CPU | load avg | server RSS MB before/after |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        batch = r.get("batch", 1)
        lines.append(f"| {r['label']} | {batch} | {r['clients']} | {r['requests_per_s']:,.0f} | {r['requests_per_s'] * batch:,.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['server_cpu_share']:.2f} | {r['client_cpu_share']:.2f} | "
                     f"{r['load_avg_1min']:.1f} | {r['server_rss_mb_before']:.0f} / {r['server_rss_mb_after']:.0f} |")
    return lines


def write_report(results: dict, path_md: Path, path_json: Path) -> None:
    path_json.write_text(json.dumps(results, indent=2) + "\n")
    out = ["# `hashlearn serve` benchmark", "",
           f"Machine: {results['machine']}. Server: `hashlearn serve` (FastAPI on uvicorn, httptools) in a subprocess on "
           "127.0.0.1; load generator: one process of raw keep-alive sockets (selectors), on the same cores. CPU columns are "
           "core-seconds per second (1.0 = one core busy). The load average is the 1-minute average over each run: other "
           "work ran on this machine at the same time. `python benchmarks/serve.py` reproduces every table.", ""]
    if results.get("load"):
        out += ["## Throughput and latency (k = 10, random 64-bit codes)", "", *_load_table(results["load"]), ""]
    if results.get("model"):
        out += ["## Model-backed queries (raw inputs or PNG images -> encode -> search)", "", *_load_table(results["model"]), ""]
    hostile = results.get("hostile")
    if hostile:
        rss = hostile["server_rss_mb"]
        out += ["## Hostile clients", "",
                "The server ran with `--header-timeout 1 --body-timeout 1` (defaults 5 s and 10 s) and otherwise default limits. "
                "All attacks start at once (one client process, one thread each) while 8 normal keep-alive clients keep "
                "searching.", "",
                "| attack | answer | seconds to answer |", "| --- | --- | ---: |"]
        grouped: dict[str, list] = {}
        for row in hostile["attacks"]:
            grouped.setdefault(row["attack"], []).append(row)
        for name, rows in grouped.items():
            statuses = sorted({str(r["status"]) for r in rows})
            seconds = [r["seconds"] for r in rows if isinstance(r["seconds"], (int, float))]
            when = "" if not seconds else (f"{max(seconds):.2f}" if len(seconds) == 1 else f"{min(seconds):.2f}-{max(seconds):.2f}")
            out.append(f"| {name} | {', '.join(statuses)} | {when} |")
        out += ["", f"Server memory (RSS): {rss['before']} MB before, {rss['peak']} MB peak, {rss['after']} MB after; "
                f"server alive afterwards: {hostile['server_alive']}.", "",
                *_load_table([hostile["baseline"], hostile["during"], hostile["after"]]), ""]
    out += results.get("notes", [])
    path_md.write_text("\n".join(out) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (a smoke test)")
    parser.add_argument("--only", choices=["load", "model", "hostile"], action="append", help="run only these parts")
    parser.add_argument("--out", default=str(RESULTS), help="folder for serve.md and serve.json")
    args = parser.parse_args(argv)
    parts = args.only or ["load", "model", "hostile"]
    scale = 0.2 if args.quick else 1.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path_json = out / "serve.json"
    results = json.loads(path_json.read_text()) if path_json.exists() and args.only else {}
    results["machine"] = machine()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for part in parts:
            results[part] = {"load": bench_load, "model": bench_model, "hostile": bench_hostile}[part](folder, scale, args.quick)
            write_report(results, out / "serve.md", path_json)  # partial results as they come
    return 0


if __name__ == "__main__":
    sys.exit(main())
