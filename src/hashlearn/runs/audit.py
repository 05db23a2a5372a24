"""The audit workflow: query attacks, a transfer check and the privacy check on one run, in one report.

:func:`audit_run` runs, on a trained run with a deep hash model,

* **attacks** -- every query attack named (default: the registered untargeted
  and targeted single-modality attacks, HAG, PGD, FGSM, DHTA, prototype, and
  ProS-GAN where it is registered) through :func:`~hashlearn.runs.attack.attack_run`,
  on the same queries, database subset and budget (each replaces the run's
  ``attack/<name>.json``, and its ``<name>_adv.npy`` when one was kept);
* **transfer** -- HAG crafted on a *surrogate* (a run you name, or a second
  model trained here with the run's own config and another seed, kept in
  ``audit/surrogate/``) and evaluated on the run's model: the black-box threat,
  next to the white-box attack on the same queries;
* **privacy** -- :func:`~hashlearn.runs.privacy.privacy_run`: reconstruction of
  the queries from the model's float features, float outputs and codes;

and writes ``audit/audit.json`` and ``audit/report.html`` -- one self-contained
page whose first table is the summary a security reviewer reads (attack,
budget, clean mAP, attacked mAP, drop, time; reconstruction PSNR/SSIM from
codes vs floats) -- and refreshes the run's own ``report.html`` / ``report.md``,
which gain the summary too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn._validation import check_positive_int
from hashlearn.runs.run import Run, load_run

CHECKS = ("attacks", "transfer", "privacy")
#: attacks an audit runs when none are named (those present in the registry; cross-modal CMLA and P2P left out)
DEFAULT_ATTACKS = ("hag", "pgd", "fgsm", "dhta", "prototype", "prosgan")


def default_attacks() -> list[str]:
    """:data:`DEFAULT_ATTACKS` that the attack registry holds."""
    from hashlearn.attacks import ATTACKS

    return [name for name in DEFAULT_ATTACKS if name in ATTACKS]


def _budget(eps: float, norm: str) -> str:
    """``"L-inf 8/255 (0.03137)"`` for budgets on the 8-bit grid, ``"L2 0.5"`` otherwise."""
    label = {"linf": "L-inf", "l2": "L2"}[norm]
    levels = eps * 255
    on_grid = abs(levels - round(levels)) < 1e-6 and levels >= 1
    return f"{label} {int(round(levels))}/255 ({eps:.4g})" if on_grid else f"{label} {eps:.4g}"


def attack_rows(reports: dict[str, dict], seconds: dict[str, float], budget: str, steps: int, k: int) -> list[dict]:
    """The summary rows of the query attacks (one per attack)."""
    rows = []
    for name, report in reports.items():
        targeted = "adv_tmap" in report
        row = {"check": f"attack: {name}", "kind": "targeted" if targeted else "untargeted", "budget": budget,
               "steps": 1 if name == "fgsm" else steps, f"clean mAP@{k}": report["clean_map"], f"attacked mAP@{k}": report["adv_map"],
               "drop": report["clean_map"] - report["adv_map"], "attacked / clean": report["adv_map"] / report["clean_map"] if report["clean_map"] else None,
               "t-mAP clean -> attacked": f"{report['clean_tmap']:.3f} -> {report['adv_tmap']:.3f}" if targeted else "",
               "success rate": report.get("success_rate"), "s / query": report.get("seconds_per_query"),
               "attack seconds": report["seconds_per_query"] * report["n_queries"], "workflow seconds": seconds[name]}
        rows.append(row)
    return rows


def _surrogate(run: Run, surrogate, surrogate_epochs: int | None, seed: int, say) -> tuple[Run, str]:
    """The surrogate run: the one given, or a second model trained now with the run's config and another seed."""
    from hashlearn.runs.config import RunConfig
    from hashlearn.runs.train import train_run

    if surrogate is not None:
        other = surrogate if isinstance(surrogate, Run) else load_run(surrogate)
        if other.config.data.dataset != run.config.data.dataset or other.config.data.features != run.config.data.features:
            raise ValueError(f"--surrogate {other.path} was trained on {other.config.data.dataset}/{other.config.data.features}, "
                             f"the audited run on {run.config.data.dataset}/{run.config.data.features}; the inputs must be the same kind.")
        return other, f"given run {other.path}"
    if run.config.method.is_shallow:
        raise ValueError("the transfer check needs a deep surrogate; pass --surrogate RUN_DIR.")
    config = RunConfig.from_dict(run.config.to_dict())
    config.trainer.seed = run.config.trainer.seed + 1 + seed
    if surrogate_epochs is not None:
        config.trainer.epochs = check_positive_int(surrogate_epochs, "surrogate_epochs")
    path = run.audit_dir / "surrogate"
    if Run(path).has_model() and Run(path).config.to_dict() == config.to_dict():
        say(f"audit: reusing the surrogate in {path}")
    else:
        say(f"audit: training a surrogate ({config.method.name}, {config.method.n_bits} bits, trainer seed {config.trainer.seed}) in {path}")
        train_run(config, path, overwrite=Run(path).exists())
    return load_run(path), f"trained here: {config.method.name} {config.method.n_bits} bits, run config with trainer seed {config.trainer.seed}, {config.trainer.epochs} epochs"


