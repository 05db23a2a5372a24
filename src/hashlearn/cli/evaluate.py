"""``hashlearn evaluate``: encode a run's query and database parts, keep the codes, compute retrieval metrics.

    hashlearn evaluate --model runs/csq-32-digits -k 100 --radius 2

Writes ``metrics.json`` and ``codes/{query,database}_{codes,ids}.npy`` into the run.
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, add_k_argument, nonnegative_int, positive_int, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="mAP@k, P@k, precision/recall within a radius for a run (metrics and codes kept in it)")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="a run directory written by `hashlearn train`")
    add_k_argument(parser, 1000, "cut-off of mAP@k and P@k")
    parser.add_argument("--radius", type=nonnegative_int, default=2, help="Hamming radius of P@r / R@r (at most the code length)")
    parser.add_argument("--batch-size", type=positive_int, default=1024, help="items per forward pass when encoding")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs import evaluate_run

    set_quiet(args.quiet)
    results = evaluate_run(args.model, k=args.k, radius=args.radius, batch_size=args.batch_size)
    if args.json:
        print_json(results)
        return 0
    for key, value in results.items():
        if isinstance(value, (dict, list)):  # PR / P@k curves (and cross-modal PR curves): in metrics.json and report.html
            continue
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0
