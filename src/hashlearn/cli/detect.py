"""``hashlearn detect``: find the poison of a ``hashlearn backdoor`` run; optionally retrain without it.

Writes ``detect_<defense>.json`` into the run directory: flagged count, TPR,
FPR and, with ``--retrain``, the metrics of a fresh victim trained on the
training set minus the flagged samples.
"""

from __future__ import annotations

import json
from pathlib import Path

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="poison detection (spectral signatures, activation clustering) on a backdoor run")
    parser.add_argument("--run-dir", required=True, help="folder written by `hashlearn backdoor`")
    parser.add_argument("--defense", required=True, choices=["spectral", "ac"])
    parser.add_argument("--expected-rate", type=float, default=None, help="spectral: expected poison fraction per class (default: the run's rate)")
    parser.add_argument("--rule", choices=["smaller", "size", "silhouette"], default="size", help="ac: which clusters are poison")
    parser.add_argument("--reduction", choices=["pca", "ica"], default="pca", help="ac: reduction to 10 dimensions")
    parser.add_argument("--retrain", action="store_true", help="retrain a fresh victim on the cleaned set and report its metrics")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._io import atomic_write_json
    from hashlearn._progress import set_quiet
    from hashlearn.attacks.backdoor.experiment import detect, evaluate, load_experiment_data, train_clean
    from hashlearn.cli.backdoor import load_run
    from hashlearn.defenses import detection_rates
    from hashlearn.train import TrainConfig

    set_quiet(args.quiet)
    saved = load_run(args.run_dir)
    arguments = saved["record"]["arguments"]
    rate = args.expected_rate if args.expected_rate is not None else arguments["rate"]
    kwargs = {} if args.defense == "spectral" else {"rule": args.rule, "reduction": args.reduction}
    flagged, _ = detect(saved["model"], saved["X"], saved["y"], args.defense, rate, **kwargs)
    tpr, fpr = detection_rates(flagged, saved["poison_indices"], len(saved["y"]))
    report = {"defense": args.defense, "settings": {"expected_rate": rate, **kwargs}, "n_flagged": int(len(flagged)), "tpr": tpr, "fpr": fpr}
    if args.retrain:
        import numpy as np

        data = load_experiment_data(arguments["dataset"], seed=arguments["seed"])
        keep = np.setdiff1d(np.arange(len(saved["y"])), flagged)
        config = TrainConfig(epochs=arguments["epochs"], batch_size=arguments["batch_size"], lr=arguments["lr"], seed=arguments["seed"])
        model, _ = train_clean(arguments["victim"], data, config, n_bits=arguments["bits"], train=(saved["X"][keep], saved["y"][keep]), seed=arguments["seed"])
        report["after_retraining"] = evaluate(model, arguments["victim"], data, saved["attack"])
    atomic_write_json(Path(args.run_dir) / f"detect_{args.defense}.json", report)
    print(json.dumps(report, indent=2))
    return 0
