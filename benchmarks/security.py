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
import os
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


# -- round 3: the seed's HAG experiments and ProS-GAN (--round3) ------------------------------------

#: models for the HAG experiments and the transfer matrix: name -> (method, backbone width or None = default);
#: each trained by train_deep_method with the method's registered learning defaults (csq: lr 1e-3, 8 epochs)
R3_FULL = dict(models={"csq-32": ("csq", None), "greedyhash-32": ("greedyhash", None), "csq-32-w16": ("csq", 16)},
               n_bits=32, eps=(8, 16), sweep=(0, 10, 100, 500, 1000, 1500, 2000), sweep_queries=50, sweep_max=500,
               long_queries=10, star_queries={100: 50, 500: 20}, transfer_queries=50, transfer_steps=100,
               targeted_queries=100, targeted_steps=100, prosgan_epochs=3, n_database=20000, epochs=None, n_train=None)
R3_QUICK = dict(models={"csq-32": ("csq", None), "greedyhash-32": ("greedyhash", None), "csq-32-w16": ("csq", 16)},
                n_bits=32, eps=(8, 16), sweep=(0, 5, 10, 20), sweep_queries=20, sweep_max=10, long_queries=10,
                star_queries={10: 20}, transfer_queries=20, transfer_steps=10, targeted_queries=20, targeted_steps=10,
                prosgan_epochs=1, n_database=2000, epochs=1, n_train=1000)
R3_PARTS = ("hag", "transfer", "prosgan")


def nested_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Positions ordered so that every prefix of length ``10 j`` holds ``j`` items per class (seeded)."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    depth = min(len(p) for p in per_class)
    return np.stack([p[:depth] for p in per_class], axis=1).reshape(-1)


