"""Retrieval metrics: pure functions of query codes, database codes and labels.

Conventions, the same everywhere in hashlearn:

* the database is ranked by Hamming distance, **ties broken by ascending
  database index** (the position in ``db_codes``, which is the id);
* relevance: single-label items are relevant when labels are equal,
  multi-label items when they share at least one label;
* average precision at k (the definition used by the deep-hashing literature)::

      AP@k(q) = (1 / R_k) * sum_{i <= k, rel_i} P@i(q)

  where ``R_k`` is the number of relevant items **retrieved within the top k**
  and ``P@i`` the precision of the top ``i``; ``AP@k = 0`` when no relevant item
  is retrieved. mAP@k is its mean over queries; ``k=None`` ranks the whole database.
* P@k divides by the number of items actually retrieved, ``min(k, n_db)``.
* precision within radius ``r`` is 0 for a query that retrieves nothing.

>>> import numpy as np
>>> from hashlearn.codes import pack_bits
>>> db = pack_bits(np.array([[0] * 8, [1] + [0] * 7, [1] * 8]))
>>> q = pack_bits(np.array([[0] * 8]))
>>> mean_average_precision(q, db, np.array([0]), np.array([1, 0, 0]), k=2)
0.5
>>> precision_at_k(q, db, np.array([0]), np.array([1, 0, 0]), k=2)
0.5
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from hashlearn._validation import check_features, check_labels, check_positive_int
from hashlearn.codes import unpack_bits, validate_codes

#: queries processed per block (bounds memory: block x n_db distances)
QUERY_BLOCK = 64
#: codes wider than one machine word: the database's unpacked ±1 matrix is built once per call when it
#: takes at most this many bytes (100,000 x 128 bits: 51 MB); a larger database is unpacked again per query block
DB_UNPACK_BYTES = 256 * 2**20


class PRCurve(NamedTuple):
    """Mean precision and recall over queries, for every radius ``0..n_bits``."""

    radii: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------
def _check_pair(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray]:
    query_codes = validate_codes(query_codes, name="query_codes")
    db_codes = validate_codes(db_codes, name="db_codes")
    if query_codes.shape[1] != db_codes.shape[1]:
        raise ValueError(
            f"query_codes and db_codes must have the same number of bits, got {query_codes.shape[1] * 8} and {db_codes.shape[1] * 8}."
        )
    if len(db_codes) == 0:
        raise ValueError("db_codes is empty: there is nothing to retrieve.")
    return query_codes, db_codes


def _check_label_pair(query_labels, db_labels, n_queries: int, n_db: int) -> tuple[np.ndarray, np.ndarray]:
    query_labels = check_labels(query_labels, "query_labels", n_samples=n_queries)
    db_labels = check_labels(db_labels, "db_labels", n_samples=n_db)
    if query_labels.ndim != db_labels.ndim or (query_labels.ndim == 2 and query_labels.shape[1] != db_labels.shape[1]):
        raise ValueError(
            f"query_labels and db_labels must be of the same kind, got shapes {query_labels.shape} and {db_labels.shape}."
        )
    return query_labels, db_labels


def _check_k(k, n_db: int) -> int:
    if k is None:
        return n_db
    return min(check_positive_int(k, "k"), n_db)


def _pm1(codes: np.ndarray) -> np.ndarray:
    return unpack_bits(codes).astype(np.float32) * 2 - 1


def hamming_distance_matrix(query_codes, db_codes) -> np.ndarray:
    """Exact Hamming distances ``int32 (nq, n_db)``: XOR and popcount for codes of one machine
    word (8, 16, 32 or 64 bits), a ±1 matrix product otherwise (exact in float32 for up to 2^24 bits)."""
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    if len(query_codes) == 0:
        return np.empty((0, len(db_codes)), dtype=np.int32)
    return next(_distance_blocks(query_codes, db_codes, len(query_codes)))[1]


#: codes of this many bytes are one unsigned machine word: their distances are XOR + popcount
_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
#: database items per XOR chunk of the popcount path (bounds its temporary to block x chunk words)
_XOR_CHUNK = 32768


def _popcount_distances(query_words: np.ndarray, db_words: np.ndarray) -> np.ndarray:
    out = np.empty((len(query_words), len(db_words)), dtype=np.int32)
    for start in range(0, len(db_words), _XOR_CHUNK):
        chunk = db_words[start : start + _XOR_CHUNK]
        out[:, start : start + len(chunk)] = np.bitwise_count(query_words[:, None] ^ chunk[None, :])
    return out


def _product_distances(query_pm1: np.ndarray, db_pm1_t: np.ndarray, n_bits: int) -> np.ndarray:
    return ((n_bits - query_pm1 @ db_pm1_t) * 0.5).astype(np.int32)  # n_bits - inner is even and exact


def hamming_distance_blocks(query_codes, db_codes, block: int = QUERY_BLOCK) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, hamming_distance_matrix(query_codes[rows], db_codes))`` for consecutive blocks of
    ``block`` queries. One-word codes go through XOR + popcount (3-5x the matrix product at 32
    and 64 bits); for other widths the database's ±1 matrix is built once for all blocks when it
    fits :data:`DB_UNPACK_BYTES`."""
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    return _distance_blocks(query_codes, db_codes, block)


