"""Table 7 of ``benchmarks/crossmodal.py``: CMLA's target form when the attacker knows the index.

Tables 5 and 6 give the attacker the training pairs' clean codes as the
references it plans its target code against. This table asks what changes
when it plans against the codes actually searched -- the database's codes and
labels, as an attacker holding the index file (or its replica) would -- and
sets that against the training-pair references on the same models, queries and
budgets:

* the pixel + bag-of-words models of tables 2-6 (image queries L-inf 8/255 in
  pixel space, text queries L2 0.5 in bag-of-words space, the stated budgets);
* the frozen-feature models of table 1 (MLP towers on EfficientNet-Lite0 and
  all-MiniLM-L6-v2 features, 32 bits, seed 0), text queries attacked in MiniLM
  space within L2 ``MINILM_EPS`` (the embeddings have unit norm). Their image
  queries are not attacked here: a pixel attack through EfficientNet-Lite0
  at 224 px costs about 15 CPU s per step for 50 images on this machine
  (100 steps x 100 queries x the validation grid: hours).

Selection as in table 6: the target form's setting (``INDEX_SETTINGS``) is chosen
on 100 validation pairs searched against the database pairs outside the
training and validation pairs -- with those pairs' codes as the references for
the index-known attacker -- then run once on the query pairs against the full
database, whose codes are then its references. Never chosen on the queries.

    PYTHONPATH=src nice -n 5 python benchmarks/crossmodal.py --tables index --attack-models dcmh
"""

from __future__ import annotations

import numpy as np
import torch

#: L2 budget of text queries in all-MiniLM-L6-v2 space (unit-norm embeddings: cosine >= 0.995 to the clean one)
MINILM_EPS = 0.1
#: the target form's settings validation chooses from here: table 6's grid plus lambda 0.75, between the 0.5 that cuts
#: same-modality mAP and the 1 that keeps it on table 6's validation pairs
INDEX_SETTINGS = ("margin reach, lambda 0.5, cost<=1", "margin reach, lambda 0.75, cost<=1", "margin reach, lambda 1, cost<=1",
                  "margin reach, lambda 2, cost<=1", "tanh reach, lambda 1, same capped at clean, cost<=1")
#: where the attacker's references come from: the training pairs (tables 5 and 6) or the codes searched
REFERENCES = ("training pairs", "index")


#: what table 7 shows, read off its rows (rendered under it)
INDEX_NOTES = [
    "Knowing the index does not meet the target: 0 of 6 cells at the stated budgets, as with the training pairs' "
    "references. It moves four cells closer (cross / same ratio, training pairs -> index): SSAH images 1.04 / 1.21 -> "
    "0.75 / 1.02, DCMH texts 0.65 / 1.06 -> 0.54 / 0.97, SSAH texts 0.67 / 1.06 -> 0.43 / 0.83, DCMH images about level "
    "(0.75 / 0.94 -> 0.77 / 0.95); on the frozen-feature text towers it does not help (0.68 / 0.92 -> 0.74 / 0.97 DCMH, "
    "0.87 / 0.93 -> 0.89 / 0.91 SSAH). Closest: DCMH texts with the index, 0.54 / 0.97, chosen on validation where it gave "
    "0.42 / 0.93; SSAH texts with the index halve cross-modal mAP (0.43) but lose 17% of same-modality mAP.",
    "The code-space bound rows (table 4's greedy search against the database itself, no input budget) say where the "
    "target's codes exist: on 4 of 6 cells (DCMH images 0.18 / 1.15, SSAH texts 0.29 / 1.13, the frozen DCMH and SSAH "
    "text towers 0.22 / 0.97 and 0.32 / 1.02), not on DCMH texts (0.59 / 1.26) or SSAH images (0.57 / 1.32), where no "
    "greedy code of the query halves cross-modal mAP while keeping same-modality mAP.",
    "On the frozen-feature text towers small perturbations flip many bits, but not the planned ones: HAG flips 15-16 of "
    "32 bits at a mean L2 of 0.003, and the target form's kept inputs use 0.005-0.015 of the 0.1 budget while reaching "
    "about half of the bits their plans ask for and flipping 1.6-3.5 others (DCMH with the index: 4.4 flipped, 1.1 of "
    "2.1 planned reached). On the validation pairs every setting that halves cross-modal mAP there also costs more than "
    "half of same-modality mAP (lambda 0.75: 0.21 / 0.45 DCMH, 0.33 / 0.47 SSAH), while the bound's codes keep it "
    "(0.97-1.02): those codes exist in code space, but the attacks do not produce them from inputs near the query.",
    "The frozen models are trained in the run (table 1's settings: 40 epochs, patience 8, lr 1e-3, seed 0) on "
    "standardized features; the standardization is then folded into each tower's first linear layer (codes of all 1,870 "
    "pairs checked equal before and after the fold; the agreement is stored in the model folder's train.json), so the "
    "text budget is in MiniLM's own space.",
]


