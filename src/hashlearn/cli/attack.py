"""``hashlearn attack``: attack the queries of a run and report how retrieval degrades.

    hashlearn attack --model runs/csq-32 --attack hag --eps 8/255 --save-adv
    hashlearn attack --model runs/csq-32 --attack prosgan --eps 8/255 --epochs 10

``RUN_DIR`` is any run with a deep hash model: written by ``hashlearn train``,
``hashlearn demo`` or ``hashlearn backdoor --victim hash``. The dataset and
split are the run's own; the database codes are recomputed with the model.
The report goes to ``RUN_DIR/attack/<attack>.json``.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

from hashlearn.cli.main import add_common_arguments, add_k_argument, nonnegative_float, nonnegative_int, positive_int, print_json


def parse_eps(text: str) -> float:
    """``"8/255"`` -> 0.03137..., ``"0.03"`` -> 0.03; a positive finite number."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f"--eps must be a number or a fraction such as 8/255, got {text!r}.") from None
    if not value > 0:
        raise ValueError(f"--eps must be > 0, got {text!r}.")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("attack", help="adversarial queries against a run's hash model: mAP before and after")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="run folder holding the model and its split")
    parser.add_argument("--attack", default="hag", help="a registered attack: hag, pgd, fgsm, dhta, p2p, prototype, prosgan (generative: trained once on "
                        "the run's training split, kept in RUN_DIR/attack/prosgan_generator/ and reused); cmla on cross-modal runs")
    parser.add_argument("--eps", default=None, help="budget, a number or a fraction like 8/255, on the model's input scale; "
                        "an L-inf budget wider than the input range is refused (default 8/255; cross-modal text queries: "
                        "0.5 in bag-of-words, 0.25 for MiniLM embeddings)")
    parser.add_argument("--norm", default=None, choices=["linf", "l2"], help="norm of the budget (default linf; cross-modal text queries: l2)")
    parser.add_argument("--modality", default=None, choices=["image", "text"], help="cross-modal runs: the attacked query side (default image)")
    parser.add_argument("--intra-weight", type=nonnegative_float, default=0.5, help="cmla: weight of the intra-modal term (default 0.5)")
    parser.add_argument("--cmla-form", choices=["instance", "labels", "target"], default="instance",
                        help="cmla: away from the paired code (instance, default), the paper's label-similarity form "
                             "against the training pairs (labels), or two stages: a target code chosen against the training "
                             "pairs' codes, then reached within the budget (target)")
    parser.add_argument("--same-weight", type=nonnegative_float, default=1.0,
                        help="cmla --cmla-form target: lambda of -AP_cross + lambda AP_same when choosing the target code (default 1)")
    parser.add_argument("--steps", type=positive_int, default=100, help="gradient steps (FGSM always takes 1)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="prosgan: training epochs of the generator (default 10)")
    parser.add_argument("--n-queries", type=positive_int, default=None, help="attack only the first N queries of the split")
    parser.add_argument("--n-database", type=positive_int, default=None, help="seeded random subset of the database (speed)")
    add_k_argument(parser, 1000, "cut-off of mAP@k")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of random starts, anchors and targets")
    parser.add_argument("--save-adv", action="store_true", help="keep the adversarial inputs in RUN_DIR/attack/<attack>_adv.npy")
    parser.add_argument("--output", default=None, help="also write the report as JSON to this file")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs import attack_run

    set_quiet(args.quiet)
    eps = parse_eps(args.eps) if args.eps is not None else None
    report = attack_run(args.model, args.attack, eps=eps, norm=args.norm, steps=args.steps, n_queries=args.n_queries,
                        n_database=args.n_database, k=args.k, seed=args.seed, save_adv=args.save_adv,
                        modality=args.modality, intra_weight=args.intra_weight,
                        cmla_form=args.cmla_form, epochs=args.epochs, same_weight=args.same_weight)
    if args.json:
        print_json(report)
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    if args.output:
        from hashlearn._io import atomic_write_json

        atomic_write_json(Path(args.output), json.loads(json.dumps(report, default=float)))
    sys.stdout.flush()
    return 0