def _distance_blocks(query_codes: np.ndarray, db_codes: np.ndarray, block: int) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`hamming_distance_blocks` of codes already checked by :func:`_check_pair`."""
    n_bytes = query_codes.shape[1]
    word = _WORDS.get(n_bytes)
    if word is not None:
        query_words, db_words = query_codes.view(word)[:, 0], db_codes.view(word)[:, 0]
        for start in range(0, len(query_codes), block):
            rows = slice(start, min(start + block, len(query_codes)))
            yield rows, _popcount_distances(query_words[rows], db_words)
        return
    n_bits = n_bytes * 8
    db_pm1_t = _pm1(db_codes).T if len(db_codes) * n_bits * 4 <= DB_UNPACK_BYTES else None
    for start in range(0, len(query_codes), block):
        rows = slice(start, min(start + block, len(query_codes)))
        yield rows, _product_distances(_pm1(query_codes[rows]), _pm1(db_codes).T if db_pm1_t is None else db_pm1_t, n_bits)


def rank_by_hamming(distances: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest items per row, sorted by (distance, index).

    Distances below 2^16 (every code of up to 65,535 bits) are ranked by numpy's stable sort of
    8- or 16-bit keys, a radix sort: linear in the row and, being stable, ties come out by index.
    Larger distances are ranked through unique int64 keys ``distance * n_db + index``.
    """
    n_db = distances.shape[1]
    if distances.size and distances.min() >= 0:
        top = int(distances.max())
        if top < 2**16:
            keys = distances.astype(np.uint8 if top < 2**8 else np.uint16)
            return np.argsort(keys, axis=1, kind="stable")[:, :k]
    keys = distances.astype(np.int64) * n_db + np.arange(n_db, dtype=np.int64)  # unique: ties by index
    if k < n_db:
        keys = np.partition(keys, k - 1, axis=1)[:, :k]
    keys.sort(axis=1)
    return keys % n_db


def _label_keys(labels: np.ndarray) -> np.ndarray:
    """What :func:`_relevance` compares: 1-D class ids as they are; multi-hot rows (checked 0/1) packed into
    ``(n, ceil(n_classes / 64))`` uint64 words, so two items share a label when their words share a set bit."""
    if labels.ndim == 1:
        return labels
    packed = np.packbits(labels, axis=1)
    if packed.shape[1] % 8:
        packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    return np.ascontiguousarray(packed).view(np.uint64)


def _relevance(query_keys: np.ndarray, db_keys: np.ndarray, db_index: np.ndarray) -> np.ndarray:
    """Boolean relevance of ``db_index`` (nq, k) items to each query, from :func:`_label_keys` of both sides."""
    if query_keys.ndim == 1:
        return db_keys[db_index] == query_keys[:, None]
    if query_keys.shape[1] == 1:  # up to 64 labels: one AND per ranked item
        return (db_keys[:, 0][db_index] & query_keys[:, :1]) != 0
    return (db_keys[db_index] & query_keys[:, None, :]).any(axis=2)


def _blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, QUERY_BLOCK):
        yield slice(start, min(start + QUERY_BLOCK, n))


def _ranked_relevance(query_codes, db_codes, query_labels, db_labels, k) -> tuple[np.ndarray, int]:
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    query_labels, db_labels = _check_label_pair(query_labels, db_labels, len(query_codes), len(db_codes))
    k = _check_k(k, len(db_codes))
    relevance = np.empty((len(query_codes), k), dtype=bool)
    query_keys, db_keys = _label_keys(query_labels), _label_keys(db_labels)
    for block, distances in hamming_distance_blocks(query_codes, db_codes):
        relevance[block] = _relevance(query_keys[block], db_keys, rank_by_hamming(distances, k))
    return relevance, k


# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------
def average_precisions(query_codes, db_codes, query_labels, db_labels, k: int | None = None) -> np.ndarray:
    """AP@k of every query (see the module docstring for the definition)."""
    relevance, k = _ranked_relevance(query_codes, db_codes, query_labels, db_labels, k)
    return _average_precisions_of(relevance)


