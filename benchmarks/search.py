"""Hamming search speed: hashlearn FlatIndex / MultiIndexHashing against faiss IndexBinaryFlat.

Everything runs in one process, faiss included, so both see the same (shared,
possibly noisy) machine; ratios are taken between runs done side by side.
Medians of repeated runs. Writes benchmarks/results/search.md and search.json.

    python benchmarks/search.py --quick     # small sizes, < 1 minute
    python benchmarks/search.py             # 1M flat, 10M MIH, 100M scale (~30 min, ~6 GB RAM)

Data: uniformly random codes for the flat scans (the scan cost does not depend
on the data). MIH needs structure: "clustered" codes are made by drawing
``n // 100`` uniformly random 64-bit centres and giving every code a random
centre XOR four random single-bit flips (so codes of one cluster are within 8
bits of each other, like the codes a trained hash model gives to near-duplicate
images); queries are fresh draws from the same centres, not database items.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

import hashlearn.index._kernels as kernels
from hashlearn.index import FlatIndex, MultiIndexHashing, set_num_threads
from hashlearn.index._threads import run_tasks

RESULTS = Path(__file__).resolve().parent / "results"


# --- data ----------------------------------------------------------------------------------
def random_codes(rng, n, n_bits):
    return rng.integers(0, 256, size=(n, n_bits // 8), dtype=np.uint8)


def clustered_codes_64(rng, n, centres, n_flips=4, chunk=1 << 22):
    """64-bit codes: a random centre XOR ``n_flips`` random one-bit masks."""
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = centres[rng.integers(0, len(centres), stop - start)]
        for _ in range(n_flips):
            block ^= np.left_shift(np.uint64(1), rng.integers(0, 64, stop - start).astype(np.uint64))
        out[start:stop] = block
    return out.view(np.uint8).reshape(n, 8)


# --- measurement helpers -----------------------------------------------------------------
def median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_throughput(searches, queries, batch, repeats):
    """Median queries/s of each search function, timed in alternation (A, B, A, B, ...)
    so a burst of load from other jobs hits both; batch 1 times single queries.
    Also returns the median seconds per query of the first function."""
    times = [[] for _ in searches]
    for rep in range(repeats):
        batch_queries = queries[rep % len(queries)][None] if batch == 1 else queries[:batch]
        for slot, search in enumerate(searches):
            start = time.perf_counter()
            search(batch_queries)
            times[slot].append((time.perf_counter() - start) / batch)
    per_query = [statistics.median(t) for t in times]
    return [1.0 / s for s in per_query], per_query[0]


@njit(nogil=True, cache=True)
def _read_sum(words, start, stop):
    total = np.uint64(0)
    for i in range(start, stop):
        total += words[i]
    return total


def memory_bandwidth(n_threads, n_bytes=1 << 29, repeats=5):
    """GB/s reading a 512 MB array with ``n_threads`` threads (numba read loop)."""
    words = np.ones(n_bytes // 8, dtype=np.uint64)
    edges = np.linspace(0, len(words), n_threads + 1).astype(np.int64)
    tasks = [(words, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    set_num_threads(n_threads)
    run_tasks(_read_sum, tasks)
    seconds = median_time(lambda: run_tasks(_read_sum, tasks), repeats)
    set_num_threads(None)
    return n_bytes / seconds / 1e9


def rss_gb():
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]) / 1e6, int(fields["VmHWM"].split()[0]) / 1e6


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import faiss
    import numba

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "faiss": faiss.__version__,
    }


# --- sections ------------------------------------------------------------------------------
def bench_flat(rng, n, bandwidth, repeats):
    import faiss

    rows = []
    for n_bits in (64, 256):
        database = random_codes(rng, n, n_bits)
        queries = random_codes(rng, 1000, n_bits)
        ours = FlatIndex(n_bits)
        ours.add(database)
        theirs = faiss.IndexBinaryFlat(n_bits)
        theirs.add(database)
        check = ours.search(queries[:20], 10).distances
        assert np.array_equal(check, theirs.search(queries[:20], 10)[0]), "distances differ from faiss"
        for n_threads in (1, 2):
            set_num_threads(n_threads)
            faiss.omp_set_num_threads(n_threads)
            for k in (10, 100):
                for batch in (1, 100, 1000):
                    reps = repeats["single"] if batch == 1 else repeats["batch"]
                    searches = [lambda q: ours.search(q, k), lambda q: theirs.search(q, k)]
                    paired_throughput(searches, queries, batch, 1)  # warm up both
                    (ours_qps, faiss_qps), ours_s = paired_throughput(searches, queries, batch, reps)
                    row = dict(n=n, n_bits=n_bits, threads=n_threads, k=k, batch=batch,
                               ours_qps=ours_qps, faiss_qps=faiss_qps, ratio=ours_qps / faiss_qps)  # fmt: skip
                    if batch == 1:
                        scanned_gbs = database.nbytes / ours_s / 1e9
                        row.update(scanned_gbs=scanned_gbs, bandwidth_share=scanned_gbs / bandwidth[n_threads])
                    rows.append(row)
                    print(_flat_line(row), flush=True)
        set_num_threads(None)
        del theirs
    return rows


def _flat_line(row):
    extra = f" | {row['scanned_gbs']:.1f} GB/s = {100 * row['bandwidth_share']:.0f}%" if "scanned_gbs" in row else ""
    return (
        f"flat {row['n_bits']}-bit threads={row['threads']} k={row['k']} batch={row['batch']}: "
        f"{row['ours_qps']:.0f} q/s vs faiss {row['faiss_qps']:.0f} q/s ({row['ratio']:.2f}x){extra}"
    )


def bench_mih(rng, n, n_queries_flat, n_threads_list=(1, 2)):
    rows = []
    centres = rng.integers(0, 2**63, size=max(1, n // 100), dtype=np.int64).view(np.uint64)
    datasets = {
        "clustered": (clustered_codes_64(rng, n, centres), clustered_codes_64(rng, 1000, centres)),
        "uniform": (random_codes(rng, n, 64), random_codes(rng, 1000, 64)),
    }
    for name, (database, queries) in datasets.items():
        flat = FlatIndex(64)
        flat.add(database)
        mih = MultiIndexHashing(64)
        mih.add(database)
        start = time.perf_counter()
        mih.build()
        build_s = time.perf_counter() - start
        for n_threads in n_threads_list:
            set_num_threads(n_threads)
            flat_result = flat.search(queries[:n_queries_flat], 10)
            mih_result = mih.search(queries[:n_queries_flat], 10)
            identical = bool(
                np.array_equal(flat_result.ids, mih_result.ids) and np.array_equal(flat_result.distances, mih_result.distances)
            )
            searches = [lambda q: mih.search(q, 10), lambda q: flat.search(q, 10)]
            (mih_qps, flat_qps), _ = paired_throughput(searches, queries, n_queries_flat, 3)
            scanned_share = mih.last_scanned_queries / n_queries_flat
            single_s = statistics.median(
                [median_time(lambda q=q: mih.search(q[None], 10), 1) for q in queries[:200]]
            )  # fmt: skip
            row = dict(data=name, n=n, threads=n_threads, k=10, n_tables=len(mih._tables["lengths"]), build_s=build_s,
                       flat_qps=flat_qps, mih_qps=mih_qps, speedup=mih_qps / flat_qps, identical=identical,
                       mih_single_ms=1e3 * single_s, scanned_share=scanned_share,
                       mih_nbytes=mih.nbytes)  # fmt: skip
            rows.append(row)
            print(
                f"mih {name} n={n} threads={n_threads}: {mih_qps:.0f} q/s vs flat {flat_qps:.0f} q/s "
                f"({row['speedup']:.1f}x), identical={identical}, single query {row['mih_single_ms']:.3f} ms, "
                f"build {build_s:.1f}s",
                flush=True,
            )
        set_num_threads(None)
        del flat, mih
    return rows


def bench_scale(rng, n):
    """Build and query ``n`` clustered 64-bit codes: time, resident memory, latency."""
    rss_start, _ = rss_gb()
    centres = rng.integers(0, 2**63, size=max(1, n // 100), dtype=np.int64).view(np.uint64)
    start = time.perf_counter()
    database = clustered_codes_64(rng, n, centres)
    queries = clustered_codes_64(rng, 100, centres)
    generate_s = time.perf_counter() - start
    result = dict(n=n, raw_gb=database.nbytes / 1e9, generate_s=generate_s)
    mih = MultiIndexHashing(64)
    start = time.perf_counter()
    mih.add(database)  # stores the codes in a FlatIndex (mih.flat); the tables come later
    result["flat_build_s"] = time.perf_counter() - start
    flat = mih.flat
    del database  # the index holds its own copy; measure what the index needs
    result["flat_rss_gb"], _ = rss_gb()
    result["flat_nbytes_gb"] = flat.nbytes / 1e9
    for n_threads in (1, 2):
        set_num_threads(n_threads)
        result[f"flat_latency_ms_{n_threads}t"] = 1e3 * statistics.median(
            [median_time(lambda q=q: flat.search(q[None], 10), 1) for q in queries[:10]]
        )
    start = time.perf_counter()
    mih.build()
    result["mih_build_s"] = time.perf_counter() - start
    result["mih_rss_gb"], result["peak_rss_gb"] = rss_gb()
    result["mih_nbytes_gb"] = mih.nbytes / 1e9
    result["n_tables"] = len(mih._tables["lengths"])
    for n_threads in (1, 2):
        set_num_threads(n_threads)
        result[f"mih_latency_ms_{n_threads}t"] = 1e3 * statistics.median(
            [median_time(lambda q=q: mih.search(q[None], 10), 1) for q in queries]
        )
    check = flat.search(queries[:3], 10)
    result["identical"] = bool(np.array_equal(check.ids, mih.search(queries[:3], 10).ids))
    result["rss_baseline_gb"] = rss_start
    set_num_threads(None)
    print("scale", json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
    return result


def bench_memory(rng, n):
    """FlatIndex bytes vs the raw codes, one add and 100 small adds (default ids)."""
    rows = []
    for n_bits in (64, 256):
        codes = random_codes(rng, n, n_bits)
        one = FlatIndex(n_bits)
        one.add(codes)
        many = FlatIndex(n_bits)
        for part in np.array_split(codes, 100):
            many.add(part)
        with_ids = FlatIndex(n_bits)
        with_ids.add(codes, ids=np.arange(n) * 2)
        rows.append(dict(n=n, n_bits=n_bits, raw=codes.nbytes, one_add=one.nbytes / codes.nbytes,
                         hundred_adds=many.nbytes / codes.nbytes, custom_ids=with_ids.nbytes / codes.nbytes))  # fmt: skip
    return rows


# --- report --------------------------------------------------------------------------------
def write_report(results, path_md, path_json):
    lines = ["# Hamming search benchmark", ""]
    m = results["machine"]
    lines += [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM; numba {m['numba']}, faiss {m['faiss']}, numpy {m['numpy']}.",
        f"Load average at start {tuple(round(x, 1) for x in m['load_average_at_start'])}, at end "
        f"{tuple(round(x, 1) for x in results['load_average_at_end'])}. faiss ran in the same process, timed in alternation "
        "with hashlearn, so the ratios compare like with like. "
        + (
            "The machine was shared with other jobs, so absolute numbers are noisy; faiss's 2-thread numbers suffer most "
            "(its OpenMP threads wait for each other when a core is taken away), so read the 2-thread ratios as what a "
            "loaded machine does, not as faiss's best."
            if max(m["load_average_at_start"][0], results["load_average_at_end"][0]) > 1.5
            else "The machine was otherwise idle during this run."
        ),
        f"Mode: {results['mode']}. Medians of repeated runs. Memory bandwidth measured here (numba read loop over 512 MB): "
        f"{results['bandwidth_gbs'][1]:.1f} GB/s with 1 thread, {results['bandwidth_gbs'][2]:.1f} GB/s with 2.",
        "",
        "## FlatIndex vs faiss IndexBinaryFlat (exact k-NN, uniformly random codes)",
        "",
        "| bits | threads | k | batch | hashlearn q/s | faiss q/s | ratio | scanned GB/s (share of bandwidth) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["flat"]:
        bw = f"{r['scanned_gbs']:.1f} ({100 * r['bandwidth_share']:.0f}%)" if "scanned_gbs" in r else ""
        lines.append(f"| {r['n_bits']} | {r['threads']} | {r['k']} | {r['batch']} | {r['ours_qps']:,.0f} | {r['faiss_qps']:,.0f} | {r['ratio']:.2f}x | {bw} |")
    n_flat = results["flat"][0]["n"] if results["flat"] else 0
    lines += ["", f"Database: {n_flat:,} codes.", ""]
    lines += [
        "## MultiIndexHashing vs FlatIndex (exact 10-NN, 64-bit codes, batches of {batch} queries)",
        "",
        "| data | codes | threads | tables | build s | MIH q/s | flat q/s | speedup | identical | MIH single query ms | queries sent to the scan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    lines[-4] = lines[-4].format(batch=results["sizes"]["mih_flat_queries"])
    for r in results["mih"]:
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['threads']} | {r['n_tables']} | {r['build_s']:.1f} | {r['mih_qps']:,.0f} | "
            f"{r['flat_qps']:,.0f} | {r['speedup']:.1f}x | {r['identical']} | {r['mih_single_ms']:.3f} | {100 * r['scanned_share']:.0f}% |"
        )
    s = results["scale"]

    def per_billion(value):
        return value * 1e9 / s["n"]

    lines += [
        "",
        f"## Scale: {s['n']:,} clustered 64-bit codes ({s['raw_gb']:.2f} GB raw)",
        "",
        "| | value |",
        "|---|---:|",
        f"| FlatIndex build (copy in) | {s['flat_build_s']:.1f} s |",
        f"| FlatIndex bytes / process RSS | {s['flat_nbytes_gb']:.2f} GB / {s['flat_rss_gb']:.2f} GB |",
        f"| Flat 10-NN latency, 1 / 2 threads | {s['flat_latency_ms_1t']:.0f} / {s['flat_latency_ms_2t']:.0f} ms |",
        f"| MIH build ({s['n_tables']} tables) | {s['mih_build_s']:.1f} s |",
        f"| MIH bytes (codes + tables) / process RSS / peak RSS | {s['mih_nbytes_gb']:.2f} / {s['mih_rss_gb']:.2f} / {s['peak_rss_gb']:.2f} GB |",
        f"| MIH 10-NN latency, 1 / 2 threads | {s['mih_latency_ms_1t']:.3f} / {s['mih_latency_ms_2t']:.3f} ms |",
        f"| MIH results identical to flat | {s['identical']} |",
        "",
        f"The single-query flat scan over {s['raw_gb']:.1f} GB (far larger than any cache) reads "
        f"{s['raw_gb'] / (s['flat_latency_ms_1t'] / 1e3):.1f} GB/s with one thread = "
        f"{100 * s['raw_gb'] / (s['flat_latency_ms_1t'] / 1e3) / results['bandwidth_gbs'][1]:.0f}% of the measured "
        f"single-thread bandwidth ({results['bandwidth_gbs'][1]:.1f} GB/s). In the 1M tables above the 8 MB / 32 MB "
        "databases stay partly in the L3 cache between queries, so their 'share of bandwidth' can exceed 100%.",
        "",
        f"Extrapolation to 1,000,000,000 codes (linear in n, from the row above): raw codes {per_billion(s['raw_gb']):.1f} GB; "
        f"flat 10-NN latency ~{per_billion(s['flat_latency_ms_2t']) / 1e3:.1f} s per query with 2 threads (memory-bound; "
        f"batches share each pass over the data); FlatIndex + MIH tables {per_billion(s['mih_nbytes_gb']):.1f} GB "
        f"against this machine's {m['memory_gb']} GB, so "
        + ("a billion codes fit with MIH." if per_billion(s["mih_nbytes_gb"]) < 0.8 * m["memory_gb"]
           else "a billion codes fit for the flat scan but MIH needs shards (or a bigger machine).")
        + f" MIH latency grows at most linearly with n at a fixed table count (it follows the bucket sizes): at most "
        f"~{per_billion(s['mih_latency_ms_1t']):.0f} ms per query.",
        "",
        "## Memory of FlatIndex relative to the raw codes",
        "",
        "| bits | codes | one add | 100 adds | with custom int64 ids |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results["memory"]:
        lines.append(f"| {r['n_bits']} | {r['n']:,} | {r['one_add']:.3f}x | {r['hundred_adds']:.3f}x | {r['custom_ids']:.3f}x |")
    path_md.write_text("\n".join(lines) + "\n")
    path_json.write_text(json.dumps(results, indent=1, default=float))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 1 minute)")
    parser.add_argument("--out", help="output path without extension (default results/search, or search_quick)")
    parser.add_argument("--report-only", metavar="JSON", help="rewrite the markdown from a saved JSON result")
    args = parser.parse_args(argv)
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        results["bandwidth_gbs"] = {int(t): v for t, v in results["bandwidth_gbs"].items()}
        out = Path(args.out or Path(args.report_only).with_suffix(""))
        write_report(results, out.with_suffix(".md"), out.with_suffix(".json"))
        return
    rng = np.random.default_rng(0)
    if args.quick:
        sizes = dict(flat=100_000, mih=1_000_000, mih_flat_queries=100, scale=2_000_000, memory=100_000)
        repeats = dict(single=20, batch=2)
    else:
        sizes = dict(flat=1_000_000, mih=10_000_000, mih_flat_queries=100, scale=100_000_000, memory=1_000_000)
        repeats = dict(single=30, batch=3)
    results = {"mode": "quick" if args.quick else "full", "machine": machine(), "sizes": sizes}
    results["bandwidth_gbs"] = {t: memory_bandwidth(t) for t in (1, 2)}
    print("bandwidth GB/s", results["bandwidth_gbs"], flush=True)
    results["memory"] = bench_memory(rng, sizes["memory"])
    results["flat"] = bench_flat(rng, sizes["flat"], results["bandwidth_gbs"], repeats)
    results["mih"] = bench_mih(rng, sizes["mih"], sizes["mih_flat_queries"])
    results["scale"] = bench_scale(rng, sizes["scale"])
    results["load_average_at_end"] = os.getloadavg()
    out = Path(args.out or RESULTS / ("search_quick" if args.quick else "search"))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(results, out.with_suffix(".md"), out.with_suffix(".json"))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
