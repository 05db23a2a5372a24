"""Security benchmark: adversarial queries against deep hash models, and adversarial training.

Fashion-MNIST, standard protocol (1,000 queries from the test split, 100 per
class; train 5,000 and validation 1,000 drawn from the database), small-CNN
hash models trained with DPSH and CSQ by the one Trainer. Measured, per model:
clean mAP@1000; mAP@1000 after HAG, PGD (100 and 500 iterations) and FGSM at
L-inf eps = 8/255; t-mAP@1000 of the targeted attacks (DHTA, prototype); a
transfer matrix between DPSH and CSQ; and all of it again after adversarial
training (CgAT-style class-center PGD, fine-tuning the standard model).

The machine has 2 shared CPU cores, so the expensive parts are subsampled and
the sizes are written into the results (see ``settings``): the database is a
seeded random subset of the protocol's database, iterative attacks run on a
stratified subset of the queries; clean and attacked mAP are always compared
on the same queries.

    python benchmarks/security.py            # full run -> benchmarks/results/security.{md,json}
    python benchmarks/security.py --quick    # minutes: tiny sizes, for development
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.attacks import DHTA, FGSM, HAG, PGD, PrototypeAttack
from hashlearn.attacks.evaluation import evaluate_attack, model_codes
from hashlearn.data import load_dataset
from hashlearn.data.protocols import make_split
from hashlearn.defenses import AdversarialTraining
from hashlearn.eval.metrics import mean_average_precision
from hashlearn.losses import build_objective
from hashlearn.models import HashModel
from hashlearn.train import Trainer, TrainConfig

RESULTS = Path(__file__).parent / "results"
EPS = 8 / 255
K = 1000

FULL = dict(bits=(32, 64), adv_bits=(32,), epochs=10, adv_epochs=4, n_database=20000, n_attack_queries=200,
            n_long_queries=50, steps=(100, 500), adv_steps=3, width=16)
QUICK = dict(bits=(32,), adv_bits=(32,), epochs=2, adv_epochs=1, n_database=2000, n_attack_queries=40,
             n_long_queries=20, steps=(10, 20), adv_steps=2, width=8)


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of ``n`` items, equally many per class (seeded)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, n // len(classes))
    chosen = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, (labels == c).sum()), replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def train_model(loss: str, n_bits: int, data: dict, settings: dict, run_dir: Path) -> tuple[HashModel, torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = HashModel("small_cnn", n_bits, {"in_channels": 1, "image_size": 28, "width": settings["width"]})
    objective = build_objective(loss, n_bits, n_classes=10)
    config = TrainConfig(epochs=settings["epochs"], batch_size=128, lr=1e-3, seed=0)
    result = Trainer(config).fit(model, objective, train=data["train"], val=data["val"], run_dir=run_dir)
    data["split"].save(run_dir)
    return model, objective, {"best_epoch": result.best_epoch, "val_map": result.best_metric,
                              "seconds_per_epoch": result.seconds_per_epoch, "epochs": settings["epochs"]}


def adversarially_train(model: HashModel, objective, data: dict, settings: dict, run_dir: Path) -> tuple[HashModel, dict]:
    """Fine-tune a copy of ``model`` on class-center PGD examples (half of each batch)."""
    robust = copy.deepcopy(model)
    transform = AdversarialTraining("center", attack=PGD, eps=EPS, steps=settings["adv_steps"], fraction=0.5, seed=0)
    config = TrainConfig(epochs=settings["adv_epochs"], batch_size=128, lr=5e-4, seed=1)
    result = Trainer(config).fit(robust, copy.deepcopy(objective), train=data["train"], val=data["val"],
                                 batch_transform=transform, run_dir=run_dir)
    data["split"].save(run_dir)
    return robust, {"best_epoch": result.best_epoch, "val_map": result.best_metric, "seconds_per_epoch": result.seconds_per_epoch,
                    "epochs": settings["adv_epochs"], "transform": repr(transform)}


def attack_suite(model: HashModel, data: dict, settings: dict, long_attacks: bool = True) -> tuple[dict, dict]:
    """Every attack on ``model``; returns (reports, adversarial queries of HAG for the transfer matrix)."""
    db_codes = model_codes(model, data["db_x"])
    db_labels = data["db_y"]
    short_x, short_y = data["attack_x"], data["attack_y"]
    long_x, long_y = data["long_x"], data["long_y"]
    reports = {"clean": {"map": mean_average_precision(model_codes(model, data["query_x"]), db_codes, data["query_y"], db_labels, k=K),
                         "n_queries": len(data["query_x"])}}
    kept = {}
    short_steps, long_steps = settings["steps"]
    runs = [
        (f"hag-{short_steps}", HAG(model, eps=EPS, steps=short_steps), short_x, short_y),
        (f"pgd-{short_steps}", PGD(model, eps=EPS, steps=short_steps, seed=0), short_x, short_y),
        ("fgsm", FGSM(model, eps=EPS), short_x, short_y),
    ]
    if long_attacks:
        runs += [
            (f"hag-{long_steps}", HAG(model, eps=EPS, steps=long_steps), long_x, long_y),
            (f"pgd-{long_steps}", PGD(model, eps=EPS, steps=long_steps, seed=0), long_x, long_y),
        ]
    for name, attack, x, y in runs:
        result = attack.attack(x)
        reports[name] = evaluate_attack(attack, x, y, db_codes, db_labels, k=K, result=result)
        if name == f"hag-{short_steps}":
            kept["hag"] = result.x_adv
    targets = data["targets"]
    for name, attack in [
        (f"dhta-{short_steps}", DHTA(model, db_codes, db_labels, k=9, eps=EPS, steps=short_steps, seed=0)),
        (f"prototype-{short_steps}", PrototypeAttack(model, db_codes, db_labels, eps=EPS, steps=short_steps)),
    ]:
        reports[name] = evaluate_attack(attack, short_x, short_y, db_codes, db_labels, target_labels=targets, k=K)
    return reports, kept


def prepare_data(settings: dict) -> dict:
    dataset = load_dataset("fashion-mnist")
    split = make_split(dataset, seed=0)
    x, y = dataset.data, dataset.labels
    rng = np.random.default_rng(0)
    db_index = np.sort(rng.choice(split.database, size=min(settings["n_database"], len(split.database)), replace=False))
    query_x, query_y = torch.from_numpy(x[split.query]), y[split.query]
    attack_pos = stratified_subset(query_y, settings["n_attack_queries"], seed=1)
    long_pos = stratified_subset(query_y, settings["n_long_queries"], seed=2)
    offsets = np.random.default_rng(3).integers(1, 10, size=len(attack_pos))
    return {
        "split": split,
        "train": (x[split.train], y[split.train]),
        "val": (x[split.validation], y[split.validation]),
        "query_x": query_x, "query_y": query_y,
        "db_x": torch.from_numpy(x[db_index]), "db_y": y[db_index],
        "attack_x": query_x[attack_pos], "attack_y": query_y[attack_pos],
        "long_x": query_x[long_pos], "long_y": query_y[long_pos],
        "targets": (query_y[attack_pos] + offsets) % 10,  # a random other class per query
        "sizes": {"train": len(split.train), "validation": len(split.validation), "queries": len(split.query),
                  "database_protocol": len(split.database), "database_used": len(db_index),
                  "attack_queries": len(attack_pos), "long_attack_queries": len(long_pos)},
    }


def transfer(models: dict[str, HashModel], adversarial: dict[str, torch.Tensor], data: dict) -> dict:
    """mAP@1000 on each target model (columns) of HAG queries crafted on each source model (rows)."""
    y = data["attack_y"]
    databases = {name: model_codes(model, data["db_x"]) for name, model in models.items()}
    matrix = {"clean": {name: mean_average_precision(model_codes(m, data["attack_x"]), databases[name], y, data["db_y"], k=K) for name, m in models.items()}}
    for source, x_adv in adversarial.items():
        matrix[source] = {target: mean_average_precision(model_codes(m, x_adv), databases[target], y, data["db_y"], k=K)
                          for target, m in models.items()}
    return matrix


def eps_sweep(work: Path, data: dict, settings: dict, n_bits: int = 32, n_queries: int = 100) -> dict:
    """HAG and DHTA at larger budgets on the trained ``n_bits`` models of ``work`` (written by a full run)."""
    short = settings["steps"][0]
    positions = stratified_subset(data["attack_y"], n_queries, seed=4)
    x, y, targets = data["attack_x"][positions], data["attack_y"][positions], data["targets"][positions]
    sweep = {}
    for name in (f"dpsh-{n_bits}", f"csq-{n_bits}", f"dpsh-{n_bits}-adv", f"csq-{n_bits}-adv"):
        if not (work / name / "model" / "model.json").exists():
            continue
        model = HashModel.load(work / name / "model").eval()
        db_codes = model_codes(model, data["db_x"])
        for eps_255 in (8, 16, 32):
            eps = eps_255 / 255
            hag = evaluate_attack(HAG(model, eps=eps, steps=short), x, y, db_codes, data["db_y"], k=K)
            row = {"eps": f"{eps_255}/255", "clean_map": hag["clean_map"], "hag_map": hag["adv_map"], "hag_bits": hag["bits_flipped_mean"]}
            if not name.endswith("-adv"):
                dhta = DHTA(model, db_codes, data["db_y"], k=9, eps=eps, steps=short, seed=0)
                targeted = evaluate_attack(dhta, x, y, db_codes, data["db_y"], target_labels=targets, k=K)
                row.update(dhta_tmap=targeted["adv_tmap"], dhta_success=targeted["success_rate"])
            sweep.setdefault(name, []).append(row)
            print(f"sweep {name} {row}", file=sys.stderr)
    return {"n_queries": int(len(positions)), "steps": short, "rows": sweep}


# -- report ------------------------------------------------------------------------

def fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def markdown(results: dict) -> str:
    s = results["settings"]
    short, long = s["steps"]
    lines = [
        "# Security benchmark: adversarial queries and adversarial training",
        "",
        f"Fashion-MNIST, standard protocol; small-CNN hash model (width {s['width']}) trained with DPSH and CSQ by the one Trainer "
        f"({s['epochs']} epochs, Adam 1e-3, batch 128, best epoch by validation mAP@1000). "
        f"Machine: {results['machine']}; {results['seconds']:.0f} s in all.",
        "",
        "Sizes (2 shared cores, so subsampled; clean and attacked numbers always on the same queries): "
        + ", ".join(f"{k} {v}" for k, v in results["sizes"].items())
        + f". The database is a seeded random subset of the protocol database; `clean mAP (1k)` uses all 1,000 queries; "
        f"{short}-step attacks and FGSM use {results['sizes']['attack_queries']} stratified queries, "
        f"{long}-step attacks {results['sizes']['long_attack_queries']}.",
        "",
        f"All attacks: L-inf eps = 8/255, step size min(eps, 2.5 eps / steps); HAG alpha 1 -> 10, margin 0.5; PGD random start. "
        "Success rate: untargeted = share of queries whose P@100 falls below half of clean (queries with clean P@100 > 0); "
        "targeted = share with >= 50% of the top 100 from the target label. `floor` = mAP when every bit of each query code is flipped.",
        "",
        "## Untargeted attacks",
        "",
        "| model | clean mAP (1k) | attack | queries | clean mAP | attacked mAP | ratio | floor | success | bits flipped | L-inf | RMSE | s/query |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, model in results["models"].items():
        for attack, r in model["attacks"].items():
            if attack == "clean" or "adv_tmap" in r:
                continue
            lines.append(
                f"| {name} | {model['attacks']['clean']['map']:.3f} | {attack} | {r['n_queries']} | {r['clean_map']:.3f} | {r['adv_map']:.3f} | "
                f"{r['adv_map'] / max(r['clean_map'], 1e-12):.2f} | {r['flipped_floor_map']:.3f} | {r['success_rate']:.2f} | "
                f"{r['bits_flipped_mean']:.1f} | {r['linf_max']:.4f} | {r['rmse_median']:.4f} | {r['seconds_per_query']:.3f} |"
            )
    lines += ["", "## Targeted attacks (target = a random other class per query)", "",
              "| model | attack | queries | clean t-mAP | attacked t-mAP | success | bits to target | attacked mAP (true labels) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, model in results["models"].items():
        for attack, r in model["attacks"].items():
            if "adv_tmap" in r:
                lines.append(f"| {name} | {attack} | {r['n_queries']} | {r['clean_tmap']:.3f} | {r['adv_tmap']:.3f} | {r['success_rate']:.2f} | "
                             f"{r['bits_to_target_mean']:.1f} | {r['adv_map']:.3f} |")
    for title, key in [("Transfer (HAG, standard models)", "transfer"), ("Transfer (HAG, adversarially trained models)", "transfer_robust")]:
        for bits, matrix in results.get(key, {}).items():
            names = list(matrix["clean"])
            lines += ["", f"## {title}, {bits} bits: mAP@1000 on the column model of queries crafted on the row model", "",
                      "| crafted on \\ evaluated on | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
            for row, values in matrix.items():
                lines.append(f"| {row} | " + " | ".join(f"{values[n]:.3f}" for n in names) + " |")
    if results.get("eps_sweep"):
        sweep = results["eps_sweep"]
        lines += ["", f"## Larger budgets ({sweep['steps']}-step HAG and DHTA, {sweep['n_queries']} stratified queries, same models)", "",
                  "| model | eps | clean mAP | HAG mAP | ratio | bits flipped | DHTA t-mAP | DHTA success |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, rows in sweep["rows"].items():
            for r in rows:
                lines.append(f"| {name} | {r['eps']} | {r['clean_map']:.3f} | {r['hag_map']:.3f} | {r['hag_map'] / max(r['clean_map'], 1e-12):.2f} | "
                             f"{r['hag_bits']:.1f} | {fmt(r.get('dhta_tmap'))} | {fmt(r.get('dhta_success'), '.2f')} |")
    if results.get("robust"):
        lines += ["", f"## Adversarial training (CgAT-style class-center PGD-{s['adv_steps']} at 8/255 on half of each batch, "
                  f"{s['adv_epochs']} epochs fine-tuning the standard model, Adam 5e-4)", "",
                  "| model | attack | standard mAP | adv-trained mAP | gain (x) |", "| --- | --- | --- | --- | --- |"]
        for name, robust in results["robust"].items():
            standard = results["models"][name]["attacks"]
            clean_std, clean_rob = standard["clean"]["map"], robust["attacks"]["clean"]["map"]
            lines.append(f"| {name} | none (clean, 1k) | {clean_std:.3f} | {clean_rob:.3f} | {clean_rob / clean_std:.2f} |")
            for attack, r in robust["attacks"].items():
                if attack == "clean":
                    continue
                key = "adv_tmap" if "adv_tmap" in r else "adv_map"
                label = f"{attack} (t-mAP)" if key == "adv_tmap" else attack
                lines.append(f"| {name} | {label} | {standard[attack][key]:.3f} | {r[key]:.3f} | {r[key] / max(standard[attack][key], 1e-12):.2f} |")
    lines += ["", "## Targets", ""] + [f"- {t['target']}: **{'met' if t['met'] else 'missed'}** ({t['detail']})" for t in results["targets"]]
    lines += ["", "## Reading the numbers", ""] + notes(results)
    return "\n".join(lines) + "\n"


def notes(results: dict) -> list[str]:
    """Observations computed from the results (no number is typed in by hand)."""
    short = results["settings"]["steps"][0]
    models = results["models"]
    out = []
    clean = {name: m["attacks"]["clean"]["map"] for name, m in models.items()}
    weak = [n for n in clean if n.startswith("dpsh")]
    if weak and any(n.startswith("csq") for n in clean):
        out.append(f"- The DPSH models reach a much lower clean mAP ({', '.join(f'{n} {clean[n]:.3f}' for n in sorted(weak))}) than CSQ "
                   f"({', '.join(f'{n} {clean[n]:.3f}' for n in sorted(clean) if n.startswith('csq'))}) under the same trainer settings; "
                   "their HAG queries flip few bits, so the DPSH rows say more about that training than about the attacks.")
    sweep = results.get("eps_sweep", {}).get("rows", {})
    for name, rows in sweep.items():
        by_eps = {r["eps"]: r for r in rows}
        if name.endswith("-adv") or "16/255" not in by_eps:
            continue
        r16, r32 = by_eps["16/255"], by_eps.get("32/255")
        text = f"- {name}: HAG-{short} keeps {r16['hag_map'] / r16['clean_map']:.2f} of the clean mAP at 16/255"
        if r32 is not None:
            text += f" and {r32['hag_map'] / r32['clean_map']:.2f} at 32/255; DHTA reaches t-mAP {r32.get('dhta_tmap', float('nan')):.3f} at 32/255"
        robust = {r["eps"]: r for r in sweep.get(f"{name}-adv", [])}
        if "16/255" in robust:
            text += (f"; adversarial training (at 8/255) raises mAP under HAG at 16/255 from {r16['hag_map']:.3f} to "
                     f"{robust['16/255']['hag_map']:.3f} (x{robust['16/255']['hag_map'] / max(r16['hag_map'], 1e-12):.2f})")
        out.append(text + ".")
    for bits, matrix in results.get("transfer", {}).items():
        names = list(matrix["clean"])
        drops = [f"{a} -> {b}: {matrix[a][b] / matrix['clean'][b]:.2f}" for a in names for b in names if a != b]
        out.append(f"- Transfer at {bits} bits is weak (share of clean mAP kept on the other model: {', '.join(drops)}).")
    return out or ["- (nothing to add)"]


def check_targets(results: dict) -> list[dict]:
    short = results["settings"]["steps"][0]
    checks = []
    for name, model in results["models"].items():
        r = model["attacks"][f"hag-{short}"]
        ratio = r["adv_map"] / r["clean_map"]
        checks.append({"target": f"HAG-{short} at 8/255 at least halves mAP@1000 ({name})", "met": ratio <= 0.5, "detail": f"ratio {ratio:.2f}"})
        for attack in (f"dhta-{short}", f"prototype-{short}"):
            if attack in model["attacks"]:
                t = model["attacks"][attack]["adv_tmap"]
                checks.append({"target": f"{attack} t-mAP >= 0.6 ({name})", "met": t >= 0.6, "detail": f"t-mAP {t:.3f}"})
    for name, robust in results.get("robust", {}).items():
        standard = results["models"][name]["attacks"]
        gain = robust["attacks"][f"hag-{short}"]["adv_map"] / max(standard[f"hag-{short}"]["adv_map"], 1e-12)
        loss = 1 - robust["attacks"]["clean"]["map"] / standard["clean"]["map"]
        ceiling = robust["attacks"][f"hag-{short}"]["clean_map"] / max(standard[f"hag-{short}"]["adv_map"], 1e-12)
        checks.append({"target": f"adversarial training at least doubles mAP under HAG-{short} ({name})", "met": gain >= 2,
                       "detail": f"x{gain:.2f}; the adv-trained model's own clean mAP caps it at x{ceiling:.2f}"})
        checks.append({"target": f"adversarial training loses at most 10% relative clean mAP ({name})", "met": loss <= 0.10, "detail": f"{100 * loss:.1f}% lost"})
    return checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for development")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--work-dir", default="runs/security", help="where trained models and splits are written")
    parser.add_argument("--out", default=None, help="results name (default security, or security_quick with --quick)")
    parser.add_argument("--bits", type=int, nargs="+", default=None, help="only these code lengths (to run them in parallel)")
    parser.add_argument("--eps-sweep", action="store_true", help="only HAG/DHTA at 8, 16, 32/255 on the models of --work-dir")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="combine partial results into --out, run nothing")
    args = parser.parse_args(argv)
    name = args.out or ("security_quick" if args.quick else "security")
    if args.merge:
        return write_results(merge([json.loads(Path(path).read_text()) for path in args.merge]), name)
    torch.set_num_threads(args.threads)
    set_quiet(True)
    settings = dict(QUICK if args.quick else FULL)
    if args.bits:
        settings["bits"] = tuple(args.bits)
    if args.eps_sweep:
        started = time.perf_counter()
        data = prepare_data(settings)
        sweep = eps_sweep(Path(args.work_dir), data, settings)
        results = {"eps_sweep": sweep, "seconds": time.perf_counter() - started}
        atomic_write_json(RESULTS / f"{name}.json", results)
        return 0
    started = time.perf_counter()
    data = prepare_data(settings)
    work = Path(args.work_dir)
    results = {"machine": f"{platform.machine()}, 2 shared CPU cores, torch {torch.__version__}, {args.threads} torch thread(s)",
               "settings": {**settings, "eps": EPS, "k": K}, "sizes": data["sizes"], "models": {}, "robust": {},
               "transfer": {}, "transfer_robust": {}}
    models, robust_models, kept, kept_robust = {}, {}, {}, {}
    for n_bits in settings["bits"]:
        for loss in ("dpsh", "csq"):
            model_name = f"{loss}-{n_bits}"
            step = time.perf_counter()
            model, objective, training = train_model(loss, n_bits, data, settings, work / model_name)
            reports, adversarial = attack_suite(model, data, settings)
            models[model_name], kept[model_name] = model, adversarial["hag"]
            results["models"][model_name] = {"training": training, "attacks": reports}
            print(f"{model_name}: clean {reports['clean']['map']:.3f} ({time.perf_counter() - step:.0f} s)", file=sys.stderr)
            if n_bits in settings["adv_bits"]:
                step = time.perf_counter()
                robust, adv_training = adversarially_train(model, objective, data, settings, work / f"{model_name}-adv")
                reports, adversarial = attack_suite(robust, data, settings, long_attacks=False)
                robust_models[model_name], kept_robust[model_name] = robust, adversarial["hag"]
                results["robust"][model_name] = {"training": adv_training, "attacks": reports}
                print(f"{model_name} adv: clean {reports['clean']['map']:.3f} ({time.perf_counter() - step:.0f} s)", file=sys.stderr)
        pair = [f"dpsh-{n_bits}", f"csq-{n_bits}"]
        results["transfer"][n_bits] = transfer({n: models[n] for n in pair}, {n: kept[n] for n in pair}, data)
        if n_bits in settings["adv_bits"]:
            results["transfer_robust"][n_bits] = transfer({n: robust_models[n] for n in pair}, {n: kept_robust[n] for n in pair}, data)
    results["seconds"] = time.perf_counter() - started
    return write_results(results, name)


def write_results(results: dict, name: str) -> int:
    results = json.loads(json.dumps(results, default=float))  # JSON keys (bits) become strings
    results["targets"] = check_targets(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{name}.json", results)
    atomic_write_text(RESULTS / f"{name}.md", markdown(results))
    print(markdown(results))
    return 0


def merge(parts: list[dict]) -> dict:
    """Partial runs (e.g. one per code length, run in parallel) as one result."""
    runs = [part for part in parts if "models" in part]
    merged = json.loads(json.dumps(runs[0]))
    merged["settings"]["bits"] = sorted({b for part in runs for b in part["settings"]["bits"]})
    merged["seconds"] = max(part["seconds"] for part in runs)
    if len(runs) > 1:
        merged["machine"] += f"; {len(runs)} runs in parallel, time = the longest"
    for part in runs[1:]:
        for key in ("models", "robust", "transfer", "transfer_robust"):
            merged[key].update(part[key])
    for part in parts:
        if "eps_sweep" in part:
            merged["eps_sweep"] = part["eps_sweep"]
    return merged


if __name__ == "__main__":
    sys.exit(main())
