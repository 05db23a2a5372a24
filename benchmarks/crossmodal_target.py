"""Tables 4-6 of ``benchmarks/crossmodal.py``: CMLA's forms, its target form, and the budget sweep.

On the pixel + bag-of-words models (32 bits), all selection on the validation pairs:

4. ``forms``: CMLA's instance form against the paper's label form, each intra weight chosen on validation, and the
   code-space bound (greedy bit flips of the query code against the database, no input budget);
5. ``target``: the two-stage target form (``hashlearn.attacks.CMLATarget``: plan a code against the training pairs'
   codes, then reach it) against HAG and both forms, at 100 / 200 iterations, with the plans alone as rows;
6. ``budget``: HAG, CMLA and the target form at 1x, 2x and 4x the stated budget, the target form's setting chosen per
   budget.

Run through ``crossmodal.py`` (``--tables forms|target|budget``); this module holds their loops and renderers.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from crossmodal import (IMAGE_EPS, ITERATIONS, LABEL_THETA_SCALE, TEXT_EPS, attack_queries, choose, choose_intra_weight, ratios,
                        target_met)
from hashlearn.codes import sign_to_codes
from hashlearn.eval.crossmodal import crossmodal_map


#: intra-modal weights tried on the validation pairs per form (table 4)
FORM_WEIGHTS = {"cmla": (0.5, 2.0, 4.0, 8.0), "cmla-labels": (0.75, 1.0, 1.25, 1.5)}


def code_space_bound(model, inputs, labels, query, database, modality, lam):
    """What any perturbation could reach: per query, greedy bit flips of its clean code maximising
    ``-AP_cross + lam * AP_same`` against the database (no input budget). Returns a result row's fields: the mAPs
    before and after, mean flips, the query-paired distance, the directions, and no norm / distortion (no input)."""
    from hashlearn.codes import codes_to_pm1

    started = time.perf_counter()

    image, text = inputs
    other = "text" if modality == "image" else "image"
    X = {"image": image, "text": text}
    n_bits = model.n_bits
    db = {m: codes_to_pm1(model.encode(X[m][database], m), n_bits) for m in X}
    Q = codes_to_pm1(model.encode(X[modality][query], modality), n_bits)
    paired = codes_to_pm1(model.encode(X[other][query], other), n_bits)
    relevant = (labels[query].astype(np.int64) @ labels[database].T.astype(np.int64)) > 0
    ids = np.arange(len(database))

    def ap(h, D, r):  # ties by ascending database id, as everywhere
        order = np.lexsort((ids, (n_bits - D @ h) / 2))
        hits = r[order]
        return float((np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)).mean()) if hits.any() else 0.0

    sums = np.zeros(4)
    flips = []
    for i in range(len(query)):
        h, r = Q[i].copy(), relevant[i]
        c0, s0 = ap(h, db[other], r), ap(h, db[modality], r)
        best, count = -c0 + lam * s0, 0
        while True:
            choice = None
            for b in range(n_bits):
                h[b] *= -1
                value = -ap(h, db[other], r) + lam * ap(h, db[modality], r)
                h[b] *= -1
                if value > best + 1e-12:
                    best, choice = value, b
            if choice is None:
                break
            h[choice] *= -1
            count += 1
        sums += (c0, ap(h, db[other], r), s0, ap(h, db[modality], r))
        flips.append(count)
    return {"cross_clean": sums[0] / len(query), "cross_adv": sums[1] / len(query), "same_clean": sums[2] / len(query),
            "same_adv": sums[3] / len(query), "bits_flipped": float(np.mean(flips)),
            "paired_bits": float((Q != paired).sum(axis=1).mean()), "steps": 0,
            "cross": "I->T" if modality == "image" else "T->I", "same": "I->I" if modality == "image" else "T->T",
            "norm": "none", "distortion": float("nan"), "seconds": time.perf_counter() - started}


def run_forms(method, model, inputs, labels, split, query, record, is_done, quick=False):
    """Table 4: CMLA's instance form against its label form (each intra weight chosen on the validation pairs),
    and the code-space bound, on one model, same queries, 100 iterations."""
    steps = 100 if not quick else 5
    clean_db = split.database
    for modality in ("image", "text"):
        for form, weights in FORM_WEIGHTS.items():
            if is_done(table="forms", model=method, attack=form, modality=modality, steps=steps):
                continue
            chosen, trials = choose_intra_weight(model, inputs, labels, split, modality, weights=weights[:2] if quick else weights,
                                                 steps=steps, attack_name=form)
            for weight, trial in trials.items():
                record({"table": "forms-validation", "model": method, "attack": f"{form} w={weight}", "modality": modality,
                        "intra_weight": weight, "chosen": weight == chosen, **trial})
            out = attack_queries(model, inputs, labels, query, clean_db, modality, form, steps, chosen, references=split.train)
            record({"table": "forms", "model": method, "attack": form, "modality": modality, "intra_weight": chosen,
                    "n_queries": len(query), **out})
        for lam in (1.0, 4.0):
            name = f"code-space bound (lambda {lam:g})"
            if is_done(table="forms", model=method, attack=name, modality=modality, steps=0):
                continue
            out = code_space_bound(model, inputs, labels, query, clean_db, modality, lam)
            record({"table": "forms", "model": method, "attack": name, "modality": modality, "intra_weight": "-",
                    "n_queries": len(query), **out})


#: CMLA's target form (table 5): the grid tried on the validation pairs. The first two settings are the tanh-hinge
#: reach the settings of the first table-5 run chose (4 rounds); the others reach with the margin PGD (10 rounds).
TANH = dict(reach="tanh", rounds=4, beta_start=0.05, beta_end=1.0)


MARGIN = dict(reach="margin", rounds=10, z_margin=0.3)


TARGET_GRID = {"tanh reach, lambda 1, cost<=1": dict(TANH, same_weight=1.0, max_cost=1.0, intra_weight=0.5),
               "tanh reach, lambda 1, same capped at clean, cost<=1": dict(TANH, same_weight=1.0, same_cap=1.0, max_cost=1.0, intra_weight=0.5),
               "margin reach, lambda 2, cost<=1": dict(MARGIN, same_weight=2.0, max_cost=1.0, intra_weight=0.5),
               "margin reach, lambda 1, cost<=1": dict(MARGIN, same_weight=1.0, max_cost=1.0, intra_weight=0.5),
               "margin reach, lambda 0.5, cost<=1": dict(MARGIN, same_weight=0.5, max_cost=1.0, intra_weight=0.5)}
#: every named target-form setting: table 5's grid plus lambda 0.75 (tried by table 7 only)
TARGET_SETTINGS = {**TARGET_GRID, "margin reach, lambda 0.75, cost<=1": dict(MARGIN, same_weight=0.75, max_cost=1.0, intra_weight=0.5)}


def reference_plan(model, inputs, labels, query, database, modality, references, same_weight, same_cap=None):
    """Stage 1 of the target form alone, with no input budget: each query's target code planned against the training
    pairs' codes (``references``), then evaluated against ``database`` -- what the target form would reach if every
    planned bit flipped; unlike table 4's code-space bound it never looks at the evaluation database."""
    from hashlearn.attacks import CMLATarget
    from hashlearn.codes import codes_to_pm1

    image, text = inputs
    X = {"image": image, "text": text}
    other = "text" if modality == "image" else "image"
    reference = (model.encode(X[modality][references], modality), model.encode(X[other][references], other), labels[references])
    planner = CMLATarget(model.tower(modality), reference=reference, same_weight=same_weight, same_cap=same_cap, max_cost=None)
    clean_codes, paired = model.encode(X[modality][query], modality), model.encode(X[other][query], other)
    clean = codes_to_pm1(clean_codes, model.n_bits).astype(np.int64)
    relevant = planner.relevance(clean, torch.as_tensor(labels[query].astype(np.float64)))
    planner._caps = planner.same_caps(clean, relevant)
    targets, _ = planner.plan(clean, relevant)
    db = {m: model.encode(X[m][database], m) for m in X}
    cross, same = ("I->T", "I->I") if modality == "image" else ("T->I", "T->T")

    def maps(codes):
        q = {modality: codes, other: paired}
        out = crossmodal_map(q["image"], q["text"], db["image"], db["text"], labels[query], labels[database], k=None, directions=[cross, same])
        return out[cross], out[same]

    (cross_clean, same_clean), (cross_adv, same_adv) = maps(clean_codes), maps(sign_to_codes(targets))
    return {"cross": cross, "same": same, "cross_clean": cross_clean, "cross_adv": cross_adv, "same_clean": same_clean,
            "same_adv": same_adv, "bits_flipped": float((targets != clean).sum(axis=1).mean()), "distortion": float("nan"),
            "norm": "none", "steps": 0, "n_database": len(database)}


