"""``hashlearn attack``: attack the queries of a trained run and report how retrieval degrades.

``RUN_DIR`` is a folder written by a training run: the model (``model/`` as
written by :meth:`Trainer.fit`, or ``model.json`` + ``model.safetensors`` in
``RUN_DIR`` itself) and the split (``split.json`` + ``split.npz`` from
:meth:`Split.save`). The dataset is reloaded by the name the split records;
the database codes are recomputed with the model.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

from hashlearn.cli.main import add_common_arguments


def parse_eps(text: str) -> float:
    """``"8/255"`` -> 0.03137..., ``"0.03"`` -> 0.03; a positive finite number."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--eps must be a number or a fraction such as 8/255, got {text!r}.") from None
    if not value > 0:
        raise ValueError(f"--eps must be > 0, got {text!r}.")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("attack", help="adversarial queries against a trained hash model: mAP before and after")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="run folder holding the model and its split")
    parser.add_argument("--attack", default="hag", help="hag, pgd, fgsm, dhta, p2p or prototype (default hag)")
    parser.add_argument("--eps", default="8/255", help="budget, a number or a fraction like 8/255 (default 8/255)")
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"], help="norm of the budget (default linf)")
    parser.add_argument("--steps", type=int, default=100, help="gradient steps (default 100; FGSM always 1)")
    parser.add_argument("--n-queries", type=int, default=None, help="attack only the first N queries of the split")
    parser.add_argument("--n-database", type=int, default=None, help="seeded random subset of the database (speed)")
    parser.add_argument("--k", type=int, default=1000, help="cut-off of mAP@k (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random starts, anchors and targets")
    parser.add_argument("--output", default=None, help="also write the report as JSON to this file")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def load_run(run_dir: Path):
    """(model, split) of a run folder; FileNotFoundError says what is missing."""
    from hashlearn.data.protocols import Split
    from hashlearn.models import HashModel

    if not run_dir.is_dir():
        raise FileNotFoundError(f"--model {run_dir} is not a folder; expected a run folder with model/ and split.json.")
    model_dir = run_dir / "model" if (run_dir / "model" / "model.json").exists() else run_dir
    if not (model_dir / "model.json").exists():
        raise FileNotFoundError(f"no saved model in {run_dir}: expected {run_dir / 'model' / 'model.json'} (HashModel.save).")
    if not (run_dir / "split.json").exists():
        raise FileNotFoundError(f"no split in {run_dir}: expected split.json and split.npz (Split.save) next to the model.")
    return HashModel.load(model_dir), Split.load(run_dir)


def run(args) -> int:
    import numpy as np
    import torch

    from hashlearn._progress import set_quiet
    from hashlearn.attacks import ATTACKS
    from hashlearn.attacks.evaluation import evaluate_attack, model_codes
    from hashlearn.data import load_dataset

    set_quiet(args.quiet)
    if args.attack not in ATTACKS:
        raise ValueError(f"--attack must be one of {', '.join(ATTACKS)}, got {args.attack!r}.")
    eps = parse_eps(args.eps)
    for name in ("steps", "k"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    for name in ("n_queries", "n_database"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
    model, split = load_run(Path(args.model))
    dataset = load_dataset(split.dataset)
    if dataset.modality not in ("image", "vector"):
        raise ValueError(f"attacks perturb numeric inputs; dataset {split.dataset!r} is {dataset.modality}.")
    if dataset.labels is None:
        raise ValueError(f"dataset {split.dataset!r} is unlabelled; attack evaluation needs labels.")
    data, labels = np.asarray(dataset.data, dtype=np.float32), dataset.labels
    query_index = split.query[: args.n_queries]
    db_index = split.database
    if args.n_database is not None and args.n_database < len(db_index):
        db_index = np.sort(np.random.default_rng(args.seed).choice(db_index, size=args.n_database, replace=False))
    queries, query_labels = torch.from_numpy(data[query_index]), labels[query_index]
    db_codes = model_codes(model, torch.from_numpy(data[db_index]))
    db_labels = labels[db_index]

    attack_cls = ATTACKS[args.attack]
    kwargs = dict(eps=eps, norm=args.norm, seed=args.seed, clip=(0.0, 1.0) if dataset.modality == "image" else None)
    if args.attack != "fgsm":
        kwargs["steps"] = args.steps
    target_labels = None
    if attack_cls.targeted:
        attack = attack_cls(model, db_codes, db_labels, **kwargs)
        if labels.ndim != 1:
            raise ValueError("targeted attacks from the CLI need single-label data (the target is a class id).")
        offsets = np.random.default_rng(args.seed).integers(1, dataset.n_classes, size=len(query_labels))
        target_labels = (query_labels + offsets) % dataset.n_classes  # a random other class
    else:
        attack = attack_cls(model, **kwargs)
    report = evaluate_attack(attack, queries, query_labels, db_codes, db_labels, target_labels=target_labels, k=args.k)
    report = {"run_dir": str(args.model), "dataset": split.dataset, "n_database": int(len(db_index)), "attack_repr": repr(attack), **report}
    for key, value in report.items():
        print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    if args.output:
        from hashlearn._io import atomic_write_json

        atomic_write_json(Path(args.output), json.loads(json.dumps(report, default=float)))
    sys.stdout.flush()
    return 0
