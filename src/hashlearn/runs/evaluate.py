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
    out = {}
    for part in parts:
        if part not in CODE_PARTS:
            raise ValueError(f"part must be one of {', '.join(CODE_PARTS)}, got {part!r}.")
        ids = np.arange(len(dataset)) if part == "all" else getattr(split, part)
        codes = encode_inputs(model, run_inputs(dataset, ids, config.data.features), batch_size=batch_size)
        if keep:
            run.save_codes(part, codes, ids)
        out[part] = (codes, np.asarray(ids, dtype=np.int64))
    return out


def encode_inputs(model, X: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Packed codes of ``X`` with a deep model (batched) or a shallow estimator (flattened inputs)."""
    import torch

    if isinstance(model, torch.nn.Module):
        return model.encode(X, batch_size=batch_size)
    return model.encode(np.asarray(X).reshape(len(X), -1))


def evaluate_run(run: Run | str | Path, *, k: int = 1000, radius: int = 2, batch_size: int = 1024) -> dict:
    """Encode the run's query and database parts (kept in ``codes/``), search, and write ``metrics.json``."""
    from hashlearn.eval.evaluator import evaluate_codes
    from hashlearn.index import FlatIndex

    run = _as_run(run)
    config = run.config
    dataset = load_run_dataset(config.data)
    encoded = encode_parts(run, ("query", "database"), batch_size=batch_size, dataset=dataset)
    (query_codes, query_ids), (db_codes, db_ids) = encoded["query"], encoded["database"]
    n_bits = query_codes.shape[1] * 8
    if dataset.labels is not None:
        results = evaluate_codes(query_codes, db_codes, dataset.labels[query_ids], dataset.labels[db_ids], k=k, radius=radius)
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
    run.save_metrics(results)
    return results


__all__ = ["encode_inputs", "encode_parts", "evaluate_run"]
