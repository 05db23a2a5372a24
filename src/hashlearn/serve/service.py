"""The request logic of the service, independent of HTTP.

:class:`SearchService` holds the served index (a private in-memory copy: the file on
disk may change or vanish without affecting it), checks every request against a
:class:`Budget` before any work starts, and turns requests into :class:`Job` objects the
HTTP layer runs -- small ones inline on the event loop, larger ones on a thread pool
(the compiled kernels release the GIL, so searches run in parallel).

Concurrency: readers never take a lock. A write (``--writable``) takes the writer lock,
builds a private copy of the index, applies the change, saves it atomically to the index
file and only then publishes the copy with one reference swap; a search holds the index
it started on, so it always sees one consistent version. A failed write leaves both the
file and the served index as they were.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np

from hashlearn.index.base import BinaryIndex

#: scan work (nq x ntotal code comparisons) up to which a search runs inline on the event loop
INLINE_SCAN = 1 << 18


class ServiceError(Exception):
    """A request the service refuses: HTTP ``status``, a message, and the field path."""

    def __init__(self, status: int, message: str, loc: tuple | None = None):
        super().__init__(message)
        self.status = status
        self.loc = loc


def _field_path(loc) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid(loc: tuple, message: str) -> ServiceError:
    """A 422 for the field at ``loc`` (``("queries", 3)`` -> ``"queries[3]: message"``)."""
    return ServiceError(422, f"{_field_path(loc)}: {message}", loc)


@dataclass(frozen=True)
class Budget:
    """Work one request may ask for; checked before any work starts.

    ``max_results`` bounds the result entries of one response (``nq x k`` for k-NN, the
    hits of a range search); ``max_scan`` bounds the code comparisons of a full scan
    (``nq x ntotal``). ``k`` beyond the index size is answered as padding, so it costs
    memory but no scan; ``radius`` is clamped to ``n_bits``.
    """

    max_queries: int = 10_000
    max_k: int = 10_000
    max_results: int = 1_000_000
    max_scan: int = 4_000_000_000

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Budget.{name} must be a positive integer, got {value!r}.")


class QueryEncoder(Protocol):
    """What model-backed serving needs from a model (see :mod:`hashlearn.serve.encoders`).

    ``fields`` names the request fields it takes (``"inputs"``, ``"texts"``, ``"images"``);
    a cross-modal model answers e.g. ``"texts"`` with codes of its text tower for an index
    of image codes -- the service only asks for codes.
    """

    n_bits: int
    fields: tuple[str, ...]

    def encode(self, field: str, values: list) -> np.ndarray: ...

    def describe(self) -> dict: ...


@dataclass
class Job:
    """Work for one request: ``run()`` returns the JSON-ready response; ``inline`` says it is
    small enough for the event loop."""

    run: Callable[[], Any]
    inline: bool


def parse_codes(values: list, n_bytes: int, field: str = "queries") -> np.ndarray:
    """``[hex string | list of byte values, ...]`` -> ``uint8 (n, n_bytes)``; a 422 naming the item otherwise."""
    if not values:
        raise invalid((field,), "must be a non-empty list of codes (hex strings or lists of byte values).")
    out = np.empty((len(values), n_bytes), dtype=np.uint8)
    if all(isinstance(value, str) for value in values):  # the common case, parsed in one call
        width = 2 * n_bytes
        if all(len(value) == width for value in values):
            try:
                out.reshape(-1)[:] = np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8)
                return out
            except ValueError:
                pass  # find the bad one below
    for row, value in enumerate(values):
        if isinstance(value, str):
            try:
                data = bytes.fromhex(value)
            except ValueError:
                raise invalid((field, row), "is not a valid hex string.") from None
        else:
            if not all(0 <= byte <= 255 for byte in value):
                raise invalid((field, row), "byte values must be integers in 0..255.")
            data = bytes(value)
        if len(data) != n_bytes:
            raise invalid((field, row), f"has {len(data)} bytes; this index holds {n_bytes}-byte ({n_bytes * 8}-bit) codes.")
        out[row] = np.frombuffer(data, dtype=np.uint8)
    return out


def _file_stamp(path: Path | None):
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return ("missing",)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class SearchService:
    """Search (and optionally write) one index; see the module docstring.

    Parameters
    ----------
    index : BinaryIndex
        The index to serve. It should be private to the service (``load_index(path,
        mmap=False)``): a memory-mapped file changed on disk would change under it.
    path : path, optional
        The file the index came from: writes go there, and ``/info`` reports whether it
        changed on disk since.
    writable : bool
        Accept ``add`` and ``remove`` (needs ``path``).
    budget : Budget
    encoder : QueryEncoder, optional
        Turns raw inputs, texts or images into codes (model-backed serving).
    labels : array, optional
        ``labels[id]`` is the label of the item with that id (returned with results).
    """

    def __init__(self, index: BinaryIndex, *, path=None, writable: bool = False, budget: Budget | None = None,
                 encoder: Optional[QueryEncoder] = None, labels=None, workers: int | None = None):
        if not isinstance(index, BinaryIndex):
            raise TypeError(f"index must be a hashlearn BinaryIndex, got {type(index).__name__}.")
        if writable and path is None:
            raise ValueError("writable=True needs the index file's path (writes are saved there).")
        if encoder is not None and encoder.n_bits != index.n_bits:
            raise ValueError(f"the model makes {encoder.n_bits}-bit codes but the index holds {index.n_bits}-bit codes.")
        self._index = index
        self.path = None if path is None else Path(path)
        self.writable = bool(writable)
        self.budget = budget or Budget()
        self.encoder = encoder
        self.labels = None if labels is None else np.asarray(labels)
        self._write_lock = threading.Lock()
        self._stamp = _file_stamp(self.path)
        self.workers = workers or min(4, os.cpu_count() or 1)

    # --- state ------------------------------------------------------------------------
    @property
    def index(self) -> BinaryIndex:
        """The index version now served (searches keep the version they started on)."""
        return self._index

    @property
    def accepts(self) -> list[str]:
        return ["queries", *(self.encoder.fields if self.encoder is not None else ())]

    def file_changed(self) -> bool:
        """Whether the index file changed on disk since it was loaded or last written by us."""
        return self.path is not None and _file_stamp(self.path) != self._stamp

    def health(self) -> dict:
        return {"status": "ok", "ntotal": int(self._index.ntotal)}

    def info(self) -> dict:
        from hashlearn import __version__

        index = self._index
        return {"kind": type(index).kind, "class": type(index).__name__, "n_bits": index.n_bits, "n_bytes": index.n_bytes,
                "ntotal": int(index.ntotal), "description": repr(index), "hashlearn_version": __version__,
                "writable": self.writable, "file_changed_on_disk": self.file_changed(),
                "model": None if self.encoder is None else self.encoder.describe(), "accepts": self.accepts,
                "budget": asdict(self.budget)}

    # --- queries ----------------------------------------------------------------------
    def _query_field(self, request) -> tuple[str, list]:
        given = [name for name in ("queries", "inputs", "texts", "images") if getattr(request, name, None) is not None]
        if len(given) != 1:
            fields = " or ".join(f"'{name}'" for name in self.accepts)
            if not given:
                raise invalid(("queries",), f"is required (send {fields}).")
            raise invalid((given[1],), f"send only one of {', '.join(given)}.")
        field = given[0]
        values = getattr(request, field)
        if not values:
            raise invalid((field,), "must be a non-empty list.")
        if len(values) > self.budget.max_queries:
            raise ServiceError(413, f"{field}: {len(values)} queries exceed the budget of {self.budget.max_queries} per request.", (field,))
        if field != "queries":
            self._require_encoder(field)
        return field, values

    def _require_encoder(self, field: str) -> None:
        if self.encoder is None:
            raise invalid((field,), "this server has no model to encode it with; send packed codes "
                                    "(or start the server with --model RUN).")
        if field not in self.encoder.fields:
            raise invalid((field,), f"the served model does not take {field}; it takes {', '.join(self.encoder.fields)}.")

    def _codes(self, field: str, values: list, n_bytes: int) -> Callable[[], np.ndarray]:
        """A function producing the query codes (parsing now; encoding, the heavy part, later)."""
        if field == "queries":
            codes = parse_codes(values, n_bytes, field)
            return lambda: codes
        encoder = self.encoder
        prepared = encoder.prepare(field, values) if hasattr(encoder, "prepare") else values  # validate before queueing
        return lambda: encoder.encode(field, prepared)

    def _labels_for(self, ids: np.ndarray):
        if self.labels is None:
            return None
        valid = (ids >= 0) & (ids < len(self.labels))
        out = np.where(valid, ids, 0)
        picked = self.labels[out]
        rows = picked.tolist()
        if ids.ndim == 1:
            return [value if ok else None for value, ok in zip(rows, valid.tolist())]
        return [[value if ok else None for value, ok in zip(row, oks)] for row, oks in zip(rows, valid.tolist())]

    def search(self, request) -> Job:
        """A :class:`Job` answering a :class:`~hashlearn.serve.schemas.SearchRequest`."""
        index = self._index
        budget = self.budget
        field, values = self._query_field(request)
        k = request.k
        if not 1 <= k <= budget.max_k:
            raise invalid(("k",), f"must be an integer in 1..{budget.max_k}, got {k}.")
        nq = len(values)
        if nq * k > budget.max_results:
            raise ServiceError(413, f"{nq} queries x k={k} = {nq * k} results exceed the budget of {budget.max_results} "
                                    "per request; send fewer queries or a smaller k.", ("k",))
        scan = nq * index.ntotal
        if scan > budget.max_scan:
            raise ServiceError(413, f"{nq} queries x {index.ntotal} codes = {scan} comparisons exceed the budget of "
                                    f"{budget.max_scan} per request; send fewer queries.", (field,))
        extra = {}
        if request.query_vectors is not None:
            if len(request.query_vectors) != nq:
                raise invalid(("query_vectors",), f"needs one vector per query ({nq}), got {len(request.query_vectors)}.")
            try:
                extra["query_vectors"] = np.array(request.query_vectors, dtype=np.float32)
            except ValueError:
                raise invalid(("query_vectors",), "must be equally long lists of numbers.") from None
        codes = self._codes(field, values, index.n_bytes)

        def run():
            result = index.search(codes(), k, **extra)
            distances = result.distances
            if distances.dtype.kind == "f":  # JSON has no infinity: missing float distances become null
                distances = np.where(np.isfinite(distances), distances, np.nan).astype(object)
                distances[distances != distances] = None
            response = {"distances": distances.tolist(), "ids": result.ids.tolist()}
            if self.labels is not None:
                response["labels"] = self._labels_for(result.ids)
            return response

        return Job(run, inline=field == "queries" and scan <= INLINE_SCAN)

    def range_search(self, request) -> Job:
        """A :class:`Job` answering a :class:`~hashlearn.serve.schemas.RangeSearchRequest`.

        The hits are bounded by ``max_results``: queries run in chunks small enough that
        one chunk cannot pass the bound by more than one query's hits (at most the index
        size), and the request is answered 413 as soon as the total passes it.
        """
        index = self._index
        budget = self.budget
        field, values = self._query_field(request)
        radius = request.radius
        if not 0 <= radius <= index.n_bits:
            raise invalid(("radius",), f"must be an integer in 0..{index.n_bits}, got {radius}.")
        nq, ntotal = len(values), index.ntotal
        if nq * ntotal > budget.max_scan:
            raise ServiceError(413, f"{nq} queries x {ntotal} codes = {nq * ntotal} comparisons exceed the budget of "
                                    f"{budget.max_scan} per request; send fewer queries.", (field,))
        codes = self._codes(field, values, index.n_bytes)

        def run():
            queries = codes()
            chunk = max(1, budget.max_results // max(1, ntotal))
            results, total = [], 0
            for start in range(0, nq, chunk):
                part = index.range_search(queries[start : start + chunk], radius)
                total += len(part.ids)
                if total > budget.max_results:
                    raise ServiceError(413, f"the range search passed the budget of {budget.max_results} results "
                                            f"after {start + chunk} of {nq} queries; lower the radius or send fewer queries.",
                                       ("radius",))
                lims, distances, ids = part.lims.tolist(), part.distances.tolist(), part.ids
                labels = self._labels_for(ids) if self.labels is not None else None
                ids = ids.tolist()
                for q in range(len(lims) - 1):
                    hit = {"distances": distances[lims[q] : lims[q + 1]], "ids": ids[lims[q] : lims[q + 1]]}
                    if labels is not None:
                        hit["labels"] = labels[lims[q] : lims[q + 1]]
                    results.append(hit)
            return {"results": results}

        return Job(run, inline=field == "queries" and nq * ntotal <= INLINE_SCAN)

    def encode(self, request) -> Job:
        """A :class:`Job` answering ``POST /encode``: the codes as hex strings."""
        field, values = self._query_field(request)
        if field == "queries":
            raise invalid(("queries",), "is already codes; /encode takes " + " or ".join(self.accepts[1:] or ["inputs"]) + ".")
        codes = self._codes(field, values, self._index.n_bytes)

        def run():
            packed = codes()
            return {"codes": [row.tobytes().hex() for row in packed], "n_bits": int(self._index.n_bits)}

        return Job(run, inline=False)

    # --- writes -----------------------------------------------------------------------
    def _check_writable(self) -> None:
        if not self.writable:
            raise ServiceError(403, "this server is read-only; start it with --writable to accept /add and /remove.")

    def add(self, request) -> dict:
        """Add codes (or encoded inputs) and persist; runs on a worker thread."""
        self._check_writable()
        given = [name for name in ("codes", "inputs", "texts", "images") if getattr(request, name) is not None]
        if len(given) != 1:
            raise invalid(("codes",), "send exactly one of 'codes', 'inputs', 'texts' or 'images'.")
        field = given[0]
        values = getattr(request, field)
        if not values:
            raise invalid((field,), "must be a non-empty list.")
        if len(values) > self.budget.max_queries:
            raise ServiceError(413, f"{field}: {len(values)} items exceed the budget of {self.budget.max_queries} per request.", (field,))
        if request.ids is not None:
            if len(request.ids) != len(values):
                raise invalid(("ids",), f"needs one id per item ({len(values)}), got {len(request.ids)}.")
            if any(i < 0 for i in request.ids):
                raise invalid(("ids",), "ids must be non-negative (-1 marks a missing result).")
        if field == "codes":
            codes = parse_codes(values, self._index.n_bytes, "codes")
        else:
            self._require_encoder(field)
            codes = self._codes(field, values, self._index.n_bytes)()
        ids = None if request.ids is None else np.asarray(request.ids, dtype=np.int64)

        def change(index):
            index.add(codes, ids)
            return {"added": len(codes)}

        return self._write(change)

    def remove(self, request) -> dict:
        self._check_writable()
        if len(request.ids) > self.budget.max_queries:
            raise ServiceError(413, f"ids: {len(request.ids)} ids exceed the budget of {self.budget.max_queries} per request.", ("ids",))
        ids = np.asarray(request.ids, dtype=np.int64)

        def change(index):
            return {"removed": int(index.remove_ids(ids))}

        return self._write(change)

    def _write(self, change: Callable[[BinaryIndex], dict]) -> dict:
        from hashlearn.index.io import index_from_bytes, index_to_bytes, save_index

        with self._write_lock:
            if self.file_changed():
                raise ServiceError(409, f"the index file {self.path} changed on disk since this server loaded or wrote it; "
                                        "restart the server to serve (and write) the new file.")
            copy = index_from_bytes(index_to_bytes(self._index))  # private: searches on the old version go on
            try:
                outcome = change(copy)
            except NotImplementedError as error:
                raise ServiceError(501, str(error)) from None
            except (ValueError, TypeError) as error:
                raise ServiceError(422, str(error)) from None
            getattr(copy, "build", lambda: None)()  # derived lookup tables now, not in the first search
            save_index(copy, self.path)  # atomic: a crash leaves the previous file
            self._stamp = _file_stamp(self.path)
            self._index = copy
            return {"added": 0, "removed": 0, **outcome, "ntotal": int(copy.ntotal)}

    def warm_up(self) -> None:
        """Run one tiny search of each kind (compiles kernels, builds lookup tables, starts thread pools)."""
        index = self._index
        getattr(index, "build", lambda: None)()
        if index.ntotal:
            probe = np.zeros((1, index.n_bytes), dtype=np.uint8)
            try:
                index.search(probe, 1)
                index.range_search(probe, 0)
            except (TypeError, ValueError):  # e.g. a two-stage index that needs query vectors
                pass