def _average_precisions_of(relevance: np.ndarray) -> np.ndarray:
    """AP@k per row of a ranked boolean relevance matrix ``(nq, k)``."""
    k = relevance.shape[1]
    hits = np.cumsum(relevance, axis=1)
    precision_at_i = hits / np.arange(1, k + 1)
    n_retrieved_relevant = hits[:, -1]
    sums = (precision_at_i * relevance).sum(axis=1)
    return np.divide(sums, n_retrieved_relevant, out=np.zeros(len(sums)), where=n_retrieved_relevant > 0)


def mean_average_precision(query_codes, db_codes, query_labels, db_labels, k: int | None = None) -> float:
    """mAP@k over queries; ``k=None`` ranks the whole database."""
    return float(average_precisions(query_codes, db_codes, query_labels, db_labels, k).mean())


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k: int) -> float:
    """Mean fraction of relevant items among the top ``min(k, n_db)``."""
    relevance, k = _ranked_relevance(query_codes, db_codes, query_labels, db_labels, k)
    return float(relevance.mean())


def ranking_metrics(query_codes, db_codes, query_labels, db_labels, *, map_ks=(), precision_ks=()) -> dict[str, float]:
    """mAP@k for every k in ``map_ks`` (``None``: the whole database) and P@k for every k in
    ``precision_ks``, all from **one** ranking of the largest k.

    The ranking is a total order (distance, then index), so the top ``k`` of a longer ranking is the
    ranking at ``k``: ``ranking_metrics(..., map_ks=[k])["mAP@k"] == mean_average_precision(..., k=k)``.
    Keys are ``"mAP@{k}"`` (``"mAP@all"`` for ``None``) and ``"P@{k}"``.
    """
    n_db = len(db_codes)
    map_ks = [None if k is None else check_positive_int(k, "map_ks[]") for k in map_ks]
    precision_ks = [check_positive_int(k, "precision_ks[]") for k in precision_ks]
    if not map_ks and not precision_ks:
        raise ValueError("ranking_metrics needs at least one k in map_ks or precision_ks, got none.")
    depth = max(n_db if k is None else k for k in map_ks + precision_ks)
    relevance, depth = _ranked_relevance(query_codes, db_codes, query_labels, db_labels, depth)
    out: dict[str, float] = {}
    for k in map_ks:
        cut = depth if k is None else min(k, depth)
        out["mAP@all" if k is None else f"mAP@{k}"] = float(_average_precisions_of(relevance[:, :cut]).mean())
    for k in precision_ks:
        out[f"P@{k}"] = float(relevance[:, :min(k, depth)].mean())
    return out


def precision_at_k_curve(query_codes, db_codes, query_labels, db_labels, ks) -> np.ndarray:
    """P@k for every ``k`` in ``ks`` (each clipped to the database size), from one ranking.

    ``precision_at_k_curve(...)[i] == precision_at_k(..., k=ks[i])``.
    """
    ks = [check_positive_int(k, "ks[]") for k in np.atleast_1d(np.asarray(ks)).tolist()]
    if not ks:
        raise ValueError("ks must hold at least one k, got an empty list.")
    relevance, k_max = _ranked_relevance(query_codes, db_codes, query_labels, db_labels, max(ks))
    hits = np.cumsum(relevance, axis=1).sum(axis=0)  # relevant items in the top i+1, summed over queries
    return np.array([hits[min(k, k_max) - 1] / (len(relevance) * min(k, k_max)) for k in ks])


def default_curve_ks(n_db: int, k: int) -> list[int]:
    """The k values a P@k curve is drawn at: 1, 2, 5, 10, 20, 50, ... up to ``min(k, n_db)`` (included)."""
    top = max(1, min(int(k), int(n_db)))
    ks = [m * 10**e for e in range(0, 8) for m in (1, 2, 5) if m * 10**e < top]
    return ks + [top]


def precision_recall_at_radius(query_codes, db_codes, query_labels, db_labels, radius: int) -> tuple[float, float]:
    """Mean precision and recall of the items within Hamming distance ``radius`` (inclusive)."""
    radius = check_positive_int(radius, "radius", minimum=0)
    curve = pr_curve(query_codes, db_codes, query_labels, db_labels)
    radius = min(radius, len(curve.radii) - 1)
    return float(curve.precision[radius]), float(curve.recall[radius])