def validated_intra_weight(model, inputs, labels, split, method, modality, form, prior_rows, steps):
    """The intra weight table 4 chose on the validation pairs for ``form`` on ``method``'s ``modality`` queries (its
    ``forms-validation`` rows in ``prior_rows``); chosen anew on the validation pairs if those rows are missing."""
    picked = [r["intra_weight"] for r in prior_rows if r["table"] == "forms-validation" and r["model"] == method
              and r["modality"] == modality and r["attack"].startswith(f"{form} w=") and r["chosen"]]
    if picked:
        return picked[0]
    return choose_intra_weight(model, inputs, labels, split, modality, weights=FORM_WEIGHTS[form], steps=steps, attack_name=form)[0]


def run_target_forms(method, model, inputs, labels, split, query, record, is_done, rows, prior_rows, quick=False,
                     iterations=ITERATIONS):
    """Table 5: CMLA's target form against HAG and the instance and label forms, same model and queries, at 100 / 200
    / 500 iterations (all 100-iteration rows first, so a stopped run leaves whole comparisons). The target form's
    setting is chosen on 100 validation pairs evaluated against the database items that are neither training pairs
    (the attacker's references) nor validation pairs; the other forms reuse the intra weights table 4 chose on
    validation for the same model (chosen anew if table 4's rows are missing)."""
    validation = split.validation[:100] if not quick else split.validation[:10]
    unseen = np.setdiff1d(split.database, np.concatenate([split.train, split.validation]))
    iterations = tuple(iterations) if not quick else (5,)
    target_grid = TARGET_GRID if not quick else {name: {**options, "rounds": min(options["rounds"], 5)} for name, options in TARGET_GRID.items()}
    settings, weights = {}, {}
    for modality in ("image", "text"):
        for name, options in target_grid.items():
            if is_done(table="target-validation", model=method, attack=f"cmla-target {name}", modality=modality, steps=iterations[0]):
                continue
            options = dict(options)
            intra = options.pop("intra_weight")
            out = attack_queries(model, inputs, labels, validation, unseen, modality, "cmla-target", iterations[0], intra,
                                 references=split.train, options=options)
            record({"table": "target-validation", "model": method, "attack": f"cmla-target {name}", "modality": modality,
                    "setting": name, "intra_weight": intra, "n_queries": len(validation), **out})
        trials = {r["setting"]: r for r in rows if r["table"] == "target-validation" and r["model"] == method and r["modality"] == modality}
        settings[modality] = choose(trials)
        settings[modality, "tanh"] = choose({k: r for k, r in trials.items() if k.startswith("tanh")})
        for form in FORM_WEIGHTS:
            weights[modality, form] = validated_intra_weight(model, inputs, labels, split, method, modality, form, prior_rows,
                                                             iterations[0])
    for modality in ("image", "text"):  # stage 1 alone, no budget (cheap): is the target there in the attacker's own plans?
        for lam, cap in ((1.0, None), (1.0, 1.0)):
            for where, database in (("database", split.database), ("database minus training pairs", np.setdiff1d(split.database, split.train))):
                name = f"plan on training pairs, no budget (lambda {lam:g}{', same capped' if cap else ''}) vs {where}"
                if is_done(table="target", model=method, attack=name, modality=modality, steps=0):
                    continue
                out = reference_plan(model, inputs, labels, query, database, modality, split.train, lam, cap)
                record({"table": "target", "model": method, "attack": name, "modality": modality, "setting": "-",
                        "intra_weight": "-", "n_queries": len(query), "seconds": float("nan"), **out})
    for steps in iterations:
        for modality in ("image", "text"):
            for attack_name in ("hag", "cmla", "cmla-labels", "cmla-target (tanh reach)", "cmla-target"):
                if is_done(table="target", model=method, attack=attack_name, modality=modality, steps=steps):
                    continue
                if attack_name == "cmla-target (tanh reach)" and settings[modality].startswith("tanh"):
                    continue  # validation chose a tanh-reach setting: the cmla-target row is this row
                options, setting = None, "-"
                intra = weights.get((modality, attack_name))
                if attack_name.startswith("cmla-target"):  # the chosen setting, and the best tanh-reach one (the first run's)
                    setting = settings[modality] if attack_name == "cmla-target" else settings[modality, "tanh"]
                    options = dict(target_grid[setting])
                    intra = options.pop("intra_weight")
                out = attack_queries(model, inputs, labels, query, split.database, modality, attack_name.split()[0], steps, intra,
                                     references=split.train, options=options)
                record({"table": "target", "model": method, "attack": attack_name, "modality": modality, "setting": setting,
                        "intra_weight": "-" if intra is None else intra, "n_queries": len(query), **out})


