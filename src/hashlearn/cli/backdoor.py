"""``hashlearn backdoor``: train a backdoored classifier or hash model and save it with its poison.

The run directory receives ``model/`` (weights + JSON), ``trigger/`` (LIRA and
WB), ``poisoned_X.npy``, ``poisoned_y.npy``, ``poison_indices.npy`` and
``backdoor.json`` (arguments, attack parameters, metrics, trigger visibility).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hashlearn.cli.main import add_common_arguments

RUN_FILE = "backdoor.json"


#: kept literal so that ``hashlearn --help`` does not import torch (a test checks them against the registries)
ATTACK_NAMES = ["badnets", "blended", "lira", "wb"]
MAPPINGS = ["all-to-one", "all-to-all"]
VICTIMS = ["classifier", "hash"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("backdoor", help="train a backdoored model (BadNets, Blended, LIRA, WB) and save it")
    parser.add_argument("--attack", required=True, choices=ATTACK_NAMES)
    parser.add_argument("--dataset", default="mnist5k", help="image dataset (default: mnist5k)")
    parser.add_argument("--rate", type=float, default=0.1, help="poisoning rate in (0, 1] (default: 0.1)")
    parser.add_argument("--victim", choices=VICTIMS, default="classifier")
    parser.add_argument("--bits", type=int, default=32, help="code length of a hash victim (default: 32)")
    parser.add_argument("--target", choices=MAPPINGS, default="all-to-one")
    parser.add_argument("--target-class", type=int, default=0)
    parser.add_argument("--eps", type=float, default=0.05, help="L-inf budget of the LIRA/WB trigger")
    parser.add_argument("--stage1-epochs", type=int, default=4, help="LIRA/WB stage-I epochs")
    parser.add_argument("--epochs", type=int, default=6, help="victim training epochs (stage II for LIRA/WB)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", required=True, help="folder to write the model, poison and metrics into")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def attack_kwargs(args, n_classes: int) -> dict:
    kwargs = {"target": args.target, "target_class": args.target_class, "n_classes": n_classes, "rate": args.rate, "seed": args.seed}
    if args.attack in ("lira", "wb"):
        kwargs.update(eps=args.eps, stage1_epochs=args.stage1_epochs, batch_size=args.batch_size)
    return kwargs


def run(args) -> int:
    from hashlearn._io import atomic_write_json
    from hashlearn._progress import set_quiet
    from hashlearn.attacks.backdoor import make_attack
    from hashlearn.attacks.backdoor.experiment import load_experiment_data, run_attack
    from hashlearn.train import TrainConfig

    set_quiet(args.quiet)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    data = load_experiment_data(args.dataset, seed=args.seed)
    attack = make_attack(args.attack, **attack_kwargs(args, data.n_classes))
    out = run_attack(attack, args.victim, data, config, n_bits=args.bits, seed=args.seed)
    result = out["result"]
    run_dir = Path(args.run_dir)
    result.model.save(run_dir / "model")
    if hasattr(attack, "save_trigger"):
        attack.save_trigger(run_dir / "trigger")
    _save_npy(run_dir / "poisoned_X.npy", result.poisoned.X)
    _save_npy(run_dir / "poisoned_y.npy", result.poisoned.y)
    _save_npy(run_dir / "poison_indices.npy", result.poisoned.poison_indices)
    record = {
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "attack": attack.params(),
        "metrics": out["metrics"],
        "visibility": out["visibility"],
        "train": result.train_result.to_dict(),
        "stage1_seconds": result.stage1_seconds,
        "seconds": out["seconds"],
    }
    atomic_write_json(run_dir / RUN_FILE, record)
    print(json.dumps({"metrics": out["metrics"], "visibility": out["visibility"]}, indent=2))
    return 0


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    from hashlearn._io import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def load_run(run_dir) -> dict:
    """What ``hashlearn backdoor`` saved: the record, the model, the poisoned set and the rebuilt attack."""
    from hashlearn.attacks.backdoor import make_attack
    from hashlearn.models import Classifier, HashModel

    run_dir = Path(run_dir)
    record_path = run_dir / RUN_FILE
    if not record_path.exists():
        raise FileNotFoundError(f"no {RUN_FILE} in {run_dir}; run `hashlearn backdoor --run-dir {run_dir}` first.")
    record = json.loads(record_path.read_text())
    model_class = Classifier if json.loads((run_dir / "model" / "model.json").read_text())["class"] == "Classifier" else HashModel
    params = dict(record["attack"])
    attack = make_attack(params.pop("attack"), **params)
    if hasattr(attack, "load_trigger"):
        attack.load_trigger(run_dir / "trigger")
    load = lambda name: np.load(run_dir / name, allow_pickle=False)  # noqa: E731
    return {
        "record": record,
        "model": model_class.load(run_dir / "model"),
        "attack": attack,
        "X": load("poisoned_X.npy"),
        "y": load("poisoned_y.npy"),
        "poison_indices": load("poison_indices.npy"),
    }