def transfer_check(run: Run, surrogate: Run, *, eps: float, norm: str, steps: int, n_queries: int | None, n_database: int | None,
                   k: int, seed: int) -> dict:
    """HAG crafted on ``surrogate`` and on ``run`` itself, both evaluated on ``run``'s model (and the surrogate's)."""
    import torch

    from hashlearn.attacks import ATTACKS
    from hashlearn.attacks.evaluation import model_codes
    from hashlearn.eval.metrics import mean_average_precision
    from hashlearn.models import HashModel
    from hashlearn.models.input_spec import check_inputs
    from hashlearn.runs.data import load_run_dataset, run_inputs

    models = {"surrogate": surrogate.load_model(), "audited": run.load_model()}
    for name, model in models.items():
        if not isinstance(model, HashModel):
            raise ValueError(f"the {name} run holds a {type(model).__name__}; the transfer check needs deep hash models.")
    spec = models["audited"].input_spec
    other_spec = models["surrogate"].input_spec
    if spec is not None and other_spec is not None and tuple(spec.shape) != tuple(other_spec.shape):
        raise ValueError(f"the surrogate takes inputs of shape {other_spec.shape}, the audited model {spec.shape}; they must match.")
    dataset = load_run_dataset(run.config.data)
    split = run.load_split()
    query_index = split.query[:n_queries]
    db_index = split.database
    if n_database is not None and n_database < len(db_index):  # the same subset attack_run draws
        db_index = np.sort(np.random.default_rng(seed).choice(db_index, size=n_database, replace=False))
    queries = torch.from_numpy(check_inputs(run_inputs(dataset, query_index, run.config.data.features), spec, name="the queries"))
    db_inputs = torch.from_numpy(check_inputs(run_inputs(dataset, db_index, run.config.data.features), spec, name="the database"))
    databases = {name: model_codes(model, db_inputs) for name, model in models.items()}
    clip = spec.value_range if spec is not None else None
    labels, db_labels = dataset.labels[query_index], dataset.labels[db_index]
    matrix = {"clean": {name: mean_average_precision(model_codes(model, queries), databases[name], labels, db_labels, k=k)
                        for name, model in models.items()}}
    seconds_per_query = {}
    for source, model in models.items():  # rows: where the perturbation is crafted; columns: who answers
        result = ATTACKS["hag"].from_options(model, eps=eps, norm=norm, steps=steps, seed=seed, clip=clip).attack(queries)
        seconds_per_query[source] = result.seconds_per_query
        matrix[source] = {target: mean_average_precision(model_codes(victim, result.x_adv), databases[target], labels, db_labels, k=k)
                          for target, victim in models.items()}
    return {"attack": "hag", "matrix": matrix, "seconds_per_query": seconds_per_query, "n_queries": int(len(query_index)),
            "n_database": int(len(db_index)), "k": k}