#: table 6: multiples of the stated budget swept (image L-inf 8/255 -> 8, 16, 32 /255; text L2 0.5 -> 0.5, 1.0, 2.0)
BUDGET_SCALES = (1.0, 2.0, 4.0)


#: table 6's grid for the target form, chosen per budget on the validation pairs (``--budget-settings`` picks a subset)
BUDGET_GRID = {"margin-0.5": "margin reach, lambda 0.5, cost<=1", "margin-1": "margin reach, lambda 1, cost<=1",
               "margin-2": "margin reach, lambda 2, cost<=1", "tanh-1-capped": "tanh reach, lambda 1, same capped at clean, cost<=1"}


def validate_target_settings(model, inputs, labels, validation, unseen, modality, grid, steps, record, is_done, *, table, name,
                             key=None, **attack_kwargs):
    """The target form with each setting of ``grid`` on the ``validation`` pairs against the ``unseen`` database pairs,
    recorded as rows of ``table`` for model ``name`` (``key``: their further key fields, e.g. the budget scale); rows
    already done are skipped; ``attack_kwargs`` go to :func:`attack_queries` (references, budget)."""
    key = key or {}
    for setting, options in grid.items():
        if is_done(table=table, model=name, attack=f"cmla-target {setting}", modality=modality, steps=steps, **key):
            continue
        options = dict(options)
        intra = options.pop("intra_weight")
        out = attack_queries(model, inputs, labels, validation, unseen, modality, "cmla-target", steps, intra, options=options,
                             **attack_kwargs)
        record({"table": table, "model": name, "attack": f"cmla-target {setting}", "modality": modality, "setting": setting,
                "intra_weight": intra, **key, "n_queries": len(validation), **out})