def psnr(x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """Peak signal-to-noise ratio per image in dB for inputs in [0, 1] (inf for identical images)."""
    mse = (x_adv - x).flatten(1).double().pow(2).mean(dim=1)
    return (10 * torch.log10(1 / mse)).cpu().numpy()


def ssim(x: torch.Tensor, x_adv: torch.Tensor, window: int = 7) -> np.ndarray:
    """Mean structural similarity per grey image (Wang et al. 2004: 7x7 uniform window, data range 1,
    C1 = 0.01^2, C2 = 0.03^2, sample covariances), over the windows that fit inside the image."""
    a, b = (t.reshape(len(t), 1, *t.shape[-2:]).double() for t in (x, x_adv))
    mean = lambda t: torch.nn.functional.avg_pool2d(t, window, stride=1)  # noqa: E731
    n = window * window
    correction = n / (n - 1)
    mu_a, mu_b = mean(a), mean(b)
    var_a = (mean(a * a) - mu_a ** 2) * correction
    var_b = (mean(b * b) - mu_b ** 2) * correction
    cov = (mean(a * b) - mu_a * mu_b) * correction
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.flatten(1).mean(dim=1).cpu().numpy()


def perceptibility(x: torch.Tensor, x_adv: torch.Tensor) -> dict:
    return {"linf_max": float((x_adv - x).abs().flatten(1).amax(dim=1).max()), "psnr_median": float(np.median(psnr(x, x_adv))),
            "ssim_median": float(np.median(ssim(x, x_adv)))}


class _Cells:
    """Results of one part, one JSON file, written after every cell: a rerun skips the cells it finds."""

    def __init__(self, path: Path, after=None):
        self.path, self.after = path, after
        self.values = json.loads(path.read_text()) if path.exists() else {}

    def get(self, name: str, compute):
        if name not in self.values:
            started = time.perf_counter()
            value = compute()
            self.values[name] = json.loads(json.dumps({**value, "cell_seconds": time.perf_counter() - started}, default=float))
            atomic_write_json(self.path, self.values)
            if self.after is not None:
                self.after()
            print(f"[{time.strftime('%H:%M:%S')}] {self.path.stem} {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        return self.values[name]


def r3_models(data: dict, settings: dict, work: Path, rotate: int = 0) -> tuple[dict, dict]:
    """The trained models (loaded from ``work`` when there) and their training records.

    Parts run in parallel: each trains the models in its own rotated order, one lock per model."""
    import fcntl

    from hashlearn.losses import training_defaults
    from hashlearn.runs.deep import train_deep_method

    models, records = {}, {}
    x_train, y_train = data["train"]
    if settings["n_train"]:
        x_train, y_train = x_train[: settings["n_train"]], y_train[: settings["n_train"]]
    names = list(settings["models"])
    for name in names[rotate % len(names):] + names[: rotate % len(names)]:
        method, width = settings["models"][name]
        folder = work / name
        lock = open(work / f"{name}.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "model" / "model.json").exists():
            started = time.perf_counter()
            defaults = training_defaults(method, "pixels")  # the validation-chosen rate and length of the learning issue
            model, result = train_deep_method(method, settings["n_bits"], x_train, y_train, *data["val"], seed=0,
                                              epochs=settings["epochs"] or defaults["epochs"], lr=defaults["lr"],
                                              backbone_kwargs=None if width is None else {"width": width})
            model.save(folder / "model")
            atomic_write_json(folder / "training.json", {"method": method, "backbone": model.backbone_name, "backbone_kwargs": model.backbone_kwargs,
                                                         "lr": defaults["lr"], "best_epoch": result.best_epoch, "val_map": result.best_metric,
                                                         "epochs": len(result.history), "n_train": len(x_train),
                                                         "seconds": time.perf_counter() - started})
            print(f"trained {name}: val mAP {result.best_metric:.3f}", file=sys.stderr, flush=True)
        lock.close()
    for name in names:
        folder = work / name
        models[name] = HashModel.load(folder / "model").eval()
        records[name] = json.loads((folder / "training.json").read_text())
    return models, records


class Ensemble(torch.nn.Module):
    """Several hash models as one: outputs (and pre-activations) concatenated, so HAG's loss is their average."""

    def __init__(self, models):
        super().__init__()
        self.members = torch.nn.ModuleList(models)
        self.backbone = _Preactivations(self.members)
        self.head = torch.nn.Module()
        self.head.linear = torch.nn.Identity()

    def forward(self, x):
        return torch.tanh(self.backbone(x))


class _Preactivations(torch.nn.Module):
    def __init__(self, members):
        super().__init__()
        self.members = members

    def forward(self, x):
        return torch.cat([m.head.linear(m.backbone(x)) for m in self.members], dim=1)


def r3_hag(models: dict, data: dict, settings: dict, cells: _Cells) -> None:
    """MAP against iterations (HAG), and HAG against its ablations HAG* on the first model."""
    name = next(iter(models))
    model = models[name]
    db_codes = model_codes(model, data["db_x"])
    order = data["r3_order"]
    for eps_255 in settings["eps"]:
        eps = eps_255 / 255
        subsets = {"main": settings["sweep_queries"], "long": settings["long_queries"]}
        for subset, n in subsets.items():
            x, y = data["query_x"][order[:n]], data["query_y"][order[:n]]
            for steps in settings["sweep"]:
                if subset == "main" and steps > settings["sweep_max"]:
                    continue
                def run(steps=steps, x=x, y=y):
                    if steps == 0:
                        clean = mean_average_precision(model_codes(model, x), db_codes, y, data["db_y"], k=K)
                        return {"n_queries": len(x), "clean_map": clean, "adv_map": clean, "bits_flipped_mean": 0.0, "seconds_per_query": 0.0}
                    return evaluate_attack(HAG(model, eps=eps, steps=steps), x, y, db_codes, data["db_y"], k=K)
                cells.get(f"sweep/{name}/{eps_255}/{subset}/{steps}", run)
        variants = {"hag*-nomask": dict(margin=1.0), "hag*-fixed": dict(alpha_start=1.0, alpha_end=1.0),
                    "hag*": dict(margin=1.0, alpha_start=1.0, alpha_end=1.0)}
        for steps, n in settings["star_queries"].items():
            x, y = data["query_x"][order[:n]], data["query_y"][order[:n]]
            for variant, options in variants.items():
                if variant != "hag*" and steps != min(settings["star_queries"]):
                    continue
                cells.get(f"star/{name}/{eps_255}/{variant}/{steps}/{n}",
                          lambda options=options, steps=steps, x=x, y=y: evaluate_attack(HAG(model, eps=eps, steps=steps, **options), x, y,
                                                                                         db_codes, data["db_y"], k=K))
            cells.get(f"star/{name}/{eps_255}/hag/{steps}/{n}",
                      lambda steps=steps, x=x, y=y: evaluate_attack(HAG(model, eps=eps, steps=steps), x, y, db_codes, data["db_y"], k=K))


def r3_transfer(models: dict, data: dict, settings: dict, cells: _Cells, work: Path) -> None:
    """mAP on every model (columns) of HAG queries crafted on each model, on their clipped sums, and on the ensemble."""
    names = list(models)
    n = settings["transfer_queries"]
    x, y = data["query_x"][data["r3_order"][:n]], data["query_y"][data["r3_order"][:n]]
    databases = {m: model_codes(models[m], data["db_x"]) for m in names}
    steps = settings["transfer_steps"]

    def row(x_adv):
        return {m: mean_average_precision(model_codes(models[m], x_adv), databases[m], y, data["db_y"], k=K) for m in names}

    for eps_255 in settings["eps"]:
        eps = eps_255 / 255
        cells.get(f"transfer/{eps_255}/clean", lambda: row(x))
        deltas = {}
        for source in names + ["ensemble"]:
            path = work / "transfer" / f"{source}-{eps_255}-delta.npy"
            if not path.exists():
                attacked = Ensemble([models[m] for m in names]) if source == "ensemble" else models[source]
                started = time.perf_counter()
                delta = (HAG(attacked, eps=eps, steps=steps).attack(x).x_adv - x).numpy()
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, delta)
                atomic_write_json(path.with_suffix(".json"), {"seconds_per_query": (time.perf_counter() - started) / len(x)})
            deltas[source] = torch.from_numpy(np.load(path))
            seconds = json.loads(path.with_suffix(".json").read_text())["seconds_per_query"]
            cells.get(f"transfer/{eps_255}/{source}", lambda source=source, seconds=seconds: {**row(x + deltas[source]), "seconds_per_query": seconds})
        for size in range(2, len(names) + 1):
            label = " + ".join(f"r{i + 1}" for i in range(size))
            total = sum(deltas[m] for m in names[:size]).clamp(-eps, eps)
            cells.get(f"transfer/{eps_255}/sum{size}", lambda total=total, label=label, size=size:
                      {**row((x + total).clamp(0, 1)), "label": label, "members": names[:size]})


def perturbation_seconds(attack, x: torch.Tensor, targets: np.ndarray) -> float:
    """Wall time per query of producing the adversarial inputs alone (the records' clean and attacked codes excluded):
    ProS-GAN's generator pass, or the descent loop of an iterative attack on the same queries and targets."""
    from hashlearn.attacks import ProSGAN
    from hashlearn.attacks.base import _EvalMode
    from hashlearn.codes import codes_to_pm1

    if isinstance(attack, ProSGAN):
        started = time.perf_counter()
        attack.generate(x, targets)
        return (time.perf_counter() - started) / len(x)
    reference = torch.as_tensor(codes_to_pm1(attack.target_codes_for(targets)))
    generator = torch.Generator().manual_seed(attack.seed)
    with _EvalMode(attack.model):
        started = time.perf_counter()
        for i in range(0, len(x), attack.batch_size):
            attack._perturb(x[i : i + attack.batch_size], reference[i : i + attack.batch_size], generator)
        return (time.perf_counter() - started) / len(x)


def r3_prosgan(models: dict, data: dict, settings: dict, cells: _Cells, work: Path) -> None:
    """ProS-GAN (trained once per budget on the training split) against DHTA and the prototype attack, same queries and targets."""
    from hashlearn.attacks import ProSGAN

    name = next(iter(models))
    model = models[name]
    names = list(models)
    databases = {m: model_codes(models[m], data["db_x"]) for m in names}
    n = settings["targeted_queries"]
    positions = data["r3_order"][:n]
    x, y = data["query_x"][positions], data["query_y"][positions]
    targets = (y + np.random.default_rng(3).integers(1, 10, size=len(y))) % 10  # a random other class per query
    x_train, y_train = data["train"]
    if settings["n_train"]:
        x_train, y_train = x_train[: settings["n_train"]], y_train[: settings["n_train"]]

    def transfer(x_adv):
        out = {}
        for m in names:
            codes = model_codes(models[m], x_adv)
            out[m] = {"tmap": mean_average_precision(codes, databases[m], targets, data["db_y"], k=K),
                      "map": mean_average_precision(codes, databases[m], y, data["db_y"], k=K)}
        return out

    cells.get("targeted/clean", lambda: {"n_queries": len(x), "transfer": transfer(x)})
    for eps_255 in settings["eps"]:
        eps = eps_255 / 255
        save_dir = work / f"prosgan-{name}-{eps_255}"

        def build():
            started = time.perf_counter()
            attack = ProSGAN.from_options(model, train_inputs=torch.from_numpy(x_train), train_labels=y_train,
                                          val_inputs=torch.from_numpy(data["val"][0]), val_labels=data["val"][1], save_dir=save_dir,
                                          eps=eps, seed=0, clip=(0.0, 1.0), epochs=settings["prosgan_epochs"], n_classes=10)
            return attack, time.perf_counter() - started

        attacks = {"prosgan": build, "dhta": lambda: (DHTA(model, databases[name], data["db_y"], k=9, eps=eps, steps=settings["targeted_steps"],
                                                           seed=0), 0.0),
                   "prototype": lambda: (PrototypeAttack(model, databases[name], data["db_y"], eps=eps, steps=settings["targeted_steps"]), 0.0)}
        for attack_name, make in attacks.items():
            def run(make=make):
                attack, build_seconds = make()
                result = attack.attack(x, target_labels=targets)
                report = evaluate_attack(attack, x, y, databases[name], data["db_y"], target_labels=targets, k=K, result=result)
                extra = {}
                if isinstance(attack, ProSGAN):
                    training = attack.training_ or {}
                    extra = {"train_seconds": training.get("seconds"), "train_selected_epoch": training.get("selected_epoch"),
                             "train_epochs": attack.epochs, "n_train": training.get("n_train"), "reused": attack.reused_,
                             "generator_width": attack.width, "history": training.get("history"),
                             "build_seconds": build_seconds}
                return {**report, **perceptibility(x, result.x_adv), **extra, "transfer": transfer(result.x_adv),
                        "perturbation_seconds_per_query": perturbation_seconds(attack, x, targets)}
            cells.get(f"targeted/{eps_255}/{attack_name}", run)


def run_round3(args, settings: dict) -> int:
    work = Path(args.work_dir) / ("round3-quick" if args.quick else "round3")
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data({**settings, "n_attack_queries": 100, "n_long_queries": 10})
    data["r3_order"] = nested_order(data["query_y"].copy(), seed=5)
    parts = R3_PARTS if args.round3 == "all" else (args.round3,)
    models, records = r3_models(data, settings, work, rotate=R3_PARTS.index(parts[0]))
    atomic_write_json(work / "models.json", records)
    for part in parts:
        cells = _Cells(work / f"{part}.json", after=lambda: write_round3(work, settings, data, args))
        if part == "hag":
            r3_hag(models, data, settings, cells)
        elif part == "transfer":
            r3_transfer(models, data, settings, cells, work)
        elif part == "prosgan":
            r3_prosgan(models, data, settings, cells, work)
    write_round3(work, settings, data, args)
    return 0


def write_round3(work: Path, settings: dict, data: dict, args) -> None:
    """Fold the parts found in ``work`` into the results file (security.json's ``round3``) and rewrite the report."""
    import fcntl

    name = args.out or ("security_quick" if args.quick else "security")
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = RESULTS / f"{name}.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        results["round3"] = {
            "machine": f"{platform.machine()}, 2 shared CPU cores, torch {torch.__version__}, {args.threads} torch thread(s); "
                       f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} when written",
            "settings": {**settings, "models": {k: list(v) for k, v in settings["models"].items()}, "model_order": list(settings["models"]), "k": K},
            "sizes": data["sizes"], "models": json.loads((work / "models.json").read_text()),
            **{part: json.loads((work / f"{part}.json").read_text()) for part in R3_PARTS if (work / f"{part}.json").exists()},
        }
        if "models" in results:
            write_results(results, name)
        else:
            atomic_write_json(path, results)
            atomic_write_text(RESULTS / f"{name}.md", markdown_round3(results["round3"]))


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
    if results.get("round3"):
        lines += ["", markdown_round3(results["round3"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def markdown_round3(r3: dict) -> str:
    """The round-3 sections: iteration sweep, HAG vs HAG*, transfer matrix, ProS-GAN vs DHTA and prototype."""
    s = r3["settings"]
    names = s["model_order"]  # JSON objects come back with sorted keys: the order of r1, r2, r3 is kept here
    first = names[0]
    lines = ["## Round 3: the HAG experiments of the seed, and ProS-GAN", "",
             f"Machine: {r3['machine']}. Models ({s['n_bits']} bits, Fashion-MNIST, the same split and database subset as above, "
             "each trained by `train_deep_method` with its method's registered learning defaults, best epoch by validation mAP@1000):", "",
             "| model | method | backbone | lr | epochs run | best epoch | val mAP@1000 | train items | training s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        m = r3["models"][name]
        lines.append(f"| {name} | {m['method']} | {m['backbone']} width {m['backbone_kwargs'].get('width')} | {m.get('lr', '-')} | {m['epochs']} | "
                     f"{m['best_epoch']} | {m['val_map']:.3f} | {m['n_train']} | {m['seconds']:.0f} |")
    lines += ["", f"Queries: a class-balanced nested order of the 1,000 protocol queries (the first 10 j hold j per class); "
              f"database {r3['sizes']['database_used']} items; mAP@{s['k']}. Sizes per table below.", ""]
    hag = r3.get("hag", {})
    for eps in s["eps"]:
        rows = {key.split("/")[-1]: v for key, v in hag.items() if key.startswith(f"sweep/{first}/{eps}/main/")}
        long = {key.split("/")[-1]: v for key, v in hag.items() if key.startswith(f"sweep/{first}/{eps}/long/")}
        if not rows and not long:
            continue
        steps = [str(t) for t in s["sweep"]]
        lines += [f"### mAP@{s['k']} against HAG iterations, {first}, eps {eps}/255", "",
                  "| queries | " + " | ".join(steps) + " |", "| --- |" + " --- |" * len(steps)]
        for label, table in ((f"{s['sweep_queries']} (up to {s['sweep_max']} iterations)", rows), (f"{s['long_queries']}", long)):
            if table:
                lines.append(f"| {label} | " + " | ".join(f"{table[t]['adv_map']:.3f}" if t in table else "-" for t in steps) + " |")
        for label, table in ((f"bits flipped, {s['sweep_queries']} queries", rows), (f"bits flipped, {s['long_queries']} queries", long)):
            if table:
                lines.append(f"| {label} | " + " | ".join(f"{table[t]['bits_flipped_mean']:.1f}" if t in table else "-" for t in steps) + " |")
        seconds = {t: v["seconds_per_query"] for t, v in {**rows, **long}.items()}
        lines += ["| s/query | " + " | ".join(f"{seconds[t]:.2f}" if t in seconds else "-" for t in steps) + " |", ""]
    stars = {key: v for key, v in hag.items() if key.startswith("star/")}
    if stars:
        lines += [f"### HAG against HAG* ({first}): the bit mask and the tanh-slope schedule", "",
                  "`hag*-nomask`: margin 1 (no bit is ever masked out); `hag*-fixed`: slope alpha fixed at 1 (the model's own tanh); "
                  "`hag*`: both. `hag`: alpha 1 -> 10 geometric, margin 0.5.", "",
                  "| eps | iterations | queries | variant | clean mAP | attacked mAP | ratio | bits flipped |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, v in sorted(stars.items(), key=lambda kv: (int(kv[0].split("/")[2]), int(kv[0].split("/")[4]), kv[0].split("/")[3])):
            _, _, eps, variant, steps, n = key.split("/")
            lines.append(f"| {eps}/255 | {steps} | {n} | {variant} | {v['clean_map']:.3f} | {v['adv_map']:.3f} | "
                         f"{v['adv_map'] / max(v['clean_map'], 1e-12):.2f} | {v['bits_flipped_mean']:.1f} |")
        lines.append("")
    transfer = r3.get("transfer", {})
    for eps in s["eps"]:
        cells = {key.split("/")[-1]: v for key, v in transfer.items() if key.startswith(f"transfer/{eps}/")}
        if "clean" not in cells:
            continue
        lines += [f"### Transfer, eps {eps}/255: mAP@{s['k']} on the column model of HAG-{s['transfer_steps']} queries crafted on the row "
                  f"({s['transfer_queries']} queries; r_i = the perturbation crafted on the i-th model of the header; sums clipped to the budget)", "",
                  "| crafted on \\ evaluated on | " + " | ".join(names) + " | s/query |", "| --- |" + " --- |" * (len(names) + 1)]
        for source in ["clean", *names, *[f"sum{i}" for i in range(2, len(names) + 1)], "ensemble"]:
            if source in cells:
                v = cells[source]
                label = {"clean": "clean", "ensemble": "ensemble (HAG on all models at once)"}.get(source, v.get("label", source))
                if source.startswith("sum"):
                    label = f"{label} ({' + '.join(v['members'])})"
                seconds = f"{v['seconds_per_query']:.2f}" if "seconds_per_query" in v else "-"
                lines.append(f"| {label} | " + " | ".join(f"{v[n]:.3f}" for n in names) + f" | {seconds} |")
        lines.append("")
    targeted = r3.get("prosgan", {})
    if any(key.count("/") == 2 for key in targeted):
        lines += [f"### ProS-GAN against DHTA and the prototype attack ({first}, same queries, same targets: a random other class each)", "",
                  f"DHTA: k = 9 anchors, {s['targeted_steps']} steps; prototype: the sign of the class-mean database code, {s['targeted_steps']} steps; "
                  f"ProS-GAN: generator trained once per budget on the training split ({s['prosgan_epochs']} epochs, epoch chosen by validation), "
                  "then one forward pass. `s/query (call)` is the whole `attack()` call (it also encodes the clean and attacked queries for the "
                  "records), `s/query (perturbation)` producing the adversarial inputs alone, measured right after on the same queries "
                  "(both under the machine's varying load); ProS-GAN's training time is its own column.", "",
                  "| eps | attack | queries | t-mAP | success | attacked mAP | bits to target | L-inf | PSNR dB | SSIM | s/query (call) "
                  "| s/query (perturbation) | speed-up vs DHTA (call / perturbation) | training s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for eps in s["eps"]:
            dhta = targeted.get(f"targeted/{eps}/dhta")
            for attack in ("prosgan", "dhta", "prototype"):
                v = targeted.get(f"targeted/{eps}/{attack}")
                if v is None:
                    continue
                speed = (f"{dhta['seconds_per_query'] / v['seconds_per_query']:.0f}x / "
                         f"{dhta['perturbation_seconds_per_query'] / v['perturbation_seconds_per_query']:.0f}x") if dhta else "-"
                train = f"{v['train_seconds']:.0f}" if v.get("train_seconds") is not None else "-"
                lines.append(f"| {eps}/255 | {attack} | {v['n_queries']} | {v['adv_tmap']:.3f} | {v['success_rate']:.2f} | {v['adv_map']:.3f} | "
                             f"{v['bits_to_target_mean']:.1f} | {v['linf_max']:.4f} | {v['psnr_median']:.1f} | {v['ssim_median']:.3f} | "
                             f"{v['seconds_per_query']:.4f} | {v['perturbation_seconds_per_query']:.4f} | {speed} | {train} |")
        clean = targeted.get("targeted/clean", {}).get("transfer", {})
        lines += ["", f"Transfer of the targeted queries (crafted on {first}): t-mAP@{s['k']} on each model (relevance = the target label)", "",
                  "| eps | attack | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
        if clean:
            lines.append("| - | clean | " + " | ".join(f"{clean[n]['tmap']:.3f}" for n in names) + " |")
        for eps in s["eps"]:
            for attack in ("prosgan", "dhta", "prototype"):
                v = targeted.get(f"targeted/{eps}/{attack}")
                if v is not None:
                    lines.append(f"| {eps}/255 | {attack} | " + " | ".join(f"{v['transfer'][n]['tmap']:.3f}" for n in names) + " |")
        lines.append("")
    lines += ["### Round 3: targets and where the attacks fail", ""] + round3_notes(r3)
    return "\n".join(lines) + "\n"


def round3_notes(r3: dict) -> list[str]:
    """Targets and observations computed from the round-3 results (no number typed in by hand)."""
    s, out = r3["settings"], []
    names = s["model_order"]
    first = names[0]
    targeted = r3.get("prosgan", {})
    for eps in s["eps"]:
        gan, dhta = targeted.get(f"targeted/{eps}/prosgan"), targeted.get(f"targeted/{eps}/dhta")
        if gan and dhta:
            speed = dhta["perturbation_seconds_per_query"] / gan["perturbation_seconds_per_query"]
            call = dhta["seconds_per_query"] / gan["seconds_per_query"]
            close = gan["adv_tmap"] >= 0.9 * dhta["adv_tmap"]
            out.append(f"- ProS-GAN at {eps}/255: t-mAP {gan['adv_tmap']:.3f} vs DHTA {dhta['adv_tmap']:.3f} "
                       f"(target: comparable, taken as >= 90% of DHTA: **{'met' if close else 'missed'}**); "
                       f"{speed:.0f}x less time per query to perturb (target 100x: **{'met' if speed >= 100 else 'missed'}**; "
                       f"{call:.0f}x for the whole attack call, which also encodes the clean and attacked queries for the records), "
                       f"after {gan['train_seconds']:.0f} s of training on {gan['n_train']} items (training time not included).")
    hag = r3.get("hag", {})
    for eps in s["eps"]:
        long = {int(k.split("/")[-1]): v for k, v in hag.items() if k.startswith(f"sweep/{first}/{eps}/long/")}
        if len(long) >= 2:
            last = max(long)
            best = min(long, key=lambda t: long[t]["adv_map"])
            out.append(f"- HAG on {first} at {eps}/255 ({s['long_queries']} queries): mAP {long[0]['adv_map'] if 0 in long else float('nan'):.3f} clean, "
                       f"{long[last]['adv_map']:.3f} after {last} iterations, lowest {long[best]['adv_map']:.3f} at {best}; "
                       + ("the attack has stopped improving well before the last iterations." if long[last]["adv_map"] >= long[best]["adv_map"] - 0.01
                          else "still improving at the last point."))
    stars = {k: v for k, v in hag.items() if k.startswith("star/")}
    for k, v in stars.items():
        _, name, eps, variant, steps, n = k.split("/")
        full = stars.get(f"star/{name}/{eps}/hag/{steps}/{n}")
        if variant == "hag*" and full:
            better = full["adv_map"] < v["adv_map"] - 0.005
            out.append(f"- HAG vs HAG* at {eps}/255, {steps} iterations: {full['adv_map']:.3f} vs {v['adv_map']:.3f} mAP; "
                       + ("the mask and slope schedule help." if better else "the mask and slope schedule do not help here (within 0.005 or worse)."))
    transfer = r3.get("transfer", {})
    for eps in s["eps"]:
        cells = {k.split("/")[-1]: v for k, v in transfer.items() if k.startswith(f"transfer/{eps}/")}
        if "clean" not in cells or not all(n in cells for n in names):
            continue
        kept = [cells[a][b] / cells["clean"][b] for a in names for b in names if a != b]
        line = f"- Transfer at {eps}/255: off-diagonal models keep {min(kept):.2f}-{max(kept):.2f} of their clean mAP (median {np.median(kept):.2f})"
        if "ensemble" in cells:
            ens = [cells["ensemble"][b] / cells["clean"][b] for b in names]
            line += f"; the ensemble attack keeps {min(ens):.2f}-{max(ens):.2f} on its own members"
        out.append(line + ".")
    return out or ["- (no round-3 results yet)"]


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
    parser.add_argument("--round3", choices=["all", *R3_PARTS], default=None,
                        help="the round-3 experiments (HAG iteration sweep and HAG*, transfer matrix, ProS-GAN vs DHTA) on models "
                             "trained with the learning defaults; resumable, merged into the results file as 'round3'")
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
    if args.round3:
        return run_round3(args, dict(R3_QUICK if args.quick else R3_FULL))
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
