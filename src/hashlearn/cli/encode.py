"""``hashlearn encode``: packed binary codes with a run's model, of a dataset part or of an array.

    hashlearn encode --model runs/csq-32-digits --dataset digits --part query -o q.npy
    hashlearn encode --model runs/csq-32-digits --input X.npy -o codes.npy

``--dataset`` encodes a part of the run's split (ids: the dataset's row
indices; without ``-o`` the codes are kept in the run's ``codes/``), ``--part
all`` every row. ``--input`` encodes an ``.npy`` array, checked against the
model's input spec: uint8 0-255 images for a model trained on [0, 1] inputs are
converted (and the conversion is reported), out-of-range values are refused.
"""

from __future__ import annotations

import sys

from hashlearn.cli.main import add_common_arguments, positive_int, print_json

PARTS = ["database", "query", "train", "validation", "all"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("encode", help="encode a dataset part or an .npy array into packed codes with a run's model")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="a run directory (or its model/ folder with --input)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a registered dataset (the run's own, or another with --part all)")
    source.add_argument("--input", help=".npy array of inputs (n, ...)")
    parser.add_argument("--part", choices=PARTS, default="database", help="part of the run's split to encode (with --dataset)")
    parser.add_argument("-o", "--output", help="where to write the uint8 codes (.npy); needed with --input")
    parser.add_argument("--ids-output", help="where to write the int64 ids (.npy) of the encoded rows (with --dataset)")
    parser.add_argument("--batch-size", type=positive_int, default=1024, help="items per forward pass")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from hashlearn._progress import set_quiet
    from hashlearn.runs import Run, encode_array, encode_dataset, load_model
    from hashlearn.runs.run import load_npy, save_npy

    set_quiet(args.quiet)
    say = None if args.quiet else (lambda message: print(f"hashlearn encode: note: {message}", file=sys.stderr))
    written = {}
    if args.input is not None:
        if not args.output:
            raise ValueError("--input needs -o/--output, the .npy file to write the codes to.")
        model_dir = Path(args.model)
        model = load_model(model_dir) if (model_dir / "model.json").is_file() or (model_dir / "estimator.json").is_file() else Run(model_dir).load_model()
        codes = encode_array(model, load_npy(args.input), batch_size=args.batch_size, name=f"--input {args.input}", say=say)
        ids = None
    else:
        codes, ids = encode_dataset(args.model, args.dataset, args.part, batch_size=args.batch_size, say=say)
        if not args.output:
            written["codes"], written["ids"] = (str(p) for p in Run(args.model).codes_path(args.part))
    if args.output:
        written["codes"] = str(save_npy(args.output, codes))
    if args.ids_output:
        if ids is None:
            raise ValueError("--ids-output goes with --dataset (an --input array has no dataset ids).")
        written["ids"] = str(save_npy(args.ids_output, ids))
    summary = {"n": int(len(codes)), "n_bits": int(codes.shape[1] * 8), **written}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['n']} codes of {summary['n_bits']} bits to {written.get('codes')}"
              + (f" (ids: {written['ids']})" if "ids" in written else ""))
    return 0