def run_budget(method, model, inputs, labels, split, query, record, is_done, rows, prior_rows, *, settings=tuple(BUDGET_GRID),
               n_validation=100, steps=100, scales=BUDGET_SCALES, quick=False):
    """Table 6: HAG, CMLA and the target form at each multiple ``scales`` of the stated budget, same model and queries
    as table 5. CMLA keeps the intra weight table 4 validated at the stated budget; the target form's setting is chosen
    per budget among ``settings`` on ``n_validation`` validation pairs against the database pairs outside the training
    and validation pairs (table 5's protocol), never on the queries. One budget at a time, so a stopped run leaves whole
    budgets."""
    validation = split.validation[:n_validation] if not quick else split.validation[:10]
    unseen = np.setdiff1d(split.database, np.concatenate([split.train, split.validation]))
    steps = steps if not quick else 5
    grid = {BUDGET_GRID[key]: dict(TARGET_GRID[BUDGET_GRID[key]]) for key in settings}
    if quick:
        grid = {name: {**options, "rounds": min(options["rounds"], 5)} for name, options in list(grid.items())[:2]}
    weights = {modality: validated_intra_weight(model, inputs, labels, split, method, modality, "cmla", prior_rows, steps)
               for modality in ("image", "text")}
    for scale in scales:
        for modality in ("image", "text"):
            validate_target_settings(model, inputs, labels, validation, unseen, modality, grid, steps, record, is_done,
                                     table="budget-validation", name=method, key={"budget_scale": scale}, budget_scale=scale,
                                     references=split.train)
            trials = {r["setting"]: r for r in rows if r["table"] == "budget-validation" and r["model"] == method
                      and r["modality"] == modality and r["budget_scale"] == scale and r["setting"] in grid}
            chosen = choose(trials)
            for attack_name in ("hag", "cmla", "cmla-target"):
                if is_done(table="budget", model=method, attack=attack_name, modality=modality, steps=steps, budget_scale=scale):
                    continue
                options, setting, intra = None, "-", weights[modality] if attack_name == "cmla" else None
                if attack_name == "cmla-target":
                    setting, options = chosen, dict(grid[chosen])
                    intra = options.pop("intra_weight")
                out = attack_queries(model, inputs, labels, query, split.database, modality, attack_name, steps, intra,
                                     budget_scale=scale, references=split.train, options=options)
                record({"table": "budget", "model": method, "attack": attack_name, "modality": modality, "setting": setting,
                        "intra_weight": "-" if intra is None else intra, "budget_scale": scale, "n_queries": len(query), **out})


