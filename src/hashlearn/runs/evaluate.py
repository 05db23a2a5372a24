"""The evaluate and encode workflows: a run's model applied to its own split, codes and metrics kept in the run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hashlearn.runs.data import load_run_dataset, run_inputs
from hashlearn.runs.run import CODE_PARTS, Run, load_run


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def encode_parts(run: Run | str | Path, parts=("query", "database"), *, batch_size: int = 1024, dataset=None, keep: bool = True) -> dict:
    """``{part: (codes, ids)}`` of the run's split parts (``"all"``: every row), encoded with the run's model (ids = dataset rows).

    With ``keep`` the codes are written to the run's ``codes/`` folder.
    """
    run = _as_run(run)
    config, model, split = run.config, run.load_model(), run.load_split()
    dataset = dataset if dataset is not None else load_run_dataset(config.data)
    if getattr(dataset, "modality", None) == "paired":
        raise ValueError(f"run {run.path} is cross-modal: its codes are per modality; `hashlearn evaluate` keeps both in codes/ "
                         "and `hashlearn index build --model RUN --modality image|text` indexes one side.")
    out = {}
    for part in parts:
        if part not in CODE_PARTS:
            raise ValueError(f"part must be one of {', '.join(CODE_PARTS)}, got {part!r}.")
        if part == "database" and run.is_lifelong_stage:  # frozen codes of earlier stages + this stage's: never re-encoded
            out[part] = run.load_codes("database")
            continue
        ids = np.arange(len(dataset)) if part == "all" else getattr(split, part)
        codes = encode_array(model, run_inputs(dataset, ids, config.data.features), batch_size=batch_size, name=f"the {part} part")
        if keep:
            run.save_codes(part, codes, ids)
        out[part] = (codes, np.asarray(ids, dtype=np.int64))
    return out


def encode_dataset(run: Run | str | Path, dataset: str, part: str = "database", *, batch_size: int = 1024, say=None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, ids)`` of one part of a dataset under the run's model; ids are the dataset's row indices.

    The run's own dataset is split by the run's split (and the codes are kept in
    the run); another dataset has no split here, so only ``part="all"`` is
    allowed, and its inputs are checked against the model's input spec.
    """
    from hashlearn.data import load_dataset

    run = _as_run(run)
    config = run.config
    if dataset == config.data.dataset:
        return encode_parts(run, (part,), batch_size=batch_size)[part]
    if part != "all":
        raise ValueError(f"--part {part}: the run's split belongs to {config.data.dataset!r}; for dataset {dataset!r} "
                         "only --part all (every row) is defined.")
    other = load_dataset(dataset)
    ids = np.arange(len(other))
    codes = encode_array(run.load_model(), run_inputs(other, ids, config.data.features), batch_size=batch_size,
                         name=f"dataset {dataset!r}", say=say)
    return codes, ids


def encode_array(model, X, *, batch_size: int = 1024, name: str = "inputs", say=None) -> np.ndarray:
    """Packed codes of ``X`` after :func:`~hashlearn.models.input_spec.check_inputs` against the model's input spec.

    Deep models encode in batches of ``batch_size`` under a progress bar; shallow estimators take flattened items.
    """
    import torch

    from hashlearn._progress import progress
    from hashlearn._validation import check_positive_int
    from hashlearn.models.input_spec import check_inputs

    batch_size = check_positive_int(batch_size, "batch_size")
    if not callable(getattr(model, "encode", None)):
        raise ValueError(f"a {type(model).__name__} makes no hash codes (a backdoor run's classifier victim?); "
                         "encode, evaluate and index build need a hash model.")
    X = check_inputs(X, getattr(model, "input_spec", None), name=name, say=say)
    if not isinstance(model, torch.nn.Module):
        return model.encode(X.reshape(len(X), -1))
    chunk = batch_size * 8
    starts = range(0, len(X), chunk)
    bar = progress(starts, desc="encode", unit="chunk", total=len(starts)) if len(X) > chunk else starts
    parts = [model.encode(X[start : start + chunk], batch_size=batch_size) for start in bar]
    return np.concatenate(parts) if parts else np.zeros((0, model.n_bits // 8), np.uint8)


def evaluate_run(run: Run | str | Path, *, k: int = 1000, radius: int = 2, batch_size: int = 1024) -> dict:
    """Encode the run's query and database parts (kept in ``codes/``), search, and write ``metrics.json``."""
    from hashlearn.eval.evaluator import evaluate_codes
    from hashlearn.index import FlatIndex

    from hashlearn._validation import check_positive_int

    run = _as_run(run)
    config = run.config
    k = check_positive_int(k, "k")
    n_bits = config.method.n_bits
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or not 0 <= radius <= n_bits:
        raise ValueError(f"radius must be an integer in [0, {n_bits}] (the run's codes have {n_bits} bits), got {radius!r}.")
    dataset = load_run_dataset(config.data)
    if getattr(dataset, "modality", None) == "paired":  # I->T, T->I, I->I, T->T
        from hashlearn.runs.crossmodal import evaluate_crossmodal_run

        return evaluate_crossmodal_run(run, k=k, dataset=dataset)
    encoded = encode_parts(run, ("query", "database"), batch_size=batch_size, dataset=dataset)
    (query_codes, query_ids), (db_codes, db_ids) = encoded["query"], encoded["database"]
    if dataset.labels is not None:
        results = evaluate_codes(query_codes, db_codes, dataset.labels[query_ids], dataset.labels[db_ids], k=k, radius=radius, with_pr_curve=True)
    else:
        from hashlearn.eval.metrics import float_knn

        query_x = run_inputs(dataset, query_ids, config.data.features).reshape(len(query_ids), -1)
        db_x = run_inputs(dataset, db_ids, config.data.features).reshape(len(db_ids), -1)
        results = evaluate_codes(query_codes, db_codes, k=min(k, len(db_codes)), ground_truth_ids=float_knn(query_x, db_x, 10))
    # the retrieval the metrics describe, served by the exact flat index (same tie rule: ascending id)
    index = FlatIndex(n_bits)
    index.add(db_codes)
    started = time.perf_counter()
    index.search(query_codes, min(k, len(db_codes)))
    search_seconds = time.perf_counter() - started
    results = {"method": config.method.name, "index": "flat", "search_queries_per_s": len(query_codes) / max(search_seconds, 1e-9),
               "n_bits": n_bits, "dataset": config.data.dataset, "features": config.data.features,
               "n_query": len(query_ids), "n_database": len(db_ids), **results}
    from hashlearn.eval.diagnostics import code_diagnostics  # code quality of the database codes (docs/learning.md)

    results["diagnostics"] = code_diagnostics(db_codes, dataset.labels[db_ids] if dataset.labels is not None else None)
    run.save_metrics(results)
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return results


__all__ = ["encode_array", "encode_dataset", "encode_parts", "evaluate_run"]
