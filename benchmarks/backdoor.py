"""Backdoor benchmark: BadNets, Blended, LIRA, WB and WaNet against small-CNN classifiers and hash models,
all-to-one and all-to-all, every poison detector at 3% and 10% poisoning, t-SNE of the latent space, and
the DSWD vs SWD estimate.

    nice -n 10 python benchmarks/backdoor.py --victims classifier &   # one process per victim (2 cores)
    nice -n 10 python benchmarks/backdoor.py --victims hash &
    python benchmarks/backdoor.py --report                            # merge into results/backdoor.{md,json}
    python benchmarks/backdoor.py --quick                             # digits, 1 epoch, 4 cells: a smoke run

Each cell (victim, attack, target mapping, rate) is one JSON file under ``results/backdoor_cells/``,
written when the cell finishes; a rerun skips the cells that exist (``--force`` redoes them), so an
interrupted run resumes, and ``--report`` renders whatever cells are there. Every number comes from
one seed (0) on the dataset's standard protocol split (mnist5k: train 2,000, validation 500,
query/test 500, database 4,500).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.attacks.backdoor import make_attack
from hashlearn.attacks.backdoor.experiment import detect, evaluate, latent_tsne, load_experiment_data, run_attack, train_clean
from hashlearn.defenses import detection_rates, latent_features
from hashlearn.defenses.spectral import spectral_scores
from hashlearn.train import TrainConfig

RESULTS = Path(__file__).parent / "results"
#: benchmark name -> (registered attack, extra parameters); "wanet" is the paper's setting (k=4, s=0.5, cross ratio 2)
VARIANTS = {
    "badnets": ("badnets", {}), "blended": ("blended", {}), "lira": ("lira", {}), "wb": ("wb", {}),
    "wanet": ("wanet", {}), "wanet-s1": ("wanet", {"strength": 1.0}),
}
ALL_TO_ONE = ["badnets", "blended", "lira", "wb", "wanet", "wanet-s1"]
ALL_TO_ALL = ["badnets", "blended", "lira", "wanet-s1"]  # WB matches features to one target class: all-to-one only
#: (label, defense, kwargs) -- every detector in hashlearn.defenses, activation clustering with each rule
DETECTORS = [
    ("spectral", "spectral", {}),
    ("ac-size", "ac", {"rule": "size"}),
    ("ac-silhouette", "ac", {"rule": "silhouette"}),
    ("ac-smaller", "ac", {"rule": "smaller"}),
    ("ac-ica-size", "ac", {"rule": "size", "reduction": "ica"}),
]
SWD_DIRECTIONS = [10, 30, 100, 300, 1000, 3000, 10000]
SWD_REPEATS = 20
SWD_BATCH = 64


def cells(victim: str, quick: bool) -> list[tuple[str, str, float]]:
    """The (attack, target, rate) cells of one victim, most informative first (partial runs stay useful)."""
    if quick:
        return [("badnets", "all-to-one", 0.1), ("wanet-s1", "all-to-one", 0.1), ("wb", "all-to-one", 0.1), ("wanet-s1", "all-to-all", 0.1)]
    return ([(a, "all-to-one", 0.1) for a in ALL_TO_ONE] + [(a, "all-to-one", 0.03) for a in ALL_TO_ONE]
            + [(a, "all-to-all", 0.1) for a in ALL_TO_ALL])


def cell_name(victim: str, attack: str, target: str, rate: float) -> str:
    return f"{victim}-{attack}-{target}-{rate:g}"


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half): threshold-free separability of poison by a score."""
    from scipy.stats import rankdata

    positive = positive.astype(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def separability(features: np.ndarray, labels: np.ndarray, poison_mask: np.ndarray) -> dict:
    """Per training label that holds poison: spectral-score AUROC and the silhouette of poison vs clean; size-weighted means.

    Both are threshold-free: AUROC 0.5 / silhouette 0 = the poison is not apart from its label's clean samples.
    """
    from sklearn.metrics import silhouette_score

    aurocs, silhouettes, weights = [], [], []
    for label in np.unique(labels[poison_mask]):
        members = labels == label
        poison = poison_mask[members]
        if poison.all() or not poison.any():
            continue
        class_features = features[members]
        aurocs.append(auroc(spectral_scores(class_features), poison))
        silhouettes.append(float(silhouette_score(class_features, poison.astype(int))))
        weights.append(int(poison.sum()))
    if not weights:
        return {"spectral_auroc": float("nan"), "latent_silhouette": float("nan")}
    return {"spectral_auroc": float(np.average(aurocs, weights=weights)), "latent_silhouette": float(np.average(silhouettes, weights=weights))}


# -- DSWD vs SWD ----------------------------------------------------------------------------


def swd_experiment(model, poisoned, target_class: int, seed: int = 0) -> dict:
    """Variance and cost of the sliced Wasserstein distance with L random directions vs DSWD's fixed ones.

    Samples: A = latent features of the poisoned (triggered, relabelled) training rows; B1, B2 =
    two disjoint halves of the clean target-class rows. ``poison`` = distance(A, B1), ``null`` =
    distance(B2, B1): two clean samples of one class, the value a distance gives with no poison.
    Full-sample rows: the spread comes from the directions only (SWD redraws them, DSWD has none);
    batch rows: minibatches of 64 from each side, as one WB training step sees them.
    """
    from hashlearn.attacks.backdoor.lira import final_linear
    from hashlearn.attacks.backdoor.wb import discriminative_swd
    from hashlearn.quantization.swd import random_directions

    rng = np.random.default_rng(seed)
    A = torch.from_numpy(latent_features(model, poisoned.X[poisoned.poison_indices]).astype(np.float32))
    clean_target = np.flatnonzero((poisoned.y == target_class) & ~poisoned.poison_mask)
    rng.shuffle(clean_target)
    half = len(clean_target) // 2
    B1 = torch.from_numpy(latent_features(model, poisoned.X[clean_target[:half]]).astype(np.float32))
    B2 = torch.from_numpy(latent_features(model, poisoned.X[clean_target[half:]]).astype(np.float32))
    dsw_directions = final_linear(model).weight.detach().float().cpu()
    width = A.shape[1]

    def timed(fn):
        started = time.perf_counter()
        value = float(fn())
        return value, time.perf_counter() - started

    out = {"n_poison": len(A), "n_target_half": half, "feature_dim": width, "dswd_directions": int(dsw_directions.shape[0]),
           "full": {}, "batch": {}}
    with torch.no_grad():
        for pair, (left, right) in (("poison", (A, B1)), ("null", (B2, B1))):
            value, seconds = timed(lambda: discriminative_swd(left, right, dsw_directions))
            out["full"][f"dswd_{pair}"] = {"mean": value, "std": 0.0, "seconds": seconds}
            for n_dirs in SWD_DIRECTIONS:
                values, times = [], []
                for repeat in range(SWD_REPEATS):
                    directions = random_directions(width, n_dirs, torch.Generator().manual_seed(1000 * repeat + n_dirs)).T
                    value, seconds = timed(lambda: discriminative_swd(left, right, directions))
                    values.append(value)
                    times.append(seconds)
                out["full"][f"swd{n_dirs}_{pair}"] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)),
                                                      "seconds": float(np.median(times))}
        # at most half of the smaller sample, so that batches differ between draws
        batch = out["batch_size"] = int(min(SWD_BATCH, len(A) // 2, half // 2))
        for name, n_dirs in (("dswd", None), ("swd100", 100), ("swd1000", 1000), ("swd10000", 10000)):
            for pair, (left, right) in (("poison", (A, B1)), ("null", (B2, B1))):
                values = []
                for repeat in range(SWD_REPEATS):
                    batch_rng = np.random.default_rng([seed, repeat])
                    a = left[batch_rng.choice(len(left), batch, replace=False)]
                    b = right[batch_rng.choice(len(right), batch, replace=False)]
                    directions = dsw_directions if n_dirs is None else random_directions(width, n_dirs, torch.Generator().manual_seed(repeat)).T
                    values.append(float(discriminative_swd(a, b, directions)))
                out["batch"][f"{name}_{pair}"] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}
    return out


# -- one cell ------------------------------------------------------------------------------------


def run_cell(victim: str, variant: str, target: str, rate: float, data, config, args, clean_model) -> dict:
    name, extra = VARIANTS[variant]
    kwargs = {"rate": rate, "target": target, "target_class": 0, "n_classes": data.n_classes, "seed": 0, **extra}
    if name in ("lira", "wb"):
        kwargs.update(eps=args.eps, stage1_epochs=args.stage1_epochs)
    attack = make_attack(name, **kwargs)
    load_before = os.getloadavg()[0]
    run = run_attack(attack, victim, data, config, n_bits=args.bits)
    poisoned, model = run["result"].poisoned, run["result"].model
    entry = {
        "victim": victim, "attack": variant, "target": target, "rate": rate, "params": attack.params(),
        "metrics": run["metrics"],
        "clean_model_metrics": evaluate(clean_model, victim, data, attack),  # the trigger without a backdoor
        "visibility": run["visibility"], "seconds": run["seconds"], "stage1_seconds": run["result"].stage1_seconds,
        "n_poison": int(len(poisoned.poison_indices)), "n_noise": int(len(getattr(poisoned, "noise_indices", ()))),
        "detection": {},
    }
    features = latent_features(model, poisoned.X)
    entry["separability"] = separability(features, poisoned.y, poisoned.poison_mask)
    for label, defense, kw in DETECTORS:
        started = time.perf_counter()
        try:
            flagged, _ = detect(model, poisoned.X, poisoned.y, defense, rate, **kw)
        except (ValueError, np.linalg.LinAlgError) as error:  # a detector that breaks on these features is a result too
            entry["detection"][label] = {"tpr": float("nan"), "fpr": float("nan"), "n_flagged": 0, "error": f"{type(error).__name__}: {error}"}
            continue
        tpr, fpr = detection_rates(flagged, poisoned.poison_indices, len(poisoned.y))
        entry["detection"][label] = {"tpr": tpr, "fpr": fpr, "n_flagged": int(len(flagged)), "seconds": time.perf_counter() - started}
    if rate == 0.1:
        rows, points = latent_tsne(model, poisoned.X, poisoned.poison_indices, noise_indices=getattr(poisoned, "noise_indices", None))
        entry["tsne"] = {"rows": rows.tolist(), "points": np.round(points, 3).tolist(), "labels": poisoned.y[rows].tolist(),
                         "poisoned": poisoned.poison_mask[rows].tolist(),
                         "noise": np.isin(rows, getattr(poisoned, "noise_indices", [])).tolist()}
    if target == "all-to-one" and rate == 0.1 and variant in ("lira", "wb"):
        entry["swd"] = swd_experiment(model, poisoned, target_class=0)
    entry["load_average"] = [load_before, os.getloadavg()[0]]
    return entry


def run_victim(victim: str, args, out_dir: Path) -> None:
    cell_dir = out_dir / "backdoor_cells"
    todo = [c for c in cells(victim, args.quick) if args.force or not (cell_dir / f"{cell_name(victim, *c)}.json").is_file()]
    if not todo:
        print(victim, "all cells done", flush=True)
        return
    data = load_experiment_data(args.dataset, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, seed=0)
    started = time.perf_counter()
    clean_model, clean_result = train_clean(victim, data, config, n_bits=args.bits)
    clean = {"victim": victim, "attack": "none", "metrics": evaluate(clean_model, victim, data, None), "seconds": time.perf_counter() - started,
             "sizes": {part: int(len(getattr(data, part)[0])) for part in ("train", "val", "test", "database")},
             "dataset": args.dataset, "epochs": args.epochs, "stage1_epochs": args.stage1_epochs, "n_bits": args.bits, "eps": args.eps}
    atomic_write_json(cell_dir / f"{victim}-clean.json", clean)
    print(victim, "clean", clean["metrics"], flush=True)
    for attack, target, rate in todo:
        entry = run_cell(victim, attack, target, rate, data, config, args, clean_model)
        atomic_write_json(cell_dir / f"{cell_name(victim, attack, target, rate)}.json", entry)
        print(victim, attack, target, rate, json.dumps({k: entry[k] for k in ("metrics", "separability")}), f"{entry['seconds']:.0f}s", flush=True)


# -- the report ----------------------------------------------------------------------------------


def fmt(value, digits=3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def tsne_figure(entries: list[dict], title: str):
    """One t-SNE panel per cell: clean points coloured by label, poison as black crosses, noise-mode rows as rings."""
    from hashlearn.eval.plots import new_figure

    ncols = min(4, len(entries))
    nrows = -(-len(entries) // ncols)
    fig, axes = new_figure(width=3.2 * ncols, height=3.1 * nrows, ncols=ncols, nrows=nrows)
    for ax, entry in zip(axes, entries):
        t = entry["tsne"]
        points, labels = np.asarray(t["points"]), np.asarray(t["labels"])
        poisoned, noise = np.asarray(t["poisoned"], bool), np.asarray(t["noise"], bool)
        clean = ~poisoned & ~noise
        ax.scatter(points[clean, 0], points[clean, 1], c=labels[clean], cmap="tab10", vmin=0, vmax=9, s=5, alpha=0.6)
        if noise.any():
            ax.scatter(points[noise, 0], points[noise, 1], facecolors="none", edgecolors="0.35", s=10, linewidths=0.6)
        ax.scatter(points[poisoned, 0], points[poisoned, 1], c="black", marker="x", s=9, linewidths=0.7)
        sep = entry["separability"]
        ax.set_title(f"{entry['attack']} {entry['target']}\nsilhouette {fmt(sep['latent_silhouette'], 2)}, AUROC {fmt(sep['spectral_auroc'], 2)}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(entries):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main_table(victim: str, entries: list[dict], clean: dict) -> list[str]:
    if victim == "classifier":
        base = clean["metrics"]["clean_accuracy"]
        lines = [f"Clean-trained classifier: clean accuracy {fmt(base)}.", "",
                 "| attack | target | clean acc | Δ vs clean model (points) | ASR | ASR of the clean model | L∞ | PSNR (dB) | SSIM | train s |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in entries:
            m, v = e["metrics"], e["visibility"]
            lines.append(f"| {e['attack']} | {e['target']} | {fmt(m['clean_accuracy'])} | {100 * (m['clean_accuracy'] - base):+.1f} | "
                         f"{fmt(m['attack_success_rate'])} | {fmt(e['clean_model_metrics']['attack_success_rate'])} | {fmt(v['linf'])} | "
                         f"{fmt(v['psnr'], 1)} | {fmt(v['ssim'])} | {e['seconds']:.0f} |")
        return lines + [""]
    base = clean["metrics"]["clean_map"]
    lines = [f"Clean-trained hash model: clean mAP {fmt(base)} (queries: test split; database: {clean['sizes']['database']:,} clean images).", "",
             "| attack | target | clean mAP | Δ (points) | t-mAP | t-mAP clean q. | top-100 target share | top-100 clean q. | t-mAP on the clean model | PSNR (dB) | train s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        m = e["metrics"]
        lines.append(f"| {e['attack']} | {e['target']} | {fmt(m['clean_map'])} | {100 * (m['clean_map'] - base):+.1f} | {fmt(m['t_map_triggered'])} | "
                     f"{fmt(m['t_map_clean'])} | {fmt(m['top100_target_share_triggered'])} | {fmt(m['top100_target_share_clean'])} | "
                     f"{fmt(e['clean_model_metrics']['t_map_triggered'])} | {fmt(e['visibility']['psnr'], 1)} | {e['seconds']:.0f} |")
    return lines + [""]


def success(entry: dict) -> float:
    m = entry["metrics"]
    return m.get("attack_success_rate", m.get("t_map_triggered"))


def failures(entries: list[dict]) -> list[str]:
    """Where attacks and defenses fail, read off the cells with fixed thresholds (stated in the text)."""
    lines = []
    weak = [e for e in entries if success(e) < 0.9]
    if weak:
        lines.append("Attacks that do not implant (ASR or t-mAP < 0.9): " + "; ".join(
            f"{e['victim']} {e['attack']} {e['target']} {e['rate']:g}: {fmt(success(e))}" for e in weak) + ".")
    for label, _, _ in DETECTORS:
        broken = [e for e in entries if "error" in e["detection"][label]]
        if broken:
            lines.append(f"`{label}` raised an error on {len(broken)} of {len(entries)} cells (shown as n/a): "
                         f"{broken[0]['detection'][label]['error'][:120]}"
                         + (" -- FastICA's NaN came from rank-deficient features (dead ReLU units); fixed in cee540d by "
                            "capping the components at the rank; cells computed before the fix keep the error until rerun with --force."
                            if "NaN" in broken[0]["detection"][label]["error"] else ""))
        missed = [e for e in entries if e["detection"][label]["tpr"] < 0.5]
        noisy = [e for e in entries if e["detection"][label]["tpr"] >= 0.5 and e["detection"][label]["fpr"] > 0.2]
        caught = [e for e in entries if e["detection"][label]["tpr"] >= 0.9 and e["detection"][label]["fpr"] <= 0.1]
        if len(broken) == len(entries):
            continue
        lines.append(f"`{label}`: catches (TPR >= 0.9 at FPR <= 0.1) {len(caught)} of {len(entries) - len(broken)} cells"
                     + (" (" + ", ".join(f"{e['victim']} {e['attack']} {e['target']} {e['rate']:g}" for e in caught) + ")" if caught else "")
                     + f"; misses (TPR < 0.5) {len(missed)} of {len(entries) - len(broken)}; finds the poison only by flagging > 20% of the clean data in {len(noisy)}.")
    return [f"- {line}" for line in lines]


def swd_section(entries: list[dict]) -> list[str]:
    rows = [e for e in entries if "swd" in e]
    if not rows:
        return []
    lines = ["## DSWD vs SWD: variance and cost against the number of directions", "",
             "The latent term of WB compares the penultimate features of poisoned inputs with those of clean target-class inputs by a "
             "sliced Wasserstein distance. With random directions (SWD, `hashlearn.quantization.swd.random_directions`) the estimate "
             "changes with every draw; DSWD (`discriminative_swd`) projects on the rows of the victim's final linear layer (10 for the "
             "classifier, one per bit for the hash model), fixed for a given model, so on fixed samples it has no direction noise. "
             "Both use the same quantile matching (squared 1-D W2, averaged over directions), so only the directions differ. "
             "Samples, from each backdoored model at 10% all-to-one: A = features of the poisoned training rows, B1 / B2 = two disjoint "
             f"halves of the clean target-class rows. `poison` = d(A, B1); `null` = d(B2, B1), two clean samples of one class. "
             f"Mean ± standard deviation over {SWD_REPEATS} draws of the directions; time = median seconds per estimate on one thread. "
             "SNR = (poison - null) / std(poison): how many standard deviations of its own noise separate the poison from the null. "
             "DSWD's time is one timed call (no repeats), so under load it is noisier than the SWD medians.", ""]
    for e in rows:
        s = e["swd"]
        full = s["full"]
        lines += [f"### {e['victim']}, {e['attack']} ({s['n_poison']} poisoned vs {s['n_target_half']} + {s['n_target_half']} clean target rows, "
                  f"{s['feature_dim']}-d features, DSWD on {s['dswd_directions']} directions)", "",
                  "| estimate | poison: mean ± std | CV | null: mean ± std | poison / null | SNR | ms per estimate |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for key in ["dswd"] + [f"swd{n}" for n in SWD_DIRECTIONS]:
            p, n = full[f"{key}_poison"], full[f"{key}_null"]
            cv = p["std"] / p["mean"] if p["mean"] else float("nan")
            snr = (p["mean"] - n["mean"]) / p["std"] if p["std"] > 0 else float("inf")
            label = f"DSWD ({s['dswd_directions']} fixed)" if key == "dswd" else f"SWD, {key[3:]} random"
            lines.append(f"| {label} | {p['mean']:.4g} ± {p['std']:.2g} | {fmt(cv)} | {n['mean']:.4g} ± {n['std']:.2g} | "
                         f"{p['mean'] / n['mean']:.2f} | {'∞ (no direction noise)' if snr == float('inf') else f'{snr:.1f}'} | {1000 * p['seconds']:.2f} |")
        batch = s["batch"]
        lines += ["", f"Minibatches of {s['batch_size']} per side ({SWD_REPEATS} draws; the noise a WB training step sees, data and directions):", "",
                  "| estimate | poison: mean ± std | CV | null: mean ± std | poison / null |", "| --- | --- | --- | --- | --- |"]
        for key, label in (("dswd", "DSWD"), ("swd100", "SWD, 100"), ("swd1000", "SWD, 1000"), ("swd10000", "SWD, 10000")):
            p, n = batch[f"{key}_poison"], batch[f"{key}_null"]
            lines.append(f"| {label} | {p['mean']:.4g} ± {p['std']:.2g} | {fmt(p['std'] / p['mean'])} | {n['mean']:.4g} ± {n['std']:.2g} | {p['mean'] / n['mean']:.2f} |")
        lines.append("")
    return lines


def render(clean: dict, entries: list[dict], meta: dict, figures: list[str]) -> str:
    any_clean = next(iter(clean.values()))
    sizes = any_clean["sizes"]
    wanet = next((e["params"] for e in entries if e["attack"] == "wanet"), None)
    lines = [
        "# Backdoor benchmark",
        "",
        f"Machine: {meta['machine']}; 2 CPU cores shared with other jobs (load average per cell {meta['load_range']}), so times are "
        "indicative only. One seed (0), one run per cell: no medians, and differences of a few points are within seed noise.",
        f"Data: {any_clean['dataset']}, standard protocol split: train {sizes['train']:,}, validation {sizes['val']:,} (clean, selects the epoch), "
        f"test/query {sizes['test']:,}, database {sizes['database']:,}.",
        f"Victims: small CNN classifier (cross-entropy) and small CNN hash model ({any_clean['n_bits']} bits, CSQ); Adam 1e-3, batch 64, "
        f"{any_clean['epochs']} epochs, best epoch on the clean validation split. Target class 0 (all-to-one) or y -> y + 1 (all-to-all). "
        f"LIRA/WB: eps = {any_clean['eps']}, {any_clean['stage1_epochs']} stage-I epochs, then the same training as the others (stage II). "
        + (f"WaNet: k = {wanet['grid_size']}, s = {wanet['strength']} (the paper's setting), grid_rescale {wanet['grid_rescale']}, "
           f"cross ratio {wanet['cross_ratio']} (noise-mode samples per poisoned one, labels kept); `wanet-s1`: the same with s = 1. " if wanet else "")
        + f"{len(entries)} cells.",
        "",
    ]
    for victim in ("classifier", "hash"):
        rows = [e for e in entries if e["victim"] == victim and e["rate"] == 0.1]
        if victim in clean and rows:
            lines += [f"## {'Classifier' if victim == 'classifier' else 'Hash model'} at 10% poisoning", ""]
            if victim == "hash":
                lines += ["t-mAP: mAP of triggered queries (those the mapping flips) when the relevant items are the class eta(y); top-100: share of the "
                          "100 nearest codes from that class; 'clean q.' = the same queries without trigger (the baseline).", ""]
            lines += main_table(victim, rows, clean[victim])
    at3 = [e for e in entries if e["rate"] == 0.03]
    if at3:
        lines += ["## At 3% poisoning (all-to-one)", "", "| victim | attack | clean acc / mAP | ASR / t-mAP | clean model's ASR / t-mAP |", "| --- | --- | --- | --- | --- |"]
        for e in at3:
            m = e["metrics"]
            lines.append(f"| {e['victim']} | {e['attack']} | {fmt(m.get('clean_accuracy', m.get('clean_map')))} | {fmt(success(e))} | "
                         f"{fmt(e['clean_model_metrics'].get('attack_success_rate', e['clean_model_metrics'].get('t_map_triggered')))} |")
        lines.append("")
    lines += ["## Poison detection: every detector against every attack (TPR / FPR over the training set)", "",
              "Spectral signatures flag 1.5 x rate of every class (the defender is told the rate). Activation clustering: PCA (or FastICA: "
              "`ac-ica-size`) to 10-d, 2-means per class; rules: size (smaller cluster < 35% of its class), silhouette (> 0.15), smaller "
              "(always). Threshold-free columns, per training label holding poison (size-weighted): AUROC of the spectral score for poison "
              "vs clean, and the silhouette of poison vs clean in the latent space (0 = mixed in, 1 = apart). WaNet's noise-mode rows "
              "count as clean (they keep their labels).", "",
              "| victim | attack | target | rate | poisoned | spectral | AUROC | silhouette | AC size | AC silhouette | AC smaller | AC (ICA) size |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in sorted(entries, key=lambda e: (e["victim"], -e["rate"], e["target"] != "all-to-one")):
        d = e["detection"]
        cells_ = [f"{fmt(d[label]['tpr'], 2)} / {fmt(d[label]['fpr'], 2)}" for label, _, _ in DETECTORS]
        sep = e["separability"]
        lines.append(f"| {e['victim']} | {e['attack']} | {e['target']} | {e['rate']:g} | {e['n_poison']} | {cells_[0]} | {fmt(sep['spectral_auroc'], 2)} | "
                     f"{fmt(sep['latent_silhouette'], 2)} | {' | '.join(cells_[1:])} |")
    lines += ["", "## Where attacks and defenses fail", "", *failures(entries), ""]
    if figures:
        lines += ["## t-SNE of the latent space (10% poisoning)", "",
                  "Penultimate-layer features of 400 clean + up to 200 poisoned (+ up to 100 WaNet noise-mode) training rows, t-SNE (scikit-learn, "
                  "perplexity 30, PCA init, seed 0). Clean points coloured by label, poison as black crosses, noise-mode rows as grey rings; each "
                  "panel names the cell's latent silhouette and spectral AUROC.", ""]
        lines += [f"![t-SNE]({name})" for name in figures] + [""]
    lines += swd_section(entries)
    lines += ["Raw numbers: `backdoor.json` next to this file (and one file per cell in `backdoor_cells/`).", ""]
    return "\n".join(lines)


def report(out_dir: Path) -> int:
    cell_dir = out_dir / "backdoor_cells"
    clean = {p.stem.split("-")[0]: json.loads(p.read_text()) for p in sorted(cell_dir.glob("*-clean.json"))}
    order = {c: i for i, c in enumerate(cells("classifier", False))}
    for cell in cells("classifier", True):
        order.setdefault(cell, len(order))
    entries = [json.loads(p.read_text()) for p in sorted(cell_dir.glob("*.json")) if not p.stem.endswith("-clean")]
    entries.sort(key=lambda e: (e["victim"] != "classifier", order.get((e["attack"], e["target"], e["rate"]), 99)))
    if not clean or not entries:
        print(f"no cells in {cell_dir} yet", file=sys.stderr)
        return 1
    from hashlearn.eval.plots import save_figure

    figures = []
    for victim in ("classifier", "hash"):
        with_tsne = [e for e in entries if e["victim"] == victim and "tsne" in e]
        if with_tsne:
            name = f"backdoor_tsne_{victim}.png"
            save_figure(tsne_figure(with_tsne, f"{victim}: latent features, clean vs poisoned (10% poisoning)"), out_dir / name, dpi=90)
            figures.append(name)
    loads = [x for e in entries for x in e.get("load_average", [])]
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} Python {platform.python_version()}, torch {torch.__version__}".replace("  ", " "),
            "load_range": f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded"}
    atomic_write_json(out_dir / "backdoor.json", {"meta": meta, "clean": clean,
                                                   "cells": [{k: v for k, v in e.items() if k != "tsne"} for e in entries]})
    text = render(clean, entries, meta, figures)
    atomic_write_text(out_dir / "backdoor.md", text)
    print(text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--victims", default="classifier,hash")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stage1-epochs", type=int, default=2)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--force", action="store_true", help="redo cells that already have a result")
    parser.add_argument("--quick", action="store_true", help="digits, 1 epoch, 1 stage-I epoch, 4 cells (smoke run, under results/quick/)")
    parser.add_argument("--report", action="store_true", help="only render the cells there are into backdoor.md/.json")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    if args.quick:
        args.dataset, args.epochs, args.stage1_epochs = "digits", 1, 1
        out_dir = out_dir / "quick"
    torch.set_num_threads(1)
    set_quiet(True)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # FastICA on 10-d class features; ac-ica rows show the outcome
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="sklearn")
    if not args.report:
        for victim in args.victims.split(","):
            run_victim(victim, args, out_dir)
    return report(out_dir)


if __name__ == "__main__":
    sys.exit(main())