def transfer_rows(transfer: dict, budget: str, steps: int) -> list[dict]:
    matrix, k = transfer["matrix"], transfer["k"]
    clean = matrix["clean"]["audited"]
    rows = []
    for source, label in (("surrogate", "transfer: HAG from the surrogate"), ("audited", "white-box HAG (same queries)")):
        attacked = matrix[source]["audited"]
        rows.append({"check": label, "kind": "black-box" if source == "surrogate" else "white-box", "budget": budget, "steps": steps,
                     f"clean mAP@{k}": clean, f"attacked mAP@{k}": attacked, "drop": clean - attacked,
                     "attacked / clean": attacked / clean if clean else None, "t-mAP clean -> attacked": "", "success rate": None,
                     "s / query": transfer["seconds_per_query"][source], "attack seconds": transfer["seconds_per_query"][source] * transfer["n_queries"],
                     "workflow seconds": None})
    return rows


def audit_run(
    run: Run | str | Path,
    *,
    checks=CHECKS,
    attacks=None,
    eps: float = 8 / 255,
    norm: str = "linf",
    steps: int = 100,
    n_queries: int | None = 100,
    n_database: int | None = 2000,
    k: int = 1000,
    surrogate=None,
    surrogate_epochs: int | None = None,
    n_auxiliary: int | None = 5000,
    decoder: dict | None = None,
    seed: int = 0,
    say=None,
) -> dict:
    """Run the ``checks`` on ``run``; the audit record (also written to ``audit/audit.json`` with ``audit/report.html``).

    ``attacks`` defaults to :func:`default_attacks`; ``eps``/``norm``/``steps`` are the
    budget of every attack (FGSM takes one step); ``n_queries`` and ``n_database`` size
    the attacks and the transfer check (the privacy check attacks the same number of
    queries and ranks against ``n_database * 5`` database items, at least 10,000 where
    there are so many). ``surrogate`` is a run directory for the transfer check (default:
    train one, ``surrogate_epochs`` epochs, default the run's). ``n_auxiliary`` and
    ``decoder`` go to the privacy check. ``say`` gets progress lines (default: none).
    """
    from hashlearn.attacks import ATTACKS
    from hashlearn.models import HashModel
    from hashlearn.runs.attack import attack_run
    from hashlearn.runs.privacy import privacy_run
    from hashlearn.runs.report import write_run_report

    say = say or (lambda line: None)
    run = run if isinstance(run, Run) else load_run(run)
    checks = tuple(dict.fromkeys(checks))
    unknown = [c for c in checks if c not in CHECKS]
    if unknown or not checks:
        raise ValueError(f"checks must be a non-empty subset of {', '.join(CHECKS)}, got {', '.join(checks) or 'none'}.")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}.")
    steps = check_positive_int(steps, "steps")
    k = check_positive_int(k, "k")
    check_positive_int(n_queries, "n_queries", allow_none=True)
    check_positive_int(n_database, "n_database", allow_none=True)
    attacks = list(default_attacks() if attacks is None else attacks)
    if "attacks" in checks:
        bad = [name for name in attacks if name not in ATTACKS or name == "cmla"]
        if bad or not attacks:
            raise ValueError(f"attacks must name single-modality attacks of the registry ({', '.join(n for n in ATTACKS if n != 'cmla')}), got {attacks!r}.")
    model = run.load_model()
    if not isinstance(model, HashModel):
        raise ValueError(f"run {run.path} holds a {type(model).__name__}; `hashlearn audit` needs a deep hash model "
                         "(a run of `hashlearn train` with a deep method, or a backdoor run with --victim hash).")
    budget = _budget(eps, norm)
    record: dict = {"run_dir": str(run.path), "checks": list(checks), "settings": {
        "attacks": attacks if "attacks" in checks else [], "eps": eps, "norm": norm, "budget": budget, "steps": steps,
        "n_queries": n_queries, "n_database": n_database, "k": k, "seed": seed, "n_auxiliary": n_auxiliary}, "rows": []}
    started = time.perf_counter()
    if "attacks" in checks:
        reports, seconds = {}, {}
        for name in attacks:
            say(f"audit: attack {name} ({budget}, {1 if name == 'fgsm' else steps} step(s), {n_queries} queries)")
            t0 = time.perf_counter()
            kept = (run.attack_dir / f"{name}_adv.npy").is_file()  # adversarial inputs kept before stay in step with the new record
            reports[name] = attack_run(run, name, eps=eps, norm=norm, steps=steps, n_queries=n_queries, n_database=n_database, k=k,
                                       seed=seed, save_adv=kept)
            seconds[name] = time.perf_counter() - t0
        record["attacks"] = reports
        record["rows"] += attack_rows(reports, seconds, budget, steps, k)
    if "transfer" in checks:
        other, how = _surrogate(run, surrogate, surrogate_epochs, seed, say)
        say(f"audit: transfer check (HAG from the surrogate, {n_queries} queries)")
        transfer = transfer_check(run, other, eps=eps, norm=norm, steps=steps, n_queries=n_queries, n_database=n_database, k=k, seed=seed)
        transfer["surrogate"] = {"run_dir": str(other.path), "how": how}
        record["transfer"] = transfer
        record["rows"] += transfer_rows(transfer, budget, steps)
    if "privacy" in checks:
        say(f"audit: privacy check (decoders on {n_auxiliary} auxiliary training pairs)")
        t0 = time.perf_counter()
        privacy_database = None if n_database is None else max(10_000, 5 * n_database)
        record["privacy"] = privacy_run(run, n_auxiliary=n_auxiliary, n_queries=n_queries, n_database=privacy_database, k=k,
                                        decoder=decoder, seed=seed)
        record["privacy_seconds"] = time.perf_counter() - t0
    record["seconds"] = time.perf_counter() - started
    atomic_write_json(run.audit_dir / "audit.json", record)
    record["report"] = str(audit_report(run, record).write(run.audit_dir / "report.html"))
    atomic_write_json(run.audit_dir / "audit.json", record)
    write_run_report(run)
    return record


