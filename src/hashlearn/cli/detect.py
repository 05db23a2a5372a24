"""``hashlearn detect``: find the poison of a ``hashlearn backdoor`` run; optionally retrain without it.

    hashlearn detect --run-dir runs/bd --defense spectral

Writes ``RUN_DIR/detect/<defense>.json``: flagged count, TPR, FPR and, with
``--retrain``, the metrics of a fresh victim trained on the training set minus
the flagged samples.
"""

from __future__ import annotations

import json

from hashlearn.cli.main import add_common_arguments, print_json, rate


def register(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="poison detection (spectral signatures, activation clustering) on a backdoor run")
    parser.add_argument("--run-dir", "--model", dest="run_dir", required=True, metavar="RUN_DIR", help="a run written by `hashlearn backdoor`")
    parser.add_argument("--defense", required=True, choices=["spectral", "ac"], help="spectral signatures or activation clustering")
    parser.add_argument("--expected-rate", type=rate, default=None, help="spectral: expected poison fraction per class (default: the run's rate)")
    parser.add_argument("--rule", choices=["smaller", "size", "silhouette"], default="size", help="ac: which clusters are poison")
    parser.add_argument("--reduction", choices=["pca", "ica"], default="pca", help="ac: reduction to 10 dimensions")
    parser.add_argument("--retrain", action="store_true", help="retrain a fresh victim on the cleaned set and report its metrics")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs import detect_run

    set_quiet(args.quiet)
    kwargs = {} if args.defense == "spectral" else {"rule": args.rule, "reduction": args.reduction}
    report = detect_run(args.run_dir, args.defense, expected_rate=args.expected_rate, retrain=args.retrain, **kwargs)
    print_json(report) if args.json else print(json.dumps(report, indent=2))
    return 0
