"""``hashlearn serve``: answer search requests for a saved index over HTTP (FastAPI on uvicorn).

The first line printed is ``serving ... on http://HOST:PORT`` with the real port (also
for ``--port 0``).
"""

from __future__ import annotations

import os

from hashlearn.cli.main import add_common_arguments, port_number, positive_float, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve an index file over HTTP (JSON API, OpenAPI docs at /docs)",
        description="Serve an index over HTTP. Example: hashlearn serve --index db.hlx --host 127.0.0.1 --port 8080",
    )
    parser.add_argument("--index", required=True, help="index file (.hlx); served from a private in-memory copy")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other address needs an API key)")
    parser.add_argument("--port", type=port_number, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--model", metavar="RUN_DIR", default=None,
                        help="a run whose model encodes 'inputs', 'texts' or 'images' in requests (and /encode); "
                             "a cross-modal run answers texts and images with the side its index holds")
    parser.add_argument("--no-labels", action="store_true",
                        help="do not return labels (by default an index built from a dataset answers with its labels)")
    parser.add_argument("--api-key", default=None,
                        help="require this key (X-API-Key or Authorization: Bearer); default: $HASHLEARN_API_KEY")
    parser.add_argument("--writable", action="store_true",
                        help="accept POST /add and /remove, saved atomically to --index (needs an API key)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body", type=positive_int, default=4 << 20, help="largest request body in bytes (default 4 MiB)")
    limits.add_argument("--max-queries", type=positive_int, default=10_000, help="queries per request (default 10000)")
    limits.add_argument("--max-k", type=positive_int, default=10_000, help="largest k (default 10000)")
    limits.add_argument("--max-results", type=positive_int, default=1_000_000,
                        help="result entries per response: queries x k, or range hits (default 1000000)")
    limits.add_argument("--max-scan", type=positive_int, default=4_000_000_000,
                        help="code comparisons per request: queries x index size (default 4e9)")
    limits.add_argument("--header-timeout", type=positive_float, default=5.0, help="seconds to receive request headers (default 5)")
    limits.add_argument("--body-timeout", type=positive_float, default=10.0, help="seconds to receive a request body (default 10)")
    limits.add_argument("--keep-alive", type=positive_float, default=5.0, help="seconds an idle connection stays open (default 5)")
    limits.add_argument("--max-connections", type=positive_int, default=1000, help="open connections (default 1000)")
    limits.add_argument("--max-concurrency", type=positive_int, default=128, help="requests in flight (default 128)")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn.index.io import load_index
    from hashlearn.serve import Budget, Limits, SearchService, make_server

    api_key = args.api_key if args.api_key is not None else os.environ.get("HASHLEARN_API_KEY") or None
    limits = Limits(max_body_bytes=args.max_body, header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                    keep_alive_timeout=args.keep_alive, max_connections=args.max_connections,
                    max_concurrency=args.max_concurrency)
    budget = Budget(max_queries=args.max_queries, max_k=args.max_k, max_results=args.max_results, max_scan=args.max_scan)
    # a private copy in memory: the file may be rewritten or truncated while served without harm
    index = load_index(args.index, mmap=False)
    try:
        encoder = None
        if args.model is not None:
            from hashlearn.index.io import read_header
            from hashlearn.serve.encoders import load_encoder

            # a cross-modal run answers texts and images; the index header says which side it holds
            encoder = load_encoder(args.model, index_modality=(read_header(args.index).get("info") or {}).get("modality"))
        labels = None if args.no_labels else index_labels(args.index)
        service = SearchService(index, path=args.index, writable=args.writable, budget=budget, encoder=encoder, labels=labels)
        server = make_server(service, args.host, args.port, api_key=api_key, limits=limits, verbose=not args.quiet)
        extra = "" if encoder is None else f" with the model of {args.model} ({', '.join(encoder.fields)})"
        print(f"serving {index!r}{extra} on {server.url} (docs at {server.url}/docs; Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        getattr(index, "close", lambda: None)()
    return 0


def index_labels(path):
    """The labels of an index's items when its header says they are rows of a dataset
    (``index build --model R --dataset NAME``); None otherwise."""
    import numpy as np

    from hashlearn.index.io import read_header

    info = read_header(path).get("info") or {}
    if not info.get("dataset") or info.get("ids") != "dataset row indices":
        return None
    from hashlearn.data import load_dataset

    labels = load_dataset(info["dataset"]).labels
    if labels is None:
        return None
    if labels.ndim == 2:  # multi-hot -> the list of label indices of each item
        out = np.empty(len(labels), dtype=object)
        out[:] = [np.flatnonzero(row).tolist() for row in labels]
        return out
    return labels