def audit_report(run: Run, record: dict):
    """The audit's :class:`~hashlearn.eval.html.HtmlReport`: summary first, then each check in detail."""
    from hashlearn.eval.html import HtmlReport, add_attack, add_audit_summary, add_privacy
    from hashlearn.runs.report import _privacy, attack_examples_path
    from hashlearn.runs.run import load_npy

    config = run.config
    page = HtmlReport(f"Security audit: {config.method.name} · {config.method.n_bits} bits · {config.data.dataset}",
                      f"hashlearn audit of run {run.path.resolve().name} ({run.path}); checks: {', '.join(record['checks'])}")
    add_audit_summary(page, record)
    if "transfer" in record:
        transfer = record["transfer"]
        page.heading("Transfer check")
        page.paragraph(f"HAG crafted on the surrogate ({transfer['surrogate']['how']}) and on the audited model, each evaluated on both "
                       f"({transfer['n_queries']} queries, {transfer['n_database']} database items, mAP@{transfer['k']}). Rows: where the "
                       "perturbation was crafted; columns: the model that answers.")
        page.table([{"crafted on": source, **values} for source, values in transfer["matrix"].items()], caption="mAP of the answering model")
    if "attacks" in record:
        for name, report in record["attacks"].items():
            path = attack_examples_path(run, name)
            add_attack(page, name, report, tuple(load_npy(path)) if path.is_file() else None)
    if "privacy" in record:
        privacy = _privacy(run)
        add_privacy(page, *(privacy if privacy is not None else (record["privacy"], None)))
    return page


__all__ = ["CHECKS", "DEFAULT_ATTACKS", "attack_rows", "audit_report", "audit_run", "default_attacks", "transfer_check", "transfer_rows"]