def target_cells(r) -> str:
    """Tables 5 and 6 from the cross-modal direction on: mAP before / after, ratios, distortion, bits, time, target."""
    cross_ratio, same_ratio = ratios(r)
    plan = f"{r['mean_bits_planned']:.1f} / {r['mean_bits_reached']:.1f}" if "mean_bits_planned" in r else "-"
    return (f"{r['cross']} | {r['cross_clean']:.3f} | {r['cross_adv']:.3f} | {cross_ratio:.2f} | {r['same']} | "
            f"{r['same_clean']:.3f} | {r['same_adv']:.3f} | {same_ratio:.2f} | "
            f"{'-' if r['norm'] == 'none' else format(r['distortion'], '.4f').join([r['norm'] + ' ', ''])} | "
            f"{r['bits_flipped']:.1f} | {plan} | {'-' if r['norm'] == 'none' else format(r['seconds'] / max(r['n_queries'], 1), '.3f')} | "
            f"{'met' if target_met(r) else 'missed'}")


def validation_cells(r) -> str:
    """A validation sub-table's cells from the ratios on: cross and same ratio, distortion, bits flipped, planned / reached."""
    return ("{:.2f} | {:.2f} | ".format(*ratios(r)) + f"{r['norm']} {r['distortion']:.4f} | {r['bits_flipped']:.1f} | "
            f"{r['mean_bits_planned']:.1f} / {r['mean_bits_reached']:.1f}")


def budget_name(row) -> str:
    """A row's budget as the tables state it: L-inf in 1/255 of the pixel range, L2 in bag-of-words units."""
    return f"linf {row['eps'] * 255:.0f}/255" if row["norm"] == "linf" else f"l2 {row['eps']:g}"