def fold_standardization(tower, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``(x - mean) / std`` into the first linear layer of an MLP tower, so the tower takes raw features
    (the attack's budget is then in the encoder's own space) and gives the same outputs."""
    first = tower.backbone.net[0]
    scale = torch.from_numpy(1.0 / np.asarray(std, dtype=np.float64)).float()
    shift = torch.from_numpy(np.asarray(mean, dtype=np.float64)).float()
    with torch.no_grad():
        weight = first.weight * scale
        first.bias.sub_(weight @ shift)
        first.weight.copy_(weight)


def frozen_model(method, dataset, split, labels, work, epochs=40, patience=8, quick=False):
    """Table 1's model of ``method`` at 32 bits, seed 0, with the feature standardization folded into its towers;
    returns ``(model, (image_features, text_features))`` (raw features, float32)."""
    from crossmodal import frozen_features, train_two_tower

    from hashlearn._io import atomic_write_json
    from hashlearn.data import load_dataset
    from hashlearn.models.two_tower import TwoTowerHashModel

    image, text = frozen_features(dataset, load_dataset("openmoji", image_size=64))
    raw = (image.astype(np.float32), text.astype(np.float32))
    model_dir = work / f"{'quick-' if quick else ''}{method}-frozen-32-folded"
    if (model_dir / "model.json").exists():
        return TwoTowerHashModel.load(model_dir), raw
    stats = [(x[split.train].mean(0), x[split.train].std(0) + 1e-6) for x in raw]
    scaled = tuple(((x - m) / s).astype(np.float32) for x, (m, s) in zip(raw, stats))
    model, result = train_two_tower(method, 32, scaled, split, labels, epochs=2 if quick else epochs, lr=1e-3, seed=0,
                                    patience=patience)
    before = [model.encode(x, modality) for x, modality in zip(scaled, ("image", "text"))]
    for modality, (m, s) in zip(("image", "text"), stats):
        fold_standardization(model.tower(modality), m, s)
    after = [model.encode(x, modality) for x, modality in zip(raw, ("image", "text"))]
    agreement = float(np.mean([(b == a).mean() for b, a in zip(before, after)]))
    model.save(model_dir)
    atomic_write_json(model_dir / "train.json", {**result.to_dict(), "fold_code_agreement": agreement})
    return model, raw


def text_neighbour_distance(text_features: np.ndarray) -> float:
    """Median L2 distance from a text's MiniLM embedding to its nearest other text's (the scale the budget is read on)."""
    squared = (text_features ** 2).sum(1)
    distances = squared[:, None] + squared[None] - 2 * text_features @ text_features.T
    np.fill_diagonal(distances, np.inf)
    return float(np.median(np.sqrt(np.maximum(distances.min(1), 0))))


def run_index(name, model, inputs, labels, split, query, record, is_done, rows, *, modalities=("image", "text"),
              budgets=None, steps=100, n_validation=100, quick=False):
    """Table 7 for one model (``name``): per modality and reference kind, the target form's setting chosen on the
    validation pairs, then the query pairs; HAG (untargeted) on the same queries as the baseline."""
    from crossmodal import attack_queries, choose
    from crossmodal_target import TARGET_SETTINGS, code_space_bound, validate_target_settings

    validation = split.validation[:n_validation] if not quick else split.validation[:10]
    unseen = np.setdiff1d(split.database, np.concatenate([split.train, split.validation]))
    steps = steps if not quick else 5
    grid = {setting: dict(TARGET_SETTINGS[setting]) for setting in INDEX_SETTINGS}
    if quick:
        grid = {setting: {**options, "rounds": min(options["rounds"], 5)} for setting, options in list(grid.items())[:2]}
    references = {"training pairs": (split.train, split.train), "index": (unseen, split.database)}
    for modality in modalities:
        if not is_done(table="index", model=name, attack="hag", modality=modality, steps=steps, references="-"):
            out = attack_queries(model, inputs, labels, query, split.database, modality, "hag", steps, budgets=budgets)
            record({"table": "index", "model": name, "attack": "hag", "modality": modality, "references": "-", "setting": "-",
                    "intra_weight": "-", "n_queries": len(query), **out})
        bound = "code-space bound (lambda 1)"
        if not is_done(table="index", model=name, attack=bound, modality=modality, steps=0, references="index, no budget"):
            out = code_space_bound(model, inputs, labels, query, split.database, modality, 1.0)
            record({"table": "index", "model": name, "attack": bound, "modality": modality, "references": "index, no budget",
                    "setting": "-", "intra_weight": "-", "n_queries": len(query), **out})
        for kind in REFERENCES:
            validation_references, test_references = references[kind]
            validate_target_settings(model, inputs, labels, validation, unseen, modality, grid, steps, record, is_done,
                                     table="index-validation", name=name, key={"references": kind},
                                     references=validation_references, budgets=budgets)
            trials = {r["setting"]: r for r in rows if r["table"] == "index-validation" and r["model"] == name
                      and r["modality"] == modality and r["references"] == kind and r["setting"] in grid}
            chosen = choose(trials)
            earlier = [r for r in rows if r["table"] == "index" and r["model"] == name and r["attack"] == "cmla-target"
                       and r["modality"] == modality and r["references"] == kind and r["steps"] == steps]
            if any(r["setting"] == chosen for r in earlier):
                continue
            for r in earlier:  # chosen before a setting was added to the grid: superseded by the new choice
                rows.remove(r)
            options = dict(grid[chosen])
            intra = options.pop("intra_weight")
            out = attack_queries(model, inputs, labels, query, split.database, modality, "cmla-target", steps, intra,
                                 references=test_references, options=options, budgets=budgets)
            record({"table": "index", "model": name, "attack": "cmla-target", "modality": modality, "references": kind,
                    "setting": chosen, "intra_weight": intra, "n_queries": len(query), **out})


def render_index(rows, meta) -> list[str]:
    """Table 7 and its validation sub-table."""
    from crossmodal import choose
    from crossmodal_target import target_cells, validation_cells

    order = {"hag": 0, "code-space bound (lambda 1)": 1}
    table = sorted((r for r in rows if r["table"] == "index"),
                   key=lambda r: (r["model"], r["modality"] != "image", order.get(r["attack"], 2), r["references"] != "training pairs"))
    trials = [r for r in rows if r["table"] == "index-validation"]
    if not table and not trials:
        return []
    neighbour = meta.get("minilm_neighbour_distance")
    scale = (f" (the median distance from a text's embedding to its nearest other text's is {neighbour:.2f})"
             if neighbour else "")
    steps = " / ".join(str(n) for n in sorted({r["steps"] for r in table + trials if r["steps"]}))
    lines = [f"## 7. The target form when the attacker knows the index (32 bits, {steps} iterations)", "",
             "Tables 5 and 6 plan the target code against the training pairs' clean codes. Here the attacker plans against the "
             "codes actually searched -- the database's codes and labels, as an attacker holding the index would -- next to the "
             "training-pair references on the same models, queries and budgets. `pixels`: the pixel + bag-of-words models of "
             "tables 2-6, retrained with their settings (their clean mAP differs from theirs), image queries L-inf 8/255 and text "
             "queries L2 0.5 in bag-of-words space; `frozen`: table 1's model at 32 bits, seed 0, standardization folded into its "
             f"first layers, text queries attacked in all-MiniLM-L6-v2 space within L2 {MINILM_EPS:g} (unit-norm embeddings: "
             f"cosine >= {1 - MINILM_EPS ** 2 / 2:.3f} to the clean one){scale}; its image queries are not attacked (a pixel attack "
             "through EfficientNet-Lite0 costs hours here). The target form's setting is chosen per model, modality and reference "
             "kind on 100 validation pairs against the database pairs outside the training and validation pairs (their codes the "
             "index-known attacker's references), never on the queries; `hag`: untargeted, same budget. Columns as in table 5. "
             "Target: cross ratio <= 0.50 with same ratio >= 0.90.", ""]
    if table:
        lines += ["| model | query | attack | references | setting | cross | cross clean | cross attacked | ratio | same | same clean | same attacked | ratio | distortion | bits flipped | planned / reached | s/query | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in table:
            lines.append(f"| {r['model']} | {r['modality']} | {r['attack']} | {r['references']} | {r['setting']} | {target_cells(r)} |")
    if trials:
        lines += ["", "### Table 7's target-form settings on the validation pairs", "",
                  "| model | query | references | setting | chosen | cross ratio | same ratio | distortion | bits flipped | planned / reached |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key in sorted({(r["model"], r["modality"], r["references"]) for r in trials},
                          key=lambda k: (k[0], k[1] != "image", k[2] != "training pairs")):
            group = {r["setting"]: r for r in trials if (r["model"], r["modality"], r["references"]) == key}
            chosen = choose(group)
            for setting, r in group.items():
                lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {setting} | {'yes' if setting == chosen else ''} | "
                             f"{validation_cells(r)} |")
    if table:
        lines += ["", "Notes on table 7:", ""] + [f"- {note}" for note in INDEX_NOTES]
    return lines + [""]
