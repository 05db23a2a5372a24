"""``hashlearn index build|info``: build an index file from codes, or describe one."""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="build an index file from codes, or describe one")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION")

    build = actions.add_parser("build", help="build an index from packed codes or continuous model outputs")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", help=".npy of packed uint8 codes (n, n_bits // 8)")
    source.add_argument("--outputs", help=".npy of continuous hash outputs (n, n_bits); bit = output > 0")
    build.add_argument("--ids", help=".npy of int64 ids, one per code (default 0..n-1)")
    build.add_argument("--factory", default="Flat", help=f"index description, one of: {factory_help()} (default Flat)")
    build.add_argument("-o", "--output", required=True, help="index file to write (.hlx)")
    add_common_arguments(build)
    build.set_defaults(func=run_build)

    info = actions.add_parser("info", help="describe an index file (checks its checksums)")
    info.add_argument("path", help="index file (.hlx)")
    info.add_argument("--no-verify", action="store_true", help="skip the payload checksum (reads only the header)")
    add_common_arguments(info)
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def factory_help() -> str:
    """The index descriptions the factory accepts, from the index-kind registry."""
    from hashlearn.index.registry import describe

    return "; ".join(f"{spelling} ({summary})" for spelling, _, summary in describe()).replace("%", "%%")


def load_codes(codes_path: str | None = None, outputs_path: str | None = None):
    """Packed codes from a .npy of codes or of continuous outputs (never unpickles)."""
    import numpy as np

    from hashlearn.codes import sign_to_codes, validate_codes

    if codes_path is not None:
        return validate_codes(np.load(codes_path, allow_pickle=False), name=f"codes in {codes_path}")
    return sign_to_codes(np.load(outputs_path, allow_pickle=False))


def run_build(args) -> int:
    import numpy as np

    from hashlearn.index.factory import index_factory
    from hashlearn.index.io import save_index

    codes = load_codes(args.codes, args.outputs)
    ids = np.load(args.ids, allow_pickle=False) if args.ids else None
    index = index_factory(args.factory, codes.shape[1] * 8)
    try:
        index.add(codes, ids)
        path = save_index(index, args.output)
    finally:
        getattr(index, "close", lambda: None)()
    if not args.quiet:
        print(f"wrote {path}: {args.factory} index of {len(codes)} codes x {codes.shape[1] * 8} bits")
    return 0


def run_info(args) -> int:
    from hashlearn.index.io import read_header, verify_file

    header = read_header(args.path) if args.no_verify else verify_file(args.path)
    meta = header["meta"]
    print(f"file:            {args.path}")
    print(f"format version:  {header['format_version']} (written by hashlearn {header.get('hashlearn_version', '?')})")
    print(f"kind:            {header['kind']}")
    print(f"n_bits:          {meta.get('n_bits', '?')}")
    print(f"size:            {header['file_nbytes']} bytes")
    print(f"checksums:       {'header only (payload not verified)' if args.no_verify else 'ok'}")
    print("arrays:")
    for spec in header["arrays"]:
        print(f"  {spec['name']:<28} {spec['dtype']:<5} {'x'.join(map(str, spec['shape'])) or 'scalar':<16} {spec['nbytes']} bytes")
    return 0
