"""``hashlearn demo``: the main job (LSH vs ITQ on Fashion-MNIST, then a deep method; see hashlearn.demo).

    hashlearn demo
    hashlearn demo --dataset digits --bits 16 32 --deep csq --deep-epochs 2

Every model it trains is saved as a run in ``runs/<time>/<method>-<bits>/``.
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, nonnegative_int, positive_int, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="fit hash methods on the default data, search, evaluate, write a report")
    add_common_arguments(parser, json=True)
    parser.add_argument("--dataset", default="fashion-mnist", help="dataset (default: fashion-mnist, falls back to digits)")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's files (e.g. Fashion-MNIST idx .gz)")
    parser.add_argument("--bits", type=positive_int, nargs="+", default=[16, 32, 64], help="code lengths of the shallow methods")
    parser.add_argument("--deep", nargs="*", default=["csq", "csq+hswd"], help="deep methods to train (none: skip)")
    parser.add_argument("--deep-epochs", type=positive_int, default=4, help="epochs per deep method")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="split and model seed")
    parser.add_argument("--run-root", default="runs", help="where runs/<timestamp>/ goes")
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.demo import DemoConfig, run_demo

    set_quiet(args.quiet)
    config = DemoConfig(dataset=args.dataset, bits=args.bits, seed=args.seed, data_dir=args.data_dir,
                        deep_methods=args.deep, deep_epochs=args.deep_epochs)
    run_demo(config, run_root=args.run_root)
    return 0
