"""The privacy workflow: how much of an input can be rebuilt from what a run's model releases.

:func:`privacy_run` trains one :class:`~hashlearn.attacks.reconstruction.ReconstructionAttack`
decoder per released representation of a run's hash model -- backbone
``features`` (floats), continuous ``outputs`` (floats) and ``codes`` (bits) --
on auxiliary pairs from the run's *training* split (the attacker knows some
inputs and their representations), and reconstructs the run's *queries*, which
no decoder saw. Next to each representation's reconstruction quality (MSE,
PSNR, SSIM) stands its task metric (mAP@k of the queries against the database:
L2 ranking for floats, Hamming ranking for codes), and two baselines: the mean
auxiliary input (no representation at all) and the class mean (the true label
alone). Writes ``privacy/privacy.json`` and ``privacy/examples.npy``.

:func:`vertical_split_experiment` is the two-party setting of HashVFL: a
:class:`~hashlearn.models.vertical.VerticalSplitModel` trained with float or
hashed embeddings, its test accuracy, and the reconstruction of one party's
half images from what that party sends.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hashlearn._io import atomic_write_json
from hashlearn._validation import check_positive_int
from hashlearn.runs.data import load_run_dataset, run_inputs
from hashlearn.runs.run import Run, load_run, save_npy

#: originals and reconstructions kept for the report
N_EXAMPLES = 6
#: decoder settings used when the caller gives none
DECODER_DEFAULTS = {"hidden": (512, 512), "epochs": 30, "batch_size": 128, "lr": 1e-3}


def _decoder(settings: dict | None, output_range, seed: int):
    from hashlearn.attacks.reconstruction import ReconstructionAttack

    settings = {**DECODER_DEFAULTS, **(settings or {})}
    unknown = sorted(set(settings) - {"hidden", "epochs", "batch_size", "lr", "weight_decay", "val_fraction"})
    if unknown:
        raise ValueError(f"unknown decoder setting(s) {unknown}; valid: hidden, epochs, batch_size, lr, weight_decay, val_fraction.")
    return ReconstructionAttack(**settings, output_range=output_range, seed=seed)


def _baselines(aux_inputs, aux_labels, inputs, labels, data_range) -> dict[str, dict]:
    from hashlearn.attacks.reconstruction import class_mean_reconstruction, mean_reconstruction, reconstruction_quality

    out = {"mean input": reconstruction_quality(inputs, mean_reconstruction(aux_inputs, len(inputs)), data_range)}
    if aux_labels is not None and np.asarray(aux_labels).ndim == 1:
        out["class mean (label known)"] = reconstruction_quality(inputs, class_mean_reconstruction(aux_inputs, aux_labels, labels), data_range)
    return out


def privacy_run(
    run: Run | str | Path,
    *,
    n_auxiliary: int | None = 5000,
    n_queries: int | None = None,
    n_database: int | None = 10000,
    k: int = 1000,
    decoder: dict | None = None,
    seed: int = 0,
) -> dict:
    """Reconstruct the run's queries from features, outputs and codes; the report (also written to the run).

    ``n_auxiliary`` training items (a seeded subset) are the attacker's known pairs;
    ``n_queries`` the first queries of the split are attacked; ``n_database`` a seeded
    subset of the database ranks the task metric (``None``: all). ``decoder``
    overrides :data:`DECODER_DEFAULTS`.
    """
    import torch

    from hashlearn.attacks.reconstruction import REPRESENTATIONS, reconstruction_quality, released_representations
    from hashlearn.codes import sign_to_codes
    from hashlearn.eval.metrics import float_mean_average_precision, mean_average_precision
    from hashlearn.models import HashModel
    from hashlearn.models.input_spec import check_inputs

    run = run if isinstance(run, Run) else load_run(run)
    check_positive_int(n_auxiliary, "n_auxiliary", allow_none=True, minimum=10)
    check_positive_int(n_queries, "n_queries", allow_none=True)
    check_positive_int(n_database, "n_database", allow_none=True)
    k = check_positive_int(k, "k")
    config = run.config
    model = run.load_model()
    if not isinstance(model, HashModel):
        raise ValueError(f"run {run.path} holds a {type(model).__name__}; the privacy check needs a deep hash model "
                         "(a run of `hashlearn train` with a deep method, or a backdoor run with --victim hash).")
    dataset = load_run_dataset(config.data)
    if getattr(dataset, "modality", None) == "paired":
        raise ValueError("the privacy check covers single-modality runs; cross-modal (paired) runs are not supported yet.")
    if dataset.labels is None:
        raise ValueError(f"dataset {dataset.name!r} is unlabelled; the privacy check's task metric (mAP) needs labels.")
    split = run.load_split()
    rng = np.random.default_rng(seed)
    pick = lambda index, n: index if n is None or n >= len(index) else np.sort(rng.choice(index, n, replace=False))  # noqa: E731
    aux_index, db_index, query_index = pick(split.train, n_auxiliary), pick(split.database, n_database), split.query[:n_queries]
    spec = model.input_spec
    inputs = {name: check_inputs(run_inputs(dataset, index, config.data.features), spec, name=f"the {name} items")
              for name, index in (("auxiliary", aux_index), ("query", query_index), ("database", db_index))}
    labels = {"auxiliary": dataset.labels[aux_index], "query": dataset.labels[query_index], "database": dataset.labels[db_index]}
    value_range = spec.value_range if spec is not None else None
    # PSNR's peak: the input range (images: 1), or for unbounded features the range training saw
    data_range = (spec.range_width if spec is not None else None) or 1.0
    released = {name: released_representations(model, torch.from_numpy(x)) for name, x in inputs.items()}

    representations, examples = {}, [inputs["query"][:N_EXAMPLES]]
    for kind in REPRESENTATIONS:
        started = time.perf_counter()
        attack = _decoder(decoder, value_range, seed).fit(released["auxiliary"][kind], inputs["auxiliary"])
        reconstructed = attack.reconstruct(released["query"][kind])
        quality = reconstruction_quality(inputs["query"], reconstructed, data_range)
        if kind == "codes":
            task = mean_average_precision(sign_to_codes(released["query"][kind]), sign_to_codes(released["database"][kind]),
                                          labels["query"], labels["database"], k=k)
        else:
            task = float_mean_average_precision(released["query"][kind], released["database"][kind], labels["query"], labels["database"], k=k)
        representations[kind] = {
            "dim": int(released["query"][kind].shape[1]), "dtype": "bits" if kind == "codes" else "float32",
            **quality, f"mAP@{k}": task, "decoder_best_epoch": attack.train_result_.best_epoch,
            "seconds": time.perf_counter() - started,
        }
        examples.append(reconstructed[:N_EXAMPLES])
    report = {
        "run_dir": str(run.path), "dataset": dataset.name, "features": config.data.features,
        "n_auxiliary": int(len(aux_index)), "n_queries": int(len(query_index)), "n_database": int(len(db_index)), "k": k,
        "data_range": data_range, "decoder": repr(_decoder(decoder, value_range, seed)),
        "threat": "the attacker holds auxiliary (input, representation) pairs from the training split and decodes the queries' representations",
        "representations": representations, "example_rows": ["original", *REPRESENTATIONS],
        "baselines": _baselines(inputs["auxiliary"], labels["auxiliary"], inputs["query"], labels["query"], data_range),
    }
    atomic_write_json(run.privacy_dir / "privacy.json", report)
    save_npy(run.privacy_dir / "examples.npy", np.stack(examples).astype(np.float32))
    from hashlearn.runs.report import write_run_report

    write_run_report(run)
    return report


def vertical_split_experiment(
    train: tuple,
    val: tuple,
    test: tuple,
    *,
    hash_embeddings: bool,
    embedding_dim: int = 64,
    n_parties: int = 2,
    attacked_party: int = 1,
    n_auxiliary: int = 5000,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    decoder: dict | None = None,
    seed: int = 0,
) -> dict:
    """Train a two-party (or n-party) split on grey images and attack one party's embeddings.

    ``train``, ``val`` and ``test`` are ``(images (n, H, W) in [0, 1], labels (n,))``.
    The top model's owner is the attacker: it holds ``n_auxiliary`` training images
    of party ``attacked_party`` with what that party sent for them, trains a decoder
    from the sent representation to the party's slice, and reconstructs the slices of
    the test images. Returns test accuracy (model selected on ``val``), reconstruction
    quality of the attacked slices, and the mean/class-mean baselines.
    """
    import torch

    from hashlearn.attacks.reconstruction import reconstruction_quality
    from hashlearn.models.vertical import VerticalSplitModel
    from hashlearn.train import TrainConfig, Trainer

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = ((np.asarray(x, dtype=np.float32), np.asarray(y)) for x, y in (train, val, test))
    if X_train.ndim != 3:
        raise ValueError(f"train images must have shape (n, H, W), got {X_train.shape}.")
    n_classes = int(max(y_train.max(), y_val.max(), y_test.max())) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VerticalSplitModel(X_train.shape[1:], n_classes, n_parties=n_parties, embedding_dim=embedding_dim, hash_embeddings=hash_embeddings)
    if not (isinstance(attacked_party, int) and 0 <= attacked_party < model.n_parties):
        raise ValueError(f"attacked_party must be a party index in 0..{model.n_parties - 1}, got {attacked_party!r}.")

    def accuracy(m, X, y) -> float:
        with torch.no_grad():
            return float((m(X).argmax(1) == y).float().mean())

    started = time.perf_counter()
    result = Trainer(TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)).fit(
        model, torch.nn.CrossEntropyLoss(), train=(X_train, y_train), val=(X_val, y_val), val_metric=accuracy)
    train_seconds = time.perf_counter() - started
    model.eval()

    def sent(X) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(X)
            return torch.cat([model.embeddings(x[i : i + 1024])[attacked_party] for i in range(0, len(x), 1024)]).numpy()

    start, stop = model.party_columns[attacked_party]
    n_auxiliary = min(check_positive_int(n_auxiliary, "n_auxiliary", minimum=10), len(X_train))
    aux_slices, test_slices = X_train[:n_auxiliary, :, start:stop], X_test[:, :, start:stop]
    attack = _decoder(decoder, (0.0, 1.0), seed).fit(sent(X_train[:n_auxiliary]), aux_slices)
    reconstructed = attack.reconstruct(sent(X_test))
    with torch.no_grad():
        test_accuracy = accuracy(model, torch.from_numpy(X_test), torch.from_numpy(y_test))
    return {
        "hash_embeddings": hash_embeddings, "embedding_dim": embedding_dim, "n_parties": model.n_parties,
        "attacked_party": attacked_party, "party_columns": [start, stop],
        "test_accuracy": test_accuracy, "best_epoch": result.best_epoch, "train_seconds": train_seconds,
        "reconstruction": reconstruction_quality(test_slices, reconstructed), "decoder_best_epoch": attack.train_result_.best_epoch,
        "baselines": _baselines(aux_slices, y_train[:n_auxiliary], test_slices, y_test, 1.0),
        "examples": np.stack([test_slices[:N_EXAMPLES], reconstructed[:N_EXAMPLES]]),
    }


__all__ = ["DECODER_DEFAULTS", "privacy_run", "vertical_split_experiment"]