def pr_curve(query_codes, db_codes, query_labels, db_labels) -> PRCurve:
    """Precision and recall within every radius ``0..n_bits``, averaged over queries.

    A query that retrieves nothing within a radius counts precision 0; one
    with no relevant item in the database counts recall 0.
    """
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    query_labels, db_labels = _check_label_pair(query_labels, db_labels, len(query_codes), len(db_codes))
    n_bits = query_codes.shape[1] * 8
    precision_sum = np.zeros(n_bits + 1)
    recall_sum = np.zeros(n_bits + 1)
    all_index = np.arange(len(db_codes))
    query_keys, db_keys = _label_keys(query_labels), _label_keys(db_labels)
    for block, distances in hamming_distance_blocks(query_codes, db_codes):
        relevant = _relevance(query_keys[block], db_keys, np.broadcast_to(all_index, distances.shape))
        offsets = (np.arange(distances.shape[0]) * (n_bits + 1))[:, None]
        size = distances.shape[0] * (n_bits + 1)
        retrieved = np.bincount((distances + offsets).ravel(), minlength=size).reshape(-1, n_bits + 1).cumsum(axis=1)
        hits = np.bincount((distances + offsets)[relevant], minlength=size).reshape(-1, n_bits + 1).cumsum(axis=1)
        n_relevant = relevant.sum(axis=1, keepdims=True)
        precision_sum += np.divide(hits, retrieved, out=np.zeros(hits.shape), where=retrieved > 0).sum(axis=0)
        recall_sum += np.divide(hits, n_relevant, out=np.zeros(hits.shape), where=n_relevant > 0).sum(axis=0)
    n_queries = len(query_codes)
    return PRCurve(np.arange(n_bits + 1), precision_sum / n_queries, recall_sum / n_queries)


def float_knn(queries, database, k: int, metric: str = "l2") -> np.ndarray:
    """Exact float k-NN ids ``(nq, k)`` (ground truth for unlabelled data); ties by ascending id.

    ``metric`` is ``"l2"`` or ``"cosine"``.
    """
    queries = check_features(queries, "queries")
    database = check_features(database, "database", n_features=queries.shape[1])
    k = min(check_positive_int(k, "k"), len(database))
    if metric == "cosine":
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        database = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
    elif metric != "l2":
        raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}.")
    db_norms = (database.astype(np.float64) ** 2).sum(axis=1)
    out = np.empty((len(queries), k), dtype=np.int64)
    for block in _blocks(len(queries)):
        q = queries[block].astype(np.float64)
        distances = db_norms[None, :] - 2 * q @ database.T.astype(np.float64)  # + |q|^2, constant per row
        if k == len(database):
            out[block] = np.argsort(distances, axis=1, kind="stable")
            continue
        # every item as close as the k-th one is a candidate, so that ties at the cut-off go to the lowest ids
        kth = np.partition(distances, k - 1, axis=1)[:, k - 1 : k]
        for row, (values, cut) in enumerate(zip(distances, kth)):
            candidates = np.flatnonzero(values <= cut[0])  # ascending ids
            out[block.start + row] = candidates[np.argsort(values[candidates], kind="stable")[:k]]
    return out


def float_mean_average_precision(queries, database, query_labels, db_labels, k: int | None = None, metric: str = "l2") -> float:
    """mAP@k of float vectors ranked by exact ``metric`` distance (``"l2"`` or ``"cosine"``), ties by ascending id.

    The same AP@k definition as :func:`mean_average_precision`: what the float
    features a model's codes come from would give in a float index.
    """
    queries = check_features(queries, "queries")
    database = check_features(database, "database", n_features=queries.shape[1])
    query_labels, db_labels = _check_label_pair(query_labels, db_labels, len(queries), len(database))
    k = _check_k(k, len(database))
    ranked = float_knn(queries, database, k, metric=metric)
    return float(_average_precisions_of(_relevance(_label_keys(query_labels), _label_keys(db_labels), ranked)).mean())


def recall_at_k(query_codes, db_codes, ground_truth_ids, k: int) -> float:
    """Mean fraction of each query's float nearest neighbours (``ground_truth_ids``,
    ``(nq, k_gt)``) found among its top ``k`` by Hamming distance (recall k_gt@k)."""
    query_codes, db_codes = _check_pair(query_codes, db_codes)
    ground_truth_ids = np.asarray(ground_truth_ids)
    if ground_truth_ids.ndim != 2 or len(ground_truth_ids) != len(query_codes):
        raise ValueError(
            f"ground_truth_ids must have shape (n_queries={len(query_codes)}, k_gt), got {ground_truth_ids.shape}."
        )
    k = _check_k(k, len(db_codes))
    found = 0
    for block, distances in hamming_distance_blocks(query_codes, db_codes):
        ranked = rank_by_hamming(distances, k)
        for row, truth in zip(ranked, ground_truth_ids[block]):
            found += np.isin(truth, row).sum()
    return float(found / ground_truth_ids.size)
