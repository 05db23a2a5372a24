"""A small JSON-over-HTTP search service on the standard library's ``ThreadingHTTPServer``.

Endpoints (the full reference is ``docs/serve.md``):

- ``GET /health`` -> ``{"status": "ok", "ntotal": N}``
- ``GET /info`` -> kind, n_bits, n_bytes, ntotal, description of the index
- ``POST /search`` ``{"queries": [...], "k": 10}`` -> ``{"distances": [[...]], "ids": [[...]]}``
  (plus ``"query_vectors"`` for a :class:`~hashlearn.index.two_stage.TwoStageIndex` that re-ranks by float vectors)
- ``POST /range_search`` ``{"queries": [...], "radius": 5}`` -> ``{"results": [{"distances": [...], "ids": [...]}, ...]}``

A query is a hex string of the code's bytes (``"01ff..."``, ``2 * n_bytes`` characters)
or a list of ``n_bytes`` integers in ``0..255``. Bad requests get status 400 and
``{"error": "..."}`` naming the problem. Index calls are serialised by a lock (indexes are
not promised to be thread-safe); HTTP parsing and JSON encoding run concurrently.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from hashlearn.index.base import BinaryIndex

MAX_BODY_BYTES = 16 << 20
MAX_QUERIES = 10_000
MAX_K = 10_000


class RequestError(ValueError):
    """A client mistake: answered with ``status`` and the message."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def parse_queries(value, n_bytes: int) -> np.ndarray:
    """``[hex string | list of ints, ...]`` -> ``uint8 (nq, n_bytes)``; ``RequestError`` otherwise."""
    if not isinstance(value, list) or not value:
        raise RequestError("'queries' must be a non-empty list of codes (hex strings or lists of byte values).")
    if len(value) > MAX_QUERIES:
        raise RequestError(f"'queries' holds {len(value)} codes; at most {MAX_QUERIES} per request.")
    out = np.empty((len(value), n_bytes), dtype=np.uint8)
    for row, query in enumerate(value):
        if isinstance(query, str):
            try:
                data = bytes.fromhex(query)
            except ValueError:
                raise RequestError(f"queries[{row}] is not a valid hex string.") from None
        elif isinstance(query, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in query):
            data = bytes(query)
        else:
            raise RequestError(f"queries[{row}] must be a hex string or a list of integers in 0..255.")
        if len(data) != n_bytes:
            raise RequestError(f"queries[{row}] has {len(data)} bytes; this index holds {n_bytes}-byte ({n_bytes * 8}-bit) codes.")
        out[row] = np.frombuffer(data, dtype=np.uint8)
    return out


def _float_rows(value, n_rows: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n_rows:
        raise RequestError(f"'query_vectors' must be a list with one vector per query ({n_rows}).")
    try:
        vectors = np.array(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestError("'query_vectors' must be a list of equally long lists of numbers.") from None
    if vectors.ndim != 2:
        raise RequestError("'query_vectors' must be a list of equally long lists of numbers.")
    return vectors


def _int_field(body: dict, name: str, minimum: int, maximum: int, default=None) -> int:
    value = body.get(name, default)
    if value is None:
        raise RequestError(f"'{name}' is required.")
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise RequestError(f"'{name}' must be an integer in {minimum}..{maximum}, got {value!r:.40}.")
    return value


class SearchService:
    """The request logic, independent of HTTP (each method takes and returns JSON-ready dicts)."""

    def __init__(self, index: BinaryIndex):
        if not isinstance(index, BinaryIndex):
            raise TypeError(f"index must be a hashlearn BinaryIndex, got {type(index).__name__}.")
        self.index = index
        self._lock = threading.Lock()

    def health(self) -> dict:
        return {"status": "ok", "ntotal": int(self.index.ntotal)}

    def info(self) -> dict:
        from hashlearn import __version__

        index = self.index
        return {"kind": type(index).kind, "class": type(index).__name__, "n_bits": index.n_bits, "n_bytes": index.n_bytes,
                "ntotal": int(index.ntotal), "description": repr(index), "hashlearn_version": __version__}

    def search(self, body: dict) -> dict:
        queries = parse_queries(body.get("queries"), self.index.n_bytes)
        k = _int_field(body, "k", 1, MAX_K, default=10)
        extra = {}
        if "query_vectors" in body:  # a TwoStageIndex re-ranking by float vectors
            extra["query_vectors"] = _float_rows(body["query_vectors"], len(queries))
        with self._lock:
            result = self.index.search(queries, k, **extra)
        distances = result.distances.tolist()
        if result.distances.dtype.kind == "f":  # JSON has no infinity: missing float distances become null
            distances = [[d if np.isfinite(d) else None for d in row] for row in distances]
        return {"distances": distances, "ids": result.ids.tolist()}

    def range_search(self, body: dict) -> dict:
        queries = parse_queries(body.get("queries"), self.index.n_bytes)
        radius = _int_field(body, "radius", 0, self.index.n_bits)
        with self._lock:
            result = self.index.range_search(queries, radius)
        lims = result.lims
        return {"results": [{"distances": result.distances[lims[q] : lims[q + 1]].tolist(),
                             "ids": result.ids[lims[q] : lims[q + 1]].tolist()} for q in range(len(queries))]}


class _Handler(BaseHTTPRequestHandler):
    service: SearchService  # set on the subclass make_server builds
    server_version = "hashlearn"
    protocol_version = "HTTP/1.1"

    _GET = {"/health": "health", "/info": "info"}
    _POST = {"/search": "search", "/range_search": "range_search"}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch(self._GET, with_body=False)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(self._POST, with_body=True)

    def _dispatch(self, routes: dict, with_body: bool) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if path not in routes:
                other = self._POST if routes is self._GET else self._GET
                if path in other:
                    raise RequestError(f"{path} does not accept {self.command}.", HTTPStatus.METHOD_NOT_ALLOWED)
                raise RequestError(f"no endpoint {path}; endpoints: GET /health, GET /info, POST /search, POST /range_search.",
                                   HTTPStatus.NOT_FOUND)
            method = getattr(self.service, routes[path])
            payload = method(self._read_json()) if with_body else method()
            self._send(HTTPStatus.OK, payload)
        except RequestError as error:
            self._send(error.status, {"error": str(error)})
        except (ValueError, TypeError) as error:  # raised by the index on input it refuses
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except Exception as error:  # noqa: BLE001 -- the server must answer and keep running
            self.log_error("internal error: %r", error)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(error).__name__}"})

    def _read_json(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("a Content-Length header is required.", HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(length)
        except ValueError:
            raise RequestError("Content-Length must be an integer.") from None
        if length > MAX_BODY_BYTES:
            raise RequestError(f"request body of {length} bytes exceeds the {MAX_BODY_BYTES}-byte limit.",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(f"the request body is not valid JSON: {error}.") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object.")
        return body

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        if status != HTTPStatus.OK:
            self.close_connection = True  # an unread request body must not be taken for the next request
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def make_server(index: BinaryIndex, host: str = "127.0.0.1", port: int = 8080, *, verbose: bool = False) -> ThreadingHTTPServer:
    """A ready (bound, not yet serving) server for ``index``; port 0 picks a free port
    (read it back from ``server.server_address``). Run it with ``serve_forever()``."""
    handler = type("SearchHandler", (_Handler,), {"service": SearchService(index)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.verbose = verbose
    return server
