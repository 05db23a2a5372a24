"""``hashlearn serve``: answer search requests for a saved index over HTTP (JSON)."""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve an index file over HTTP (JSON API)")
    parser.add_argument("--index", required=True, help="index file (.hlx)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--no-mmap", action="store_true", help="read the index into memory instead of mapping it")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn.index.io import load_index
    from hashlearn.serve import make_server

    index = load_index(args.index, mmap=not args.no_mmap)
    server = make_server(index, args.host, args.port, verbose=not args.quiet)
    host, port = server.server_address[:2]
    print(f"serving {index!r} on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        getattr(index, "close", lambda: None)()
    return 0
