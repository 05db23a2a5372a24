"""The index-build workflow: a dataset part encoded with a run's model, indexed, saved with where it came from."""

from __future__ import annotations

from pathlib import Path

from hashlearn.runs.evaluate import encode_dataset
from hashlearn.runs.run import Run, load_run


def build_index(run: Run | str | Path, dataset: str | None = None, part: str = "database", *, factory: str = "Flat",
                output: str | Path, batch_size: int = 1024, say=None, modality: str | None = None) -> dict:
    """Encode ``part`` of ``dataset`` (default: the run's) with the run's model and save a ``factory`` index to ``output``.

    The index ids are the dataset's row indices; the file's header records the
    run, dataset, part and method (``index info`` shows them). Returns that record plus ``path`` and ``n``.
    A cross-modal run indexes one side of its pairs: ``modality`` ``"image"`` or ``"text"`` picks the tower.
    """
    from hashlearn.index.factory import index_factory
    from hashlearn.index.io import save_index

    run = run if isinstance(run, Run) else load_run(run)
    config = run.config
    dataset = dataset or config.data.dataset
    index = index_factory(factory, config.method.n_bits)  # a bad factory string fails before any encoding
    from hashlearn.data import get_dataset_info

    if modality is not None or get_dataset_info(config.data.dataset).modality == "paired":
        from hashlearn.runs.crossmodal import crossmodal_index_codes

        if modality is None:
            raise ValueError(f"run {run.path} is cross-modal: pass --modality image or --modality text (the side of the pairs to index).")
        if dataset != config.data.dataset:
            raise ValueError(f"--dataset {dataset!r} differs from the run's data set {config.data.dataset!r}; "
                             "a cross-modal index holds one side of the run's own pairs.")
        codes, ids = crossmodal_index_codes(run, modality, part=part)
    else:
        codes, ids = encode_dataset(run, dataset, part, batch_size=batch_size, say=say)
    info = {"source": "hashlearn index build", "run": str(run.path.resolve()), "dataset": dataset, "part": part,
            **({"modality": modality} if modality is not None else {}),
            "method": config.method.name, "n_bits": config.method.n_bits, "features": config.data.features, "factory": factory,
            "ids": "dataset row indices"}
    try:
        index.add(codes, ids)
        path = save_index(index, output, info=info)
    finally:
        getattr(index, "close", lambda: None)()
    return {**info, "path": str(path), "n": int(len(codes))}


__all__ = ["build_index"]
