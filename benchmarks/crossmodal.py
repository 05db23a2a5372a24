"""Cross-modal hashing benchmark on the openmoji image-text pairs.

Seven tables, all on the ``openmoji`` protocol (200 query pairs, the other
1,670 pairs the database, 1,200 training and 170 validation pairs drawn from
it; ``hashlearn.data.protocols``), model and attack selection on the
validation pairs only:

1. ``retrieval``: DCMH and SSAH-style x {own quantization, +hswd} x {16, 32, 64}
   bits on frozen features (EfficientNet-Lite0 of the 64 px renders for images,
   all-MiniLM-L6-v2 of the texts; both cached), MLP towers, against
   CCA-ITQ and sign-of-random-projection baselines on the same features;
   I->T and T->I mAP@all and mAP@100, one split + initialisation per seed.
2. ``cmla``: CMLA against a DCMH (and an SSAH-style) model trained end to end on
   32 px pixels (small CNN) and bag-of-words text (MLP), 32 bits: image
   queries with an L-inf budget of 8/255 in pixel space, text queries with an
   L2 budget in bag-of-words space (stated in the table), after 100 / 200 / 500
   iterations; I->T / T->I mAP before and after, the same-modality I->I / T->T
   mAP, the distortion, and HAG (untargeted) as the baseline. CMLA's
   ``intra_weight`` is chosen on the validation pairs (largest cross-modal
   drop with the same-modality mAP within 10%), then run once on the queries.
3. ``adversarial``: the "+" models -- the pixel models fine-tuned with CMLA
   samples (5 steps, half of each batch, both modalities) against the same
   models fine-tuned as long without them; clean and CMLA-attacked mAP.

Tables 4-6 (``forms``, ``target``, ``budget``: CMLA's two forms, its target
form and the budget sweep) live in ``crossmodal_target.py``, table 7
(``index``: the target form with the index's codes as references) in
``crossmodal_index.py``; this script runs and renders all of them.

    PYTHONPATH=src nice -n 10 python benchmarks/crossmodal.py [--seeds 0 1 2] [--quick]

Rows are appended to ``benchmarks/results/crossmodal.json`` as they finish (a
rerun skips rows already there; ``--fresh`` starts over) and the tables are
rewritten into ``crossmodal.md`` after each row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hashlearn._io import atomic_write_json, atomic_write_text
from hashlearn._progress import set_quiet
from hashlearn.codes import sign_to_codes
from hashlearn.data import extract_features, load_dataset
from hashlearn.data.protocols import make_split
from hashlearn.eval.crossmodal import crossmodal_map

RESULTS = Path(__file__).parent / "results"
WORK = Path(os.environ.get("HASHLEARN_BENCH_DIR", Path.home() / ".cache" / "hashlearn" / "bench-crossmodal"))
DEEP = ["dcmh", "dcmh+hswd", "ssah", "ssah+hswd"]
IMAGE_EPS = 8 / 255  # L-inf, pixels in [0, 1]
TEXT_EPS = 0.5  # L2 in binary bag-of-words space (half of one token's presence)
ITERATIONS = (100, 200, 500)
#: the tables that attack the pixel models (one process per model, ``--attack-models``)
ATTACK_TABLES = {"cmla", "adversarial", "forms", "target", "budget", "index"}
#: the fields that identify a row (a rerun skips rows already there); rows without a field leave it out
KEY_FIELDS = ("table", "method", "n_bits", "seed", "model", "attack", "modality", "steps", "budget_scale", "references")
#: CMLA label form: Theta = <h, b> / 32 (the likelihood's linear regime at 32 bits); positives and negatives weighted equally
LABEL_THETA_SCALE = 1 / 32


#: what this run did differently from a full-size one, and why (time on two shared cores)
NOTES = [
    "Tables 2 and 3 attack the first 100 of the 200 query pairs; CMLA's intra weight is chosen from {0, 0.5, 2} on 100 validation pairs.",
    "The pixel models train 30 epochs (lr 1e-3, batch 64, seed 0); the DCMH pixel model was trained with exactly these settings by an "
    "earlier invocation of this session and loaded from the work folder. Their clean mAP (about 0.5) is far below the frozen-feature "
    "models of table 1 (0.7-0.85): the small CNN on 32 px renders is undertrained at this budget.",
    "The + models are fine-tuned from the plain model for 6 epochs (rows without an epoch count) or for the number of epochs "
    "named, each against the same plain model fine-tuned as long without adversarial samples (the paper trains from scratch).",
    "The 20-epoch + rows (`--finetune-epochs 20`) were stopped before they finished to leave the machine to the test suite before "
    "the deadline; only their plain fine-tuned controls are in table 3.",
    "SSAH fine-tuning builds a fresh objective, so its label network starts from random weights: that is why the 6-epoch SSAH "
    "fine-tune loses clean mAP against the trained model of table 2 (0.578 / 0.666 I->T / T->I).",
    "Retrieval: one split and one initialisation per seed (seeds 0, 1, 2); shallow baselines fitted on the same 1,200 training pairs "
    "and the same standardised features.",
    "Table 4 retrains the pixel models (same settings, 30 epochs, seed 0) in a fresh work folder; training is not bit-for-bit "
    "reproducible across sessions, so their clean mAP differs from table 2's models and the two tables are compared by ratios.",
    "Table 4's code-space bound asks whether the target is reachable at all on a model: where its row says met, codes that halve "
    "cross-modal mAP while keeping same-modality mAP exist (greedy search, so a lower bound on what exists). Column `query-paired "
    "bits` shows how far a query's code is from its paired item's: a model that aligns classes rather than pairs leaves room to "
    "move away from one modality and not the other. Compare the attacks' `bits flipped` with the bound's: within their budgets "
    "the attacks flip fewer bits than the bound needs.",
    "Table 5 (`--tables target --target-iterations 100 200`, one process per model) retrains the pixel models with table 4's "
    "settings (30 epochs, seed 0; table 4's work folder was gone), so its clean mAP differs from table 4's (I->T 0.443 / 0.599 "
    "for DCMH / SSAH against 0.517 / 0.590) and its rows are compared with table 4's by ratios only; `cmla` and `cmla-labels` "
    "use the intra weights table 4 validated on table 4's models. 100 query pairs, 100 validation pairs, references = the "
    "1,200 training pairs (which are also 1,200 of the 1,670 database pairs: the `vs database minus training pairs` plan "
    "rows show what the plans give on the 470 database pairs the attacker never saw).",
    "Table 5's plan rows are greedy (a lower bound on what the attacker's references allow) and need no budget; they differ "
    "from table 4's bound, which searches against the evaluation database itself (an oracle) and also lets flipped bits "
    "flip back -- two greedy searches, two local optima.",
    "The margin reach against the tanh reach, on table 5's validation pairs at the same lambda 1 (cost<=1): cross / same "
    "ratios 0.70 / 0.99 vs 0.74 / 1.01 (DCMH images), 0.67 / 0.98 vs 0.85 / 0.96 (DCMH texts), 0.85 / 0.96 vs 0.96 / 0.96 "
    "(SSAH images), 0.49 / 0.59 vs 0.43 / 0.47 (SSAH texts); it uses more of the budget (mean L-inf 0.0236-0.0304 vs "
    "0.0245-0.0248 of 0.0314, L2 0.40-0.46 vs 0.29-0.43 of 0.5) and plans and flips fewer bits (planned / reached 2.1-3.4 / "
    "1.2-1.8 vs 2.2-7.0 / 1.5-5.4). During development (50 validation pairs, per-round counts) the tanh reach flipped "
    "4-7 bits per round that no plan asked for and left 22-30% of the queries unperturbed (no code reached beat the clean "
    "one on the references); the margin reach's kept-bit hinge on z acts only near a kept bit's sign change. On the test "
    "queries, where validation chose the margin reach: DCMH texts 0.71 / 1.07 vs the tanh reach's 0.93 / 1.05, SSAH images "
    "0.74 / 1.07 vs 0.92 / 1.04, SSAH texts 0.78 / 1.08 (lambda 2, chosen for keeping same-modality mAP) vs 0.53 / 0.64; "
    "on DCMH images validation kept the tanh reach (0.68 / 0.89).",
    "Why the target is still missed: on the validation pairs every setting that cuts cross-modal mAP to half or less also "
    "cuts same-modality mAP by more than 10% (margin lambda 0.5: DCMH texts 0.37 / 0.72, SSAH images 0.54 / 0.64, SSAH texts "
    "0.33 / 0.42; tanh lambda 1 on SSAH texts 0.43 / 0.47), and 200 iterations change the ratios by at most 0.05. Within the "
    "budget only 1.2-1.8 of 2.1-3.4 planned bits are reached where the plans with no budget flip 5-12 bits.",
    "Table 5 ran on an otherwise shared machine (the other engineers' benchmarks and tests; load in the header).",
    "Table 6 (`--tables budget`, one process per model: `PYTHONPATH=src nice -n 5 python benchmarks/crossmodal.py --tables budget "
    "--attack-models dcmh`, the same with `ssah`, run at the same time) sweeps the budget; the stated budget stays 8/255 on "
    "pixels and L2 0.5 on bag-of-words, and table 5's result at it is unchanged: the target met in 0 of 4 cells. The pixel "
    "models were not in the work folder, so they were retrained with table 5's settings (30 epochs, lr 1e-3, batch 64, seed "
    "0; the script's `train_two_tower`, called once per model before the run and saved where the script loads them): their "
    "clean mAP differs from table 5's (I->T 0.494 / 0.606 for DCMH / SSAH against 0.443 / 0.599, T->I 0.508 / 0.685 against "
    "0.481 / 0.714), so table 6 compares with table 5 by ratios only. `cmla` uses the intra weight table 4 validated on table "
    "4's models at the stated budget (8 for both models and modalities), kept at every budget.",
    "Table 6's sizing: before the run one 20-pair target-form row took 0.36-0.41 s per query on images (margin reach) and "
    "0.12-0.15 on texts, which put the full grid (4 settings x 100 validation pairs x 3 budgets x 4 cells, plus the test "
    "rows) at about 30 minutes, under the 60 minutes that would have cut it to 50 validation pairs and 3 settings; so the "
    "full grid ran. With the two processes and the other engineers' jobs on the 2 cores (load median 4.0) the attacks took "
    "35 minutes of wall time in each process (about 38 minutes per process end to end), and the s/query column is "
    "measured under that contention.",
    "Where table 6 meets the target: in 2 of 12 cell-budgets, both on DCMH text queries -- L2 1.0 (cross / same ratio 0.43 "
    "/ 1.09) and L2 2.0 (0.40 / 1.09), the target form with the margin reach at lambda 1, the setting validation chose "
    "there (0.38 / 0.90 and 0.42 / 0.93 on the validation pairs); at the stated L2 0.5 the same setting gives 0.56 / 1.10. "
    "DCMH images (0.80 / 1.00, 0.86 / 1.09, 0.82 / 1.10 at 8, 16, 32 /255), SSAH images (0.67 / 1.04, 0.80 / 1.23, 0.61 / "
    "1.08) and SSAH texts (0.72 / 1.10, 0.70 / 1.12, 0.64 / 1.09 at L2 0.5, 1, 2) miss it at every budget swept, as do `cmla` "
    "(cross ratio 0.83-0.95 at every budget) and HAG, which cuts both mAPs together (cross / same 0.58 / 0.57 down to 0.17 / "
    "0.16).",
    "Why a larger budget does not buy the target on three cells: on the validation pairs every setting that halves "
    "cross-modal mAP on those cells also cuts same-modality mAP by more than 10%, at every budget (e.g. at 4x: margin lambda "
    "0.5 0.25 / 0.68 on DCMH images, 0.37 / 0.57 on SSAH images, 0.28 / 0.43 on SSAH texts; tanh lambda 1 capped 0.28 / 0.43, "
    "0.68 / 0.80, 0.35 / 0.42), so the rule picks a setting that keeps same-modality mAP (lambda 2 on DCMH images at 2x and "
    "4x, on SSAH images at 2x and on SSAH texts at every budget) and its cross ratio stays at 0.61-0.86. That choice changes "
    "with the budget, which is why the target form's cross ratio is not monotone in the budget (DCMH images 0.80 at 8/255 "
    "with lambda 1, 0.86 at 16/255 with lambda 2; SSAH images 0.67, 0.80, 0.61 with lambda 1, 2, 1). The target form "
    "leaves part of the larger budgets unused (mean L-inf 0.097 of 0.125 on DCMH images at 32/255) and reaches 1.1-2.8 of "
    "2.0-4.2 planned bits at every budget.",
]


# --- data --------------------------------------------------------------------------------------
def frozen_features(dataset, dataset64):
    image = extract_features(dataset64.images, "efficientnet-lite0")
    text = extract_features(dataset.texts, "minilm")
    return image, text


def standardize(train, *others):
    mean, std = train.mean(0), train.std(0) + 1e-6
    return [(x - mean) / std for x in (train, *others)]


# --- shallow baselines --------------------------------------------------------------------------
def cca(X, Y, n_components, reg=1e-3):
    """Canonical directions ``(Wx, Wy)`` and correlations: whiten each view (ridge ``reg``), SVD of the cross-covariance."""
    X, Y = X - X.mean(0), Y - Y.mean(0)
    n = len(X)

    def inverse_sqrt(C):
        values, vectors = np.linalg.eigh(C)
        return vectors @ np.diag(1 / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T

    Cxx = X.T @ X / n + reg * np.eye(X.shape[1])
    Cyy = Y.T @ Y / n + reg * np.eye(Y.shape[1])
    Kx, Ky = inverse_sqrt(Cxx), inverse_sqrt(Cyy)
    U, s, Vt = np.linalg.svd(Kx @ (X.T @ Y / n) @ Ky)
    return Kx @ U[:, :n_components], Ky @ Vt.T[:, :n_components], s[:n_components]


def itq_rotation(V, n_iter=50, seed=0):
    rng = np.random.default_rng(seed)
    R, _ = np.linalg.qr(rng.standard_normal((V.shape[1], V.shape[1])))
    for _ in range(n_iter):
        B = np.where(V @ R > 0, 1.0, -1.0)
        U, _, Wt = np.linalg.svd(V.T @ B)
        R = U @ Wt
    return R


def shallow_codes(kind, train_image, train_text, image_sets, text_sets, n_bits, seed):
    """Codes of each array in ``image_sets`` / ``text_sets`` under a shallow baseline fitted on the training pairs.

    ``cca-itq``: CCA to ``n_bits`` dimensions (directions scaled by their correlation), one ITQ rotation
    learned on both views' projections (Gong et al., 2013); ``cca-rp``: the same CCA space, sign of a
    random Gaussian projection; ``rp``: sign of independent random projections of each view (chance level:
    nothing ties the two spaces)."""
    rng = np.random.default_rng(seed)
    mean_i, mean_t = train_image.mean(0), train_text.mean(0)
    if kind == "rp":
        Pi, Pt = rng.standard_normal((train_image.shape[1], n_bits)), rng.standard_normal((train_text.shape[1], n_bits))
        return [sign_to_codes((x - mean_i) @ Pi) for x in image_sets], [sign_to_codes((x - mean_t) @ Pt) for x in text_sets]
    Wi, Wt, corr = cca(train_image.astype(np.float64), train_text.astype(np.float64), n_bits)
    Wi, Wt = Wi * corr, Wt * corr
    if kind == "cca-itq":
        R = itq_rotation(np.concatenate([(train_image - mean_i) @ Wi, (train_text - mean_t) @ Wt]), seed=seed)
    else:
        R = rng.standard_normal((n_bits, n_bits))
    return ([sign_to_codes((x - mean_i) @ Wi @ R) for x in image_sets], [sign_to_codes((x - mean_t) @ Wt @ R) for x in text_sets])


# --- deep training ------------------------------------------------------------------------------
def train_two_tower(method, n_bits, inputs, split, labels, *, epochs, lr, seed, hidden=(512,), batch_transform=None,
                    init=None, patience=None):
    from hashlearn.losses import build_objective
    from hashlearn.models.two_tower import build_two_tower
    from hashlearn.train import TrainConfig, Trainer

    image, text = inputs
    model = build_two_tower(n_bits, image.shape[1:], text.shape[1:], seed=seed, hidden=hidden)
    if init is not None:
        model.load_state_dict(init.state_dict())
    objective = build_objective(method, n_bits, labels.shape[1])
    config = TrainConfig(epochs=epochs, batch_size=64, lr=lr, seed=seed, val_k=100_000, patience=patience)
    train = ((image[split.train], text[split.train]), labels[split.train])
    val = ((image[split.validation], text[split.validation]), labels[split.validation])
    result = Trainer(config).fit(model, objective, train=train, val=val, batch_transform=batch_transform)
    return model, result


def encode_parts(model, inputs, index):
    image, text = inputs
    return model.encode(image[index], "image"), model.encode(text[index], "text")


def retrieval_row(name, n_bits, seed, codes, split, labels):
    (qi, qt), (di, dt) = codes
    ql, dl = labels[split.query], labels[split.database]
    at_all = crossmodal_map(qi, qt, di, dt, ql, dl, k=None, directions=["I->T", "T->I"])
    at_100 = crossmodal_map(qi, qt, di, dt, ql, dl, k=100, directions=["I->T", "T->I"])
    return {"table": "retrieval", "method": name, "n_bits": n_bits, "seed": seed,
            "I->T mAP@all": at_all["I->T"], "T->I mAP@all": at_all["T->I"],
            "I->T mAP@100": at_100["I->T"], "T->I mAP@100": at_100["T->I"]}


# --- attacks ------------------------------------------------------------------------------------
def attack_queries(model, inputs, labels, query, database, modality, attack_name, steps, intra_weight=None, seed=0, budget_scale=1.0,
                   references=None, options=None, budgets=None):
    """mAP of ``query`` pairs before and after attacking their ``modality`` side; distortion of the inputs.

    ``attack_name`` ``"cmla-labels"``: CMLA's label form (the paper's objective) with positives and negatives
    weighted equally, ``theta_scale`` 1/32, and the clean codes of the pairs ``references`` as its references;
    ``"cmla-target"``: the two-stage form (``CMLATarget``) with the same references and ``options`` (its keyword
    arguments beyond the budget and ``intra_weight``). ``budgets``: per modality ``dict(eps=, norm=, clip=)`` in place
    of the pixel / bag-of-words budgets (``IMAGE_EPS``, ``TEXT_EPS``), scaled by ``budget_scale`` as they are."""
    from hashlearn.attacks import CMLA, HAG, CMLATarget

    image, text = inputs
    other = "text" if modality == "image" else "image"
    x = torch.from_numpy((image if modality == "image" else text)[query])
    tower = model.tower(modality)
    if budgets is not None:
        budget = dict(budgets[modality])
        budget["eps"] = budget["eps"] * budget_scale
    else:
        budget = (dict(eps=IMAGE_EPS * budget_scale, norm="linf", clip=(0.0, 1.0)) if modality == "image"
                  else dict(eps=TEXT_EPS * budget_scale, norm="l2", clip=(0.0, 1.0)))
    paired = model.encode((text if modality == "image" else image)[query], other)
    if attack_name in ("cmla-target", "cmla-labels"):  # the attacker's references: the training pairs' clean codes
        reference = (model.encode((image if modality == "image" else text)[references], modality),
                     model.encode((text if modality == "image" else image)[references], other), labels[references])
    if attack_name == "cmla":
        attack = CMLA(tower, steps=steps, intra_weight=intra_weight, seed=seed, **budget)
        result = attack.attack(x, paired)
    elif attack_name == "cmla-target":
        attack = CMLATarget(tower, steps=steps, intra_weight=intra_weight, seed=seed, reference=reference, **(options or {}), **budget)
        result = attack.attack(x, labels=labels[query])
    elif attack_name == "cmla-labels":
        attack = CMLA(tower, steps=steps, intra_weight=intra_weight, seed=seed, reference=reference, balanced=True,
                      theta_scale=LABEL_THETA_SCALE, **budget)
        result = attack.attack(x, paired, labels=labels[query])
    else:
        attack = HAG(tower, steps=steps, seed=seed, **budget)
        result = attack.attack(x)
    adversarial = sign_to_codes(tower.transform(result.x_adv))
    clean = model.encode(x.numpy(), modality)
    db = {"image": model.encode(image[database], "image"), "text": model.encode(text[database], "text")}
    ql, dl = labels[query], labels[database]
    cross = {"image": "I->T", "text": "T->I"}[modality]
    same = {"image": "I->I", "text": "T->T"}[modality]

    def maps(codes):
        q = {modality: codes, other: paired}
        out = crossmodal_map(q["image"], q["text"], db["image"], db["text"], ql, dl, k=None, directions=[cross, same])
        return out[cross], out[same]

    (cross_clean, same_clean), (cross_adv, same_adv) = maps(clean), maps(adversarial)
    norm = budget["norm"]
    return {"cross": cross, "same": same, "cross_clean": cross_clean, "cross_adv": cross_adv, "same_clean": same_clean,
            "same_adv": same_adv, "distortion": float(np.mean(result.records[norm])), "norm": norm, "eps": budget["eps"],
            "bits_flipped": float(np.mean(result.records["bits_flipped"])), "seconds": result.seconds, "steps": steps,
            **{f"mean_{name}": float(np.mean(result.records[name])) for name in ("bits_planned", "bits_reached") if name in result.records}}


def choose_intra_weight(model, inputs, labels, split, modality, weights=(0.0, 0.5, 2.0), steps=100, attack_name="cmla"):
    """On validation pairs (queries) against the training pairs: the weight with the largest cross-modal
    drop among those keeping same-modality mAP within 10% (else the one with the smallest same-modality drop)."""
    rows = {w: attack_queries(model, inputs, labels, split.validation[:100], split.train, modality, attack_name, steps, w,
                              references=split.train) for w in weights}
    return choose(rows), rows


def choose(trials):
    """The setting with the largest cross-modal drop among those keeping same-modality mAP within 10%, else the one
    with the smallest same-modality drop (the rule of tables 2 and 4)."""
    within = [k for k, r in trials.items() if r["same_adv"] >= 0.9 * r["same_clean"]]
    if within:
        return max(within, key=lambda k: trials[k]["cross_clean"] - trials[k]["cross_adv"])
    return max(trials, key=lambda k: trials[k]["same_adv"] - trials[k]["same_clean"])


# --- output -------------------------------------------------------------------------------------
def load_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def save(rows, meta, path_json, path_md):
    """Write this process's part file, then the merged json and markdown of every part file next to it
    (the retrieval and the attack tables may run as two processes)."""
    atomic_write_json(path_json, {"meta": meta, "rows": rows})
    merged, metas = [], []
    for part in sorted(path_json.parent.glob(f"{path_md.stem}-part-*.json")):
        content = json.loads(part.read_text())
        merged += content["rows"]
        metas.append(content["meta"])
    combined = dict(meta)
    combined["load"] = "; ".join(f"{m.get('part')}: {m.get('load')}" for m in metas)
    combined["command"] = " and ".join(m["command"] for m in metas)
    combined["notes"] = [note for m in metas for note in m.get("notes", [])]
    for m in metas:  # a measurement one part made (table 7's text scale) belongs to the merged file too
        if "minilm_neighbour_distance" in m:
            combined["minilm_neighbour_distance"] = m["minilm_neighbour_distance"]
    atomic_write_json(path_md.with_suffix(".json"), {"meta": combined, "parts": metas, "rows": merged})
    atomic_write_text(path_md, render_markdown(merged, combined))


def _mean_std(values):
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def ratios(row):
    """Cross-modal and same-modality mAP after the attack over before."""
    return row["cross_adv"] / max(row["cross_clean"], 1e-12), row["same_adv"] / max(row["same_clean"], 1e-12)


def target_met(row) -> bool:
    """The issue's target: cross-modal mAP at most half of clean with same-modality mAP within 10% of clean."""
    cross_ratio, same_ratio = ratios(row)
    return cross_ratio <= 0.5 and same_ratio >= 0.9


