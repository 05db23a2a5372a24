"""``hashlearn index build|info``: build an index file from a run's model and a dataset, or from codes; describe one.

    hashlearn index build --model runs/csq-32-digits --dataset digits --part database --factory MIH -o db.hlx
    hashlearn index build --codes db.npy --factory Flat -o db.hlx
    hashlearn index info db.hlx

With ``--model`` the index ids are the dataset's row indices and the file's
header records the run, dataset, part and method it came from.
"""

from __future__ import annotations

import sys

from hashlearn.cli.main import add_common_arguments, print_json

PARTS = ["database", "query", "train", "validation", "all"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="build an index file from a run or from codes, or describe one")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION")

    build = actions.add_parser("build", help="build an index from a run's model and a dataset, packed codes or continuous outputs")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="RUN_DIR", help="a run: encode --dataset's --part with its model")
    source.add_argument("--codes", help=".npy of packed uint8 codes (n, n_bits // 8)")
    source.add_argument("--outputs", help=".npy of continuous hash outputs (n, n_bits); bit = output > 0")
    build.add_argument("--dataset", help="with --model: the dataset to encode (default: the run's)")
    build.add_argument("--modality", choices=["image", "text"], help="with --model of a cross-modal run: the side of the pairs to index")
    build.add_argument("--part", choices=PARTS, default="database", help="with --model: the part of the run's split to index")
    build.add_argument("--ids", help="with --codes/--outputs: .npy of int64 ids, one per code (default 0..n-1)")
    build.add_argument("--factory", default="Flat", help=f"index description, one of: {factory_help()}")
    build.add_argument("-o", "--output", required=True, help="index file to write (.hlx)")
    add_common_arguments(build, json=True)
    build.set_defaults(func=run_build)

    info = actions.add_parser("info", help="describe an index file (checks its checksums)")
    info.add_argument("path", help="index file (.hlx)")
    info.add_argument("--no-verify", action="store_true", help="skip the payload checksum (reads only the header)")
    add_common_arguments(info, json=True)
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def factory_help() -> str:
    """The index descriptions the factory accepts, from the index-kind registry."""
    from hashlearn.index.registry import describe

    return "; ".join(f"{spelling} ({summary})" for spelling, _, summary in describe()).replace("%", "%%")


def load_codes(codes_path: str | None = None, outputs_path: str | None = None):
    """Packed codes from a .npy of codes or of continuous outputs (never unpickles)."""
    from hashlearn.codes import sign_to_codes, validate_codes
    from hashlearn.runs.run import load_npy

    if codes_path is not None:
        return validate_codes(load_npy(codes_path), name=f"codes in {codes_path}")
    return sign_to_codes(load_npy(outputs_path))


def run_build(args) -> int:
    from hashlearn._progress import set_quiet

    set_quiet(args.quiet)
    if args.model is not None:
        from hashlearn.runs import build_index

        if args.ids:
            raise ValueError("--ids goes with --codes/--outputs; with --model the ids are the dataset's row indices.")
        say = None if args.quiet else (lambda message: print(f"hashlearn index build: note: {message}", file=sys.stderr))
        record = build_index(args.model, args.dataset, args.part, factory=args.factory, output=args.output, say=say,
                             modality=args.modality)
    else:
        if args.dataset or args.part != "database" or args.modality:
            raise ValueError("--dataset, --part and --modality go with --model (a run whose model encodes them).")
        record = _build_from_arrays(args)
    if args.json:
        print_json(record)
    elif not args.quiet:
        source = f" ({record['dataset']} {record['part']}, run {record['run']})" if "run" in record else ""
        print(f"wrote {record['path']}: {args.factory} index of {record['n']} codes x {record['n_bits']} bits{source}")
    return 0


def _build_from_arrays(args) -> dict:
    from hashlearn.index.factory import index_factory
    from hashlearn.index.io import save_index
    from hashlearn.runs.run import load_npy

    codes = load_codes(args.codes, args.outputs)
    ids = load_npy(args.ids) if args.ids else None
    index = index_factory(args.factory, codes.shape[1] * 8)
    source = {"source": "hashlearn index build", "codes": str(args.codes or args.outputs), "factory": args.factory}
    try:
        index.add(codes, ids)
        path = save_index(index, args.output, info=source)
    finally:
        getattr(index, "close", lambda: None)()
    return {**source, "path": str(path), "n": int(len(codes)), "n_bits": int(codes.shape[1] * 8)}


def run_info(args) -> int:
    from hashlearn.index.io import read_header, verify_file

    header = read_header(args.path) if args.no_verify else verify_file(args.path)
    meta = header["meta"]
    if args.json:
        print_json({"file": args.path, "verified": not args.no_verify, **{k: v for k, v in header.items() if k != "meta"}, "meta": meta})
        return 0
    print(f"file:            {args.path}")
    print(f"format version:  {header['format_version']} (written by hashlearn {header.get('hashlearn_version', '?')})")
    print(f"kind:            {header['kind']}")
    print(f"n_bits:          {meta.get('n_bits', '?')}")
    print(f"size:            {header['file_nbytes']} bytes")
    print(f"checksums:       {'header only (payload not verified)' if args.no_verify else 'ok'}")
    for key, value in (header.get("info") or {}).items():
        print(f"{key + ':':<17}{value}")
    print("arrays:")
    for spec in header["arrays"]:
        print(f"  {spec['name']:<28} {spec['dtype']:<5} {'x'.join(map(str, spec['shape'])) or 'scalar':<16} {spec['nbytes']} bytes")
    return 0
