"""``hashlearn evaluate``: encode a run's query and database parts, keep the codes, compute retrieval metrics.

    hashlearn evaluate --model runs/dpsh-32-digits
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="mAP@k, P@k, precision/recall within a radius for a run (metrics and codes kept in it)")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="a run directory written by `hashlearn train`")
    parser.add_argument("--k", type=int, default=1000, help="cut-off of mAP@k and P@k")
    parser.add_argument("--radius", type=int, default=2, help="Hamming radius of P@r / R@r")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs import evaluate_run

    if args.quiet:
        set_quiet(True)
    results = evaluate_run(args.model, k=args.k, radius=args.radius)
    for key, value in results.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0
