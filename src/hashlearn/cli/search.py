"""``hashlearn search``: k-NN or radius search of query codes in a saved index.

    hashlearn search --index db.hlx --queries q.npy -k 10
    hashlearn search --index db.hlx --queries q.npy --radius 3 -o results.npz
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, add_k_argument, nonnegative_int, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("search", help="search query codes in an index file")
    parser.add_argument("--index", required=True, help="index file (.hlx)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--queries", help=".npy of packed uint8 query codes")
    source.add_argument("--query-outputs", help=".npy of continuous hash outputs of the queries (bit = output > 0)")
    add_k_argument(parser, 10, "neighbours per query")
    parser.add_argument("--radius", type=nonnegative_int, help="return all items within this Hamming distance instead of k-NN")
    parser.add_argument("-o", "--output", help=".npz to write (distances, ids; plus lims for --radius)")
    parser.add_argument("--no-mmap", action="store_true", help="read the index into memory instead of mapping it")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from hashlearn._io import atomic_write_bytes
    from hashlearn.cli.index import load_codes
    from hashlearn.index.io import load_index

    queries = load_codes(args.queries, args.query_outputs)
    index = load_index(args.index, mmap=not args.no_mmap)
    try:
        if args.radius is not None:
            if args.radius > index.n_bits:
                raise ValueError(f"--radius must be at most the code length {index.n_bits}, got {args.radius}.")
            result = index.range_search(queries, args.radius)
            arrays = {"lims": result.lims, "distances": result.distances, "ids": result.ids}
            rows = [(result.ids[a:b], result.distances[a:b]) for a, b in zip(result.lims[:-1], result.lims[1:])]
        else:
            result = index.search(queries, args.k)
            arrays = {"distances": result.distances, "ids": result.ids}
            rows = list(zip(result.ids, result.distances))
    finally:
        getattr(index, "close", lambda: None)()
    if args.output:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(args.output, buffer.getvalue())
        if args.json:
            print_json({"output": args.output, "n_queries": len(queries)})
        elif not args.quiet:
            print(f"wrote {args.output}: results of {len(queries)} queries")
    elif args.json:
        print_json([{"query": q, "ids": [int(i) for i in ids if i >= 0], "distances": [int(d) for i, d in zip(ids, distances) if i >= 0]}
                    for q, (ids, distances) in enumerate(rows)])
    else:
        for q, (ids, distances) in enumerate(rows):
            found = " ".join(f"{i}:{d}" for i, d in zip(ids.tolist(), distances.tolist()) if i >= 0)
            print(f"{q}\t{found}")
    return 0