def render_budget(rows) -> list[str]:
    """Table 6: the budget sweep, its summary by cell and its per-budget validation."""
    order = {"hag": 0, "cmla": 1, "cmla-target": 2}
    budget = sorted((r for r in rows if r["table"] == "budget"),
                    key=lambda r: (r["model"], r["modality"] != "image", r["budget_scale"], order.get(r["attack"], 3)))
    trials = [r for r in rows if r["table"] == "budget-validation"]
    if not budget and not trials:
        return []
    scales = sorted({r["budget_scale"] for r in budget + trials})
    n_validation = sorted({r["n_queries"] for r in trials})
    n_queries = " / ".join(str(n) for n in sorted({r["n_queries"] for r in budget}))
    steps = " / ".join(str(n) for n in sorted({r["steps"] for r in budget + trials}))
    stated = {"image": f"linf {IMAGE_EPS * 255:.0f}/255", "text": f"l2 {TEXT_EPS:g}"}
    lines = [f"## 6. How the target depends on the budget (pixel + bag-of-words models, 32 bits, {steps} iterations)", "",
             f"Budgets: {', '.join(f'{s:g}x' for s in scales)} the stated one (image queries L-inf "
             f"{', '.join(f'{IMAGE_EPS * 255 * s:.0f}' for s in scales)} /255 in pixel space, text queries L2 "
             f"{', '.join(f'{TEXT_EPS * s:g}' for s in scales)} in binary bag-of-words space); the stated budget stays "
             f"{stated['image']} / {stated['text']} (the `1x` rows, marked `stated`). The first {n_queries} query pairs, as in table 5. "
             f"`hag`: untargeted; `cmla`: the instance form with the intra weight table 4 validated at the stated budget (kept at every "
             "budget); `cmla-target`: the target form with its setting chosen at each budget on "
             f"{' / '.join(str(n) for n in n_validation)} validation pairs against the database pairs outside the training and validation "
             "pairs (table 5's protocol and rule; sub-table below), never on the queries. Columns as in table 5. "
             "Target: cross ratio <= 0.50 with same ratio >= 0.90.", ""]
    if budget:
        lines += ["| model | query | budget | attack | setting | intra | cross | cross clean | cross attacked | ratio | same | same clean | same attacked | ratio | distortion | bits flipped | planned / reached | s/query | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in budget:
            mark = " (stated)" if r["budget_scale"] == 1.0 else ""
            lines.append(f"| {r['model']} | {r['modality']} | {budget_name(r)}{mark} | {r['attack']} | {r['setting']} | "
                         f"{r['intra_weight']} | {target_cells(r)} |")
        lines += ["", "### Table 6 by cell: cross / same ratio at each budget (met: the target is met)", "",
                  "| model | query | attack | " + " | ".join(f"{s:g}x" for s in scales) + " |",
                  "|---|---|---|" + "---|" * len(scales)]
        for key in sorted({(r["model"], r["modality"], r["attack"]) for r in budget},
                          key=lambda k: (k[0], k[1] != "image", order.get(k[2], 3))):
            cells = []
            for scale in scales:
                found = [r for r in budget if (r["model"], r["modality"], r["attack"]) == key and r["budget_scale"] == scale]
                cells.append("not run" if not found else
                             "{:.2f} / {:.2f}{}".format(*ratios(found[0]), " met" if target_met(found[0]) else ""))
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    if trials:
        lines += ["", f"### Table 6's target-form settings on the validation pairs, per budget ({steps} iterations)", "",
                  "| model | query | budget | setting | chosen | cross ratio | same ratio | distortion | bits flipped | planned / reached |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key in sorted({(r["model"], r["modality"], r["budget_scale"]) for r in trials}, key=lambda k: (k[0], k[1] != "image", k[2])):
            group = {r["setting"]: r for r in trials if (r["model"], r["modality"], r["budget_scale"]) == key}
            chosen = choose(group)
            for name, r in group.items():
                lines.append(f"| {key[0]} | {key[1]} | {budget_name(r)} | {name} | {'yes' if name == chosen else ''} | "
                             f"{validation_cells(r)} |")
    return lines + [""]


def render_forms_and_target(rows) -> list[str]:
    """Tables 4 and 5 and their validation sub-tables."""
    lines = []
    forms = [r for r in rows if r["table"] == "forms"]
    if forms:
        lines += ["## 4. CMLA's two forms and what any perturbation could reach (pixel + bag-of-words models, 32 bits)", "",
                  "One model per row group, retrained for this table (its clean mAP differs from table 2's model). "
                  "`cmla`: the instance form (away from the paired code, intra term to the clean code); `cmla-labels`: "
                  "the paper's label form (inverted cross-modal likelihood + intra-modal likelihood over label similarities) "
                  f"with the training pairs' clean codes as references, positives and negatives weighted equally, Theta = <h, b> x {LABEL_THETA_SCALE:g}. "
                  "Intra weight chosen on 100 validation pairs against the training pairs (largest cross-modal drop with same-modality "
                  "mAP within 10%, else the smallest same-modality drop); 100 iterations; budgets as in table 2. "
                  "`code-space bound`: greedy bit flips of each clean query code maximising -AP_cross + lambda AP_same against "
                  "the database, with no input budget -- what an attack that could set any code would reach. "
                  "Target: cross ratio <= 0.50 with same ratio >= 0.90.", "",
                  "`query-paired bits`: mean Hamming distance between a query's clean code and its paired item's code.", "",
                  "| model | attack | query | intra | cross | cross clean | cross attacked | ratio | same | same clean | same attacked | ratio | distortion | bits flipped | query-paired bits | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in forms:
            cross_ratio, same_ratio = ratios(r)
            met = "met" if target_met(r) else "missed"
            distortion = "-" if r["norm"] == "none" else f"{r['norm']} {r['distortion']:.4f}"
            lines.append(f"| {r['model']} | {r['attack']} | {r['modality']} | {r['intra_weight']} | {r['cross']} | {r['cross_clean']:.3f} | "
                         f"{r['cross_adv']:.3f} | {cross_ratio:.2f} | {r['same']} | {r['same_clean']:.3f} | {r['same_adv']:.3f} | "
                         f"{same_ratio:.2f} | {distortion} | {r['bits_flipped']:.1f} | "
                         f"{format(r['paired_bits'], '.1f') if 'paired_bits' in r else '-'} | {met} |")
        lines.append("")
        trials = [r for r in rows if r["table"] == "forms-validation"]
        if trials:
            lines += ["### Table 4's intra weights on the validation pairs", "",
                      "| model | attack | query | chosen | cross ratio | same ratio | bits flipped |", "|---|---|---|---|---|---|---|"]
            for r in trials:
                lines.append(f"| {r['model']} | {r['attack']} | {r['modality']} | {'yes' if r['chosen'] else ''} | "
                             "{:.2f} | {:.2f} | ".format(*ratios(r)) + f"{r['bits_flipped']:.1f} |")
            lines.append("")
    order = {"hag": 0, "cmla": 1, "cmla-labels": 2, "cmla-target (tanh reach)": 3, "cmla-target": 4}
    targets = sorted((r for r in rows if r["table"] == "target"),
                     key=lambda r: (r["model"], r["modality"] != "image", r["steps"], order.get(r["attack"], -1), r["attack"]))
    if targets:
        lines += ["## 5. CMLA's target form: choose the code, then reach it (pixel + bag-of-words models, 32 bits)", "",
                  "`cmla-target` (`--cmla-form target`, `hashlearn.attacks.CMLATarget`): per query, (1) greedy bit flips of the "
                  "clean code maximising -AP_cross + lambda AP_same against the *training pairs'* clean codes (the attacker's "
                  "references; relevance from the query's labels, as the label form uses them), only bits whose first-order "
                  "flip cost is within `cost` (1 = the whole budget for that bit alone), (2) projected descent within the "
                  "budget to reach that code, in rounds that re-plan from the code reached; the attacker keeps, per query, the "
                  "input whose code scores best on its references (the clean input if none improves). Two reaches: `tanh "
                  "reach` (the first form: a hinge on tanh(beta z) over the planned bits, beta 0.05 -> 1 per round, plus the "
                  "intra weight x the hinge on the kept bits; 4 rounds; the end of each round checked) and `margin reach` (PGD "
                  "with sign / normalised steps on sum relu(0.3 - t z) over the planned bits plus the intra weight x the same "
                  "sum over the kept bits, z the pre-activations; step cosine-annealed from eps/2 to 0 per round; 10 rounds; "
                  "every iterate checked). `planned / reached`: bits planned in the round that gave the kept input, and how "
                  "many of them it flipped. Setting chosen on 100 validation pairs against the 300 database pairs that are "
                  "neither training nor validation pairs (table below); `cmla-target (tanh reach)`: the best tanh-reach "
                  "setting on the same validation (the form before the margin reach), where validation chose a margin one. "
                  "`hag`, `cmla`, `cmla-labels`: as in table 4, with table 4's validated intra weights, in the same run. "
                  "Budgets as in table 2. Target: cross ratio <= 0.50 with same ratio >= 0.90.", "",
                  "| model | attack | query | iters | setting | intra | cross | cross clean | cross attacked | ratio | same | same clean | same attacked | ratio | distortion | bits flipped | planned / reached | s/query | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in targets:
            lines.append(f"| {r['model']} | {r['attack']} | {r['modality']} | {r['steps']} | {r['setting']} | {r['intra_weight']} | "
                         f"{target_cells(r)} |")
        lines.append("")
    trials = [r for r in rows if r["table"] == "target-validation"]
    if trials:
        lines += ["### Table 5's target-form settings on the validation pairs (100 iterations; 100 validation pairs against the 300 "
                  "database pairs outside the training and validation pairs)", "",
                  "| model | query | setting | chosen | cross ratio | same ratio | distortion | bits flipped | planned / reached |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for key in sorted({(r["model"], r["modality"]) for r in trials}, key=lambda k: (k[0], k[1] != "image")):
            group = {r["setting"]: r for r in trials if (r["model"], r["modality"]) == key}
            chosen = choose(group)
            for name, r in group.items():
                lines.append(f"| {key[0]} | {key[1]} | {name} | {'yes' if name == chosen else ''} | "
                             f"{validation_cells(r)} |")
        lines.append("")
    return lines
