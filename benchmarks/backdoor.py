"""Backdoor benchmark: BadNets, Blended, LIRA and WB against small-CNN classifiers and hash models,
with spectral-signature and activation-clustering detection and retraining on the cleaned set.

    python benchmarks/backdoor.py --victims classifier      # one victim per process (2 cores: run two)
    python benchmarks/backdoor.py --victims hash
    python benchmarks/backdoor.py --report                  # merge into benchmarks/results/backdoor.{md,json}
    python benchmarks/backdoor.py --quick                   # digits, 1 epoch: a smoke run

Every number comes from one seed (0) on the dataset's standard protocol split
(mnist5k: train 2,000, validation 500, query/test 500, database 4,500).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.attacks.backdoor import make_attack
from hashlearn.attacks.backdoor.experiment import detect, evaluate, load_experiment_data, run_attack, train_clean
from hashlearn.defenses import detection_rates, latent_features
from hashlearn.defenses.spectral import spectral_scores
from hashlearn.train import TrainConfig

RESULTS = Path(__file__).parent / "results"
ATTACKS = ["badnets", "blended", "lira", "wb"]
AC_RULES = ["size", "silhouette", "smaller"]


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half): threshold-free separability of poison by a score."""
    from scipy.stats import rankdata

    positive = positive.astype(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def run_victim(victim: str, args, save=None) -> dict:
    data = load_experiment_data(args.dataset, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, seed=0)
    out = {"victim": victim, "dataset": args.dataset, "epochs": args.epochs, "stage1_epochs": args.stage1_epochs, "rate": args.rate, "n_bits": args.bits}
    started = time.perf_counter()
    clean_model, clean_result = train_clean(victim, data, config, n_bits=args.bits)
    out["clean"] = {"metrics": evaluate(clean_model, victim, data, None), "seconds": time.perf_counter() - started}
    print(victim, "clean", out["clean"], flush=True)
    out["attacks"] = {}
    for name in args.attacks:
        kwargs = {"rate": args.rate, "target_class": 0, "n_classes": data.n_classes, "seed": 0}
        if name in ("lira", "wb"):
            kwargs.update(eps=args.eps, stage1_epochs=args.stage1_epochs)
        attack = make_attack(name, **kwargs)
        run = run_attack(attack, victim, data, config, n_bits=args.bits)
        poisoned, model = run["result"].poisoned, run["result"].model
        entry = {
            "params": attack.params(),
            "metrics": run["metrics"],
            "clean_model_metrics": evaluate(clean_model, victim, data, attack),  # the trigger without a backdoor
            "visibility": run["visibility"],
            "seconds": run["seconds"],
            "stage1_seconds": run["result"].stage1_seconds,
            "n_poison": int(len(poisoned.poison_indices)),
            "detection": {},
            "retrained": {},
        }
        features = latent_features(model, poisoned.X)
        target = poisoned.y == 0
        entry["spectral_auroc_target_class"] = auroc(spectral_scores(features[target]), poisoned.poison_mask[target])
        settings = [("spectral", {})] + [(f"ac-{rule}", {"rule": rule}) for rule in AC_RULES]
        flagged_by = {}
        for label, kw in settings:
            flagged, _ = detect(model, poisoned.X, poisoned.y, label.split("-")[0], args.rate, **kw)
            tpr, fpr = detection_rates(flagged, poisoned.poison_indices, len(poisoned.y))
            entry["detection"][label] = {"tpr": tpr, "fpr": fpr, "n_flagged": int(len(flagged))}
            flagged_by[label] = flagged
        for label in args.retrain_with:
            keep = np.setdiff1d(np.arange(len(poisoned.y)), flagged_by[label])
            retrained, _ = train_clean(victim, data, config, n_bits=args.bits, train=(poisoned.X[keep], poisoned.y[keep]))
            entry["retrained"][label] = {"n_removed": int(len(poisoned.y) - len(keep)), "metrics": evaluate(retrained, victim, data, attack)}
        out["attacks"][name] = entry
        if save is not None:  # partial results survive an interrupted run
            save(out)
        print(victim, name, json.dumps({k: entry[k] for k in ("metrics", "visibility", "detection", "retrained")}), flush=True)
    out["seconds"] = time.perf_counter() - started
    return out


def fmt(value, digits=3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [
        "# Backdoor benchmark",
        "",
        f"Machine: {meta['machine']} (2 shared CPU cores, other jobs running; times are indicative). "
        f"Dataset {meta['dataset']}, standard protocol split, seed 0, one run per cell (no medians: a single seed).",
        f"Victims: small CNN classifier (cross-entropy) and small CNN hash model ({meta['n_bits']} bits, CSQ); "
        f"Adam 1e-3, batch 64, {meta['epochs']} epochs (classifier, hash), best epoch chosen on the clean validation split. "
        f"Poisoning rate {meta['rate']} (all-to-one, target class 0); LIRA/WB: eps = {meta['eps']}, "
        f"{meta['stage1_epochs']} stage-I epochs then the same training as the others (stage II).",
        "",
    ]
    if "classifier" in results["victims"]:
        r = results["victims"]["classifier"]
        base = r["clean"]["metrics"]["clean_accuracy"]
        lines += ["## Classifier", "", f"Clean-trained model: clean accuracy {fmt(base)}.", "",
                  "| attack | clean acc | Δ vs clean model (points) | ASR | ASR of the clean model | L∞ | PSNR (dB) | SSIM | train s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, e in r["attacks"].items():
            m, v = e["metrics"], e["visibility"]
            lines.append(f"| {name} | {fmt(m['clean_accuracy'])} | {100 * (m['clean_accuracy'] - base):+.1f} | {fmt(m['attack_success_rate'])} | "
                         f"{fmt(e['clean_model_metrics']['attack_success_rate'])} | {fmt(v['linf'])} | {fmt(v['psnr'], 1)} | {fmt(v['ssim'])} | {e['seconds']:.0f} |")
        lines.append("")
    if "hash" in results["victims"]:
        r = results["victims"]["hash"]
        base = r["clean"]["metrics"]["clean_map"]
        lines += ["## Hash model", "", f"Clean-trained model: clean mAP {fmt(base)} (queries: test split, database: 4,500 clean images).",
                  "t-mAP: mAP of triggered non-target queries when the relevant items are the target class; top-100: share of the 100 nearest codes from the target class. "
                  "'clean q.' = the same queries without trigger (baseline).", "",
                  "| attack | clean mAP | Δ (points) | t-mAP | t-mAP clean q. | top-100 target share | top-100 clean q. | t-mAP on the clean model | train s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, e in r["attacks"].items():
            m = e["metrics"]
            lines.append(f"| {name} | {fmt(m['clean_map'])} | {100 * (m['clean_map'] - base):+.1f} | {fmt(m['t_map_triggered'])} | {fmt(m['t_map_clean'])} | "
                         f"{fmt(m['top100_target_share_triggered'])} | {fmt(m['top100_target_share_clean'])} | {fmt(e['clean_model_metrics']['t_map_triggered'])} | {e['seconds']:.0f} |")
        lines.append("")
    lines += ["## Poison detection (TPR / FPR over the training set)", "",
              f"Spectral signatures flag 1.5 x {meta['rate']} of every class (the defender knows the rate); activation clustering: PCA to 10-d, "
              "2-means per class, rules: size (smaller cluster < 35% of the class), silhouette (> 0.15), smaller (always). "
              "AUROC: spectral score vs. poison inside the target class (threshold-free; 0.5 = no signal).", "",
              "| victim | attack | spectral | spectral AUROC (target class) | AC size | AC silhouette | AC smaller |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for victim, r in results["victims"].items():
        for name, e in r["attacks"].items():
            d = e["detection"]
            cells = [f"{fmt(d[k]['tpr'], 2)} / {fmt(d[k]['fpr'], 2)}" for k in ("spectral", "ac-size", "ac-silhouette", "ac-smaller")]
            lines.append(f"| {victim} | {name} | {cells[0]} | {fmt(e['spectral_auroc_target_class'], 2)} | {cells[1]} | {cells[2]} | {cells[3]} |")
    lines += ["", "## After retraining on the cleaned set", "", "A fresh victim, same recipe, trained on the training set minus the flagged samples.", "",
              "| victim | attack | defense | removed | clean acc / mAP | ASR / t-mAP |", "| --- | --- | --- | --- | --- | --- |"]
    for victim, r in results["victims"].items():
        for name, e in r["attacks"].items():
            for label, rt in e["retrained"].items():
                m = rt["metrics"]
                clean = m.get("clean_accuracy", m.get("clean_map"))
                success = m.get("attack_success_rate", m.get("t_map_triggered"))
                lines.append(f"| {victim} | {name} | {label} | {rt['n_removed']} | {fmt(clean)} | {fmt(success)} |")
    lines += ["", "Raw numbers: `backdoor.json` next to this file.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--victims", default="classifier,hash")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--stage1-epochs", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--retrain-with", default="spectral,ac-size", help="detectors whose cleaned set is retrained on ('' for none)")
    parser.add_argument("--quick", action="store_true", help="digits, 1 epoch, 1 stage-I epoch (smoke run)")
    parser.add_argument("--report", action="store_true", help="merge the per-victim JSON files into backdoor.md/.json")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    if args.quick:
        args.dataset, args.epochs, args.stage1_epochs = "digits", 1, 1
        out_dir = out_dir / "quick"
    torch.set_num_threads(1)
    set_quiet(True)
    if not args.report:
        args.attacks = args.attacks.split(",")
        args.retrain_with = [label for label in args.retrain_with.split(",") if label]
        for victim in args.victims.split(","):
            path = out_dir / f"backdoor_{victim}.json"
            result = run_victim(victim, args, save=lambda partial: atomic_write_json(path, partial))
            atomic_write_json(path, result)
    victims = {p.stem.split("_", 1)[1]: json.loads(p.read_text()) for p in sorted(out_dir.glob("backdoor_*.json"))}
    if not victims:
        print("no per-victim results yet", file=sys.stderr)
        return 1
    any_run = next(iter(victims.values()))
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} {platform.python_version()}, torch {torch.__version__}".strip(),
            "dataset": any_run["dataset"], "epochs": ", ".join(f"{v['epochs']}" for v in victims.values()), "stage1_epochs": any_run["stage1_epochs"],
            "rate": any_run["rate"], "n_bits": any_run["n_bits"], "eps": args.eps}
    results = {"meta": meta, "victims": victims}
    atomic_write_json(out_dir / "backdoor.json", results)
    atomic_write_text(out_dir / "backdoor.md", render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