def render_markdown(rows, meta) -> str:
    lines = ["# Cross-modal hashing on openmoji", "",
             f"Machine: {meta['machine']}; load average during the run: {meta.get('load', '?')}. "
             f"Data: {meta.get('n_pairs', '?')} openmoji pairs; protocol: {meta.get('protocol', '')}. "
             f"Reproduce: `{meta['command']}`.", ""]
    retrieval = [r for r in rows if r["table"] == "retrieval"]
    if retrieval:
        lines += ["## 1. Retrieval on frozen features (mean ± std over seeds)", "",
                  "Images: EfficientNet-Lite0 features of the 64 px renders; texts: all-MiniLM-L6-v2 embeddings. "
                  "Deep rows: two MLP towers (hidden 512), model selection by validation mAP. Chance level is the `rp` row.", "",
                  "| method | bits | seeds | I->T mAP@all | T->I mAP@all | I->T mAP@100 | T->I mAP@100 |", "|---|---|---|---|---|---|---|"]
        keys = sorted({(r["method"], r["n_bits"]) for r in retrieval}, key=lambda k: (k[1], k[0]))
        for method, n_bits in keys:
            group = [r for r in retrieval if r["method"] == method and r["n_bits"] == n_bits]
            cells = [_mean_std([r[c] for r in group]) for c in ("I->T mAP@all", "T->I mAP@all", "I->T mAP@100", "T->I mAP@100")]
            lines.append(f"| {method} | {n_bits} | {len(group)} | " + " | ".join(cells) + " |")
        lines.append("")
    attacks = [r for r in rows if r["table"] == "cmla"]
    if attacks:
        lines += ["## 2. CMLA on the pixel + bag-of-words models (32 bits)", "",
                  f"Image queries: L-inf budget {IMAGE_EPS:.4f} (8/255) in pixel space; text queries: L2 budget {TEXT_EPS} in "
                  "binary bag-of-words space (texts have on average "
                  f"{meta.get('mean_text_norm', float('nan')):.2f} L2 norm, i.e. {meta.get('mean_tokens', float('nan')):.1f} tokens). "
                  "`intra` is CMLA's intra-modal weight chosen on the validation pairs. mAP@all over the database. "
                  "`2x budget` rows: 16/255 and 1.0.", "",
                  "| model | attack | query | iters | intra | cross | cross clean | cross attacked | ratio | same | same clean | same attacked | ratio | distortion | bits flipped | s/query |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in attacks:
            lines.append(
                f"| {r['model']} | {r['attack']} | {r['modality']} | {r['steps']} | {r.get('intra_weight', '-')} | {r['cross']} | "
                f"{r['cross_clean']:.3f} | {r['cross_adv']:.3f} | {ratios(r)[0]:.2f} | {r['same']} | "
                f"{r['same_clean']:.3f} | {r['same_adv']:.3f} | {ratios(r)[1]:.2f} | "
                f"{r['norm']} {r['distortion']:.4f} | {r['bits_flipped']:.1f} | {r['seconds'] / max(r['n_queries'], 1):.3f} |")
        lines.append("")
    trials = [r for r in rows if r["table"] == "cmla-validation"]
    if trials:
        lines += ["### CMLA's intra-modal weight on the validation pairs (100 iterations, 100 validation queries vs the training pairs)", "",
                  "The trade-off the weight controls: no weight keeps the same-modality mAP within 10% while cutting the cross-modal mAP.", "",
                  "| model | query | intra weight | chosen | cross clean | cross attacked | same clean | same attacked | bits flipped |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in trials:
            lines.append(f"| {r['model']} | {r['modality']} | {r['intra_weight']} | {'yes' if r['chosen'] else ''} | {r['cross_clean']:.3f} | "
                         f"{r['cross_adv']:.3f} | {r['same_clean']:.3f} | {r['same_adv']:.3f} | {r['bits_flipped']:.1f} |")
        lines.append("")
    adversarial = [r for r in rows if r["table"] == "adversarial"]
    if adversarial:
        lines += ["## 3. Cross-modal adversarial training (the + models)", "",
                  "Both rows of a pair start from the same plain model and are fine-tuned for the same epochs; the + row "
                  "replaces half of each batch by CMLA samples (5 steps, both modalities, the budgets above). Attacked: CMLA, "
                  "100 iterations, intra weight as in table 2.", "",
                  "| model | I->T clean | T->I clean | I->T attacked | T->I attacked | I->I attacked | T->T attacked | fine-tune s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in adversarial:
            lines.append(f"| {r['model']} | {r['I->T clean']:.3f} | {r['T->I clean']:.3f} | {r['I->T attacked']:.3f} | "
                         f"{r['T->I attacked']:.3f} | {r['I->I attacked']:.3f} | {r['T->T attacked']:.3f} | {r['seconds']:.0f} |")
        lines.append("")
    from crossmodal_target import render_budget, render_forms_and_target

    lines += render_forms_and_target(rows)
    lines += render_budget(rows)
    from crossmodal_index import render_index

    lines += render_index(rows, meta)
    notes = NOTES + list(meta.get("notes") or [])
    lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    from crossmodal_target import BUDGET_GRID, run_budget, run_forms, run_target_forms  # tables 4-6 (imports this module)

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the frozen-feature models (early stop on validation)")
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--pixel-epochs", type=int, default=30, help="epochs of the pixel models attacked by CMLA")
    parser.add_argument("--pixel-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--attack-models", nargs="+", default=["dcmh", "ssah"])
    parser.add_argument("--tables", nargs="+", default=["retrieval", "cmla", "adversarial"])
    parser.add_argument("--n-attack-queries", type=int, default=100)
    parser.add_argument("--target-iterations", type=int, nargs="+", default=list(ITERATIONS),
                        help="iteration counts of table 5 (the first one also for its validation)")
    parser.add_argument("--budget-settings", nargs="+", choices=list(BUDGET_GRID), default=list(BUDGET_GRID),
                        help="table 6: the target-form settings tried on the validation pairs at each budget")
    parser.add_argument("--budget-validation-pairs", type=int, default=100, help="table 6: validation pairs per setting and budget")
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script (not for results)")
    parser.add_argument("--fresh", action="store_true", help="ignore rows already in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    set_quiet(True)
    torch.set_num_threads(1)
    if args.quick:
        args.seeds, args.bits, args.epochs, args.pixel_epochs, args.finetune_epochs = [0], [16], 2, 2, 1
        args.attack_models, args.n_attack_queries = ["dcmh"], 20
    stem = "crossmodal-quick" if args.quick else "crossmodal"
    part = "+".join(args.tables) + ("-" + "-".join(args.attack_models) if set(args.tables) & ATTACK_TABLES else "")
    path_json, path_md = args.out / f"{stem}-part-{part}.json", args.out / f"{stem}.md"
    rows = [] if args.fresh else load_rows(path_json)
    done = {json.dumps({k: r[k] for k in KEY_FIELDS if k in r}, sort_keys=True) for r in rows}

    def is_done(**key):
        return json.dumps(key, sort_keys=True) in done

    dataset = load_dataset("openmoji")
    labels = dataset.labels
    token_counts = dataset.text_vectors.sum(1)
    meta = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared)",
            "command": f"PYTHONPATH=src nice -n {os.nice(0)} python benchmarks/crossmodal.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
            "n_pairs": len(dataset), "protocol": make_split(dataset, seed=0).meta["description"],
            "mean_text_norm": float(np.sqrt(token_counts).mean()), "mean_tokens": float(token_counts.mean()),
            "notes": [], "load": "", "part": part}
    loads = []

    def record(row):
        loads.append(os.getloadavg()[0])
        meta["load"] = f"median {statistics.median(loads):.1f} (1-min averages at each row, {len(loads)} rows)"
        rows.append(row)
        done.add(json.dumps({k: row[k] for k in KEY_FIELDS if k in row}, sort_keys=True))
        save(rows, meta, path_json, path_md)
        print(json.dumps(row), flush=True)

    if "retrieval" in args.tables:
        image_features, text_features = frozen_features(dataset, load_dataset("openmoji", image_size=64))
        for seed in args.seeds:
            split = make_split(dataset, seed=seed)
            scaled_image = standardize(image_features[split.train], image_features)[1]
            scaled_text = standardize(text_features[split.train], text_features)[1]
            inputs = (scaled_image.astype(np.float32), scaled_text.astype(np.float32))
            for n_bits in args.bits:
                for kind in ("cca-itq", "cca-rp", "rp"):
                    if is_done(table="retrieval", method=kind, n_bits=n_bits, seed=seed):
                        continue
                    image_codes, text_codes = shallow_codes(kind, inputs[0][split.train], inputs[1][split.train],
                                                            [inputs[0][split.query], inputs[0][split.database]],
                                                            [inputs[1][split.query], inputs[1][split.database]], n_bits, seed)
                    codes = ((image_codes[0], text_codes[0]), (image_codes[1], text_codes[1]))
                    record(retrieval_row(kind, n_bits, seed, codes, split, labels))
                for method in DEEP:
                    if is_done(table="retrieval", method=method, n_bits=n_bits, seed=seed):
                        continue
                    started = time.perf_counter()
                    model, result = train_two_tower(method, n_bits, inputs, split, labels, epochs=args.epochs, lr=1e-3, seed=seed,
                                                    patience=args.patience)
                    codes = (encode_parts(model, inputs, split.query), encode_parts(model, inputs, split.database))
                    row = retrieval_row(method, n_bits, seed, codes, split, labels)
                    row.update(best_epoch=result.best_epoch, val_metric=result.best_metric, train_seconds=time.perf_counter() - started)
                    record(row)

    if set(args.tables) & ATTACK_TABLES:
        from hashlearn.models.two_tower import TwoTowerHashModel

        split = make_split(dataset, seed=0)
        inputs = (dataset.image_inputs(), dataset.text_inputs())
        query = split.query[: args.n_attack_queries]
        for method in args.attack_models:
            model_dir = WORK / f"{stem}-{method}-pixels-32"
            if (model_dir / "model.json").exists():
                model = TwoTowerHashModel.load(model_dir)
            else:
                model, result = train_two_tower(method, 32, inputs, split, labels, epochs=args.pixel_epochs, lr=args.pixel_lr, seed=0)
                model.save(model_dir)
                atomic_write_json(model_dir / "train.json", result.to_dict())
            if "forms" in args.tables:
                run_forms(method, model, inputs, labels, split, query, record, is_done, quick=args.quick)
            if "target" in args.tables:
                run_target_forms(method, model, inputs, labels, split, query, record, is_done, rows,
                                 load_rows(path_md.with_suffix(".json")), quick=args.quick, iterations=args.target_iterations)
            if "index" in args.tables:
                from crossmodal_index import MINILM_EPS, frozen_model, run_index, text_neighbour_distance

                run_index(f"{method} pixels", model, inputs, labels, split, query, record, is_done, rows, quick=args.quick)
                frozen, features = frozen_model(method, dataset, split, labels, WORK, quick=args.quick)
                meta["minilm_neighbour_distance"] = text_neighbour_distance(features[1])
                run_index(f"{method} frozen", frozen, features, labels, split, query, record, is_done, rows, modalities=("text",),
                          budgets={"text": dict(eps=MINILM_EPS, norm="l2", clip=None)}, quick=args.quick)
            if "budget" in args.tables:
                run_budget(method, model, inputs, labels, split, query, record, is_done, rows, load_rows(path_md.with_suffix(".json")),
                           settings=args.budget_settings, n_validation=args.budget_validation_pairs, quick=args.quick)
            if not set(args.tables) & {"cmla", "adversarial"}:
                continue
            intra = {}
            for modality in ("image", "text"):
                weight_file = model_dir / f"intra-{modality}.json"
                if weight_file.exists():
                    intra[modality] = json.loads(weight_file.read_text())["chosen"]
                else:
                    chosen, trials = choose_intra_weight(model, inputs, labels, split, modality, steps=100 if not args.quick else 5)
                    atomic_write_json(weight_file, {"chosen": chosen, "trials": {str(w): r for w, r in trials.items()}})
                    intra[modality] = chosen
                trials = json.loads(weight_file.read_text())["trials"]
                for weight, trial in trials.items():
                    if not is_done(table="cmla-validation", model=method, attack=f"cmla w={weight}", modality=modality):
                        record({"table": "cmla-validation", "model": method, "attack": f"cmla w={weight}", "modality": modality,
                                "intra_weight": float(weight), "chosen": float(weight) == intra[modality], **trial})
            if "cmla" in args.tables:
                for modality in ("image", "text"):
                    for attack_name, steps_list in (("hag", ITERATIONS[:1]), ("cmla", ITERATIONS)):
                        for steps in steps_list:
                            steps = steps if not args.quick else 5
                            if is_done(table="cmla", model=method, attack=attack_name, modality=modality, steps=steps):
                                continue
                            out = attack_queries(model, inputs, labels, query, split.database, modality, attack_name, steps,
                                                 intra.get(modality) if attack_name == "cmla" else None)
                            record({"table": "cmla", "model": method, "attack": attack_name, "modality": modality,
                                    "intra_weight": intra[modality] if attack_name == "cmla" else "-", "n_queries": len(query), **out})
                    # the same attacks at twice the budget (16/255 on pixels, 1.0 in bag-of-words), 100 iterations
                    for attack_name in ("hag", "cmla"):
                        steps = ITERATIONS[0] if not args.quick else 5
                        if is_done(table="cmla", model=method, attack=f"{attack_name} 2x budget", modality=modality, steps=steps):
                            continue
                        out = attack_queries(model, inputs, labels, query, split.database, modality, attack_name, steps,
                                             intra.get(modality) if attack_name == "cmla" else None, budget_scale=2.0)
                        record({"table": "cmla", "model": method, "attack": f"{attack_name} 2x budget", "modality": modality,
                                "intra_weight": intra[modality] if attack_name == "cmla" else "-", "n_queries": len(query), **out})
            if "adversarial" in args.tables:
                from hashlearn.attacks import CMLA
                from hashlearn.defenses.crossmodal_adversarial import CrossModalAdversarialTraining

                budgets = {"image": dict(eps=IMAGE_EPS, norm="linf", clip=(0.0, 1.0)), "text": dict(eps=TEXT_EPS, norm="l2", clip=(0.0, 1.0))}
                for variant in ("fine-tuned", "fine-tuned+"):
                    epochs_note = "" if args.finetune_epochs == 6 else f" {args.finetune_epochs} epochs"
                    name = f"{method.upper()}{'+' if variant.endswith('+') else ''} (pixels, 32 bits, {variant}{epochs_note})"
                    if is_done(table="adversarial", model=name):
                        continue
                    transform = None
                    if variant.endswith("+"):
                        transform = CrossModalAdversarialTraining(
                            lambda tower, modality, seed: CMLA(tower, steps=5, seed=seed, intra_weight=intra[modality], **budgets[modality]),
                            fraction=0.5, seed=0)
                    started = time.perf_counter()
                    tuned, _ = train_two_tower(method, 32, inputs, split, labels, epochs=args.finetune_epochs, lr=3e-4, seed=1,
                                               batch_transform=transform, init=model)
                    seconds = time.perf_counter() - started
                    qi, qt = encode_parts(tuned, inputs, query)
                    di, dt = encode_parts(tuned, inputs, split.database)
                    clean = crossmodal_map(qi, qt, di, dt, labels[query], labels[split.database], k=None, directions=["I->T", "T->I"])
                    attacked = {}
                    for modality in ("image", "text"):
                        out = attack_queries(tuned, inputs, labels, query, split.database, modality, "cmla",
                                             100 if not args.quick else 5, intra[modality])
                        attacked[out["cross"]], attacked[out["same"]] = out["cross_adv"], out["same_adv"]
                    record({"table": "adversarial", "model": name, "I->T clean": clean["I->T"], "T->I clean": clean["T->I"],
                            **{f"{d} attacked": attacked[d] for d in ("I->T", "T->I", "I->I", "T->T")}, "seconds": seconds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
