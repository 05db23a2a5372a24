"""``hashlearn backdoor``: train a backdoored classifier or hash model and save it, with its poison, as a run.

    hashlearn backdoor --attack badnets --dataset mnist5k --rate 0.1 --victim classifier --run-dir runs/bd
    hashlearn backdoor --attack wanet --target all-to-all --strength 1 --victim hash --run-dir runs/wanet

The run directory is a run (``config.json`` with a ``backdoor`` section,
``split/``, ``model/``) plus ``backdoor/`` (the poisoned training set, the
trigger of LIRA and WB, and ``backdoor.json``: attack parameters, metrics,
trigger visibility); see :mod:`hashlearn.runs.backdoor`.
"""

from __future__ import annotations

import json

from hashlearn.cli.main import add_common_arguments, nonnegative_float, nonnegative_int, positive_float, positive_int, print_json, rate
from hashlearn.runs.config import BACKDOOR_ATTACKS, BACKDOOR_MAPPINGS, BACKDOOR_VICTIMS

#: literal (no torch import for ``hashlearn --help``); a test checks them against the registries
ATTACK_NAMES = sorted(BACKDOOR_ATTACKS)
MAPPINGS = list(BACKDOOR_MAPPINGS)
VICTIMS = list(BACKDOOR_VICTIMS)


def register(subparsers) -> None:
    parser = subparsers.add_parser("backdoor", help="train a backdoored model (BadNets, Blended, LIRA, WB, WaNet) and save it as a run")
    parser.add_argument("--attack", required=True, choices=ATTACK_NAMES)
    parser.add_argument("--dataset", default="mnist5k", help="single-label image dataset (digits are 8x8 images)")
    parser.add_argument("--rate", type=rate, default=0.1, help="poisoning rate in (0, 1]")
    parser.add_argument("--victim", choices=VICTIMS, default="classifier", help="what is backdoored: a classifier or a hash model")
    parser.add_argument("--bits", type=positive_int, default=32, help="code length of a hash victim (a multiple of 8)")
    parser.add_argument("--target", choices=MAPPINGS, default="all-to-one", help="label mapping of the poison")
    parser.add_argument("--target-class", type=nonnegative_int, default=0, help="the target class of all-to-one")
    parser.add_argument("--eps", type=rate, default=0.05, help="L-inf budget of the LIRA/WB trigger, in (0, 1]")
    parser.add_argument("--strength", type=nonnegative_float, default=0.5, help="WaNet warp strength s (0 = no warp)")
    parser.add_argument("--grid-size", type=positive_int, default=4, help="WaNet control grid k (k x k random offsets, k >= 2)")
    parser.add_argument("--cross-ratio", type=nonnegative_float, default=2.0,
                        help="WaNet noise-mode samples (random warps, true labels) per poisoned sample")
    parser.add_argument("--stage1-epochs", type=positive_int, default=4, help="LIRA/WB stage-I epochs")
    parser.add_argument("--epochs", type=positive_int, default=6, help="victim training epochs (stage II for LIRA/WB)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="training batch size")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the split, the poison and the weights")
    parser.add_argument("--run-dir", required=True, help="folder to write the run into (must be empty or new)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --run-dir")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def config_from_args(args):
    """The backdoor run's :class:`~hashlearn.runs.RunConfig` from the command line."""
    from hashlearn.runs import RunConfig

    return RunConfig.from_dict({
        "data": {"dataset": args.dataset, "seed": args.seed},
        "method": {"name": "csq" if args.victim == "hash" else "classifier", "n_bits": args.bits},
        "trainer": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed},
        "backdoor": {"attack": args.attack, "victim": args.victim, "rate": args.rate, "target": args.target,
                     "target_class": args.target_class, "eps": args.eps, "stage1_epochs": args.stage1_epochs,
                     "strength": args.strength, "grid_size": args.grid_size, "cross_ratio": args.cross_ratio},
    })


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs import backdoor_run

    set_quiet(args.quiet)
    out = backdoor_run(config_from_args(args), args.run_dir, overwrite=args.overwrite)
    print_json(out) if args.json else print(json.dumps(out, indent=2))
    return 0
