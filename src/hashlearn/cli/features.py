"""``hashlearn features``: encode a data set with a frozen encoder, once, into the feature cache.

The output ``.npz`` (``features``, and ``labels`` when the data set has them)
loads back with ``load_dataset("features", path=...)``.

    hashlearn features fashion-mnist --image-size 96 -o fashion-effnet.npz
"""

from __future__ import annotations

import inspect

from hashlearn.cli.main import add_common_arguments, positive_int, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("features", help="extract cached frozen-encoder features of a data set")
    parser.add_argument("dataset", help="a data set name (see `hashlearn datasets`)")
    parser.add_argument("--encoder", choices=["efficientnet-lite0", "minilm"], help="default: by the data set's modality")
    parser.add_argument("--image-size", type=positive_int, help="efficientnet-lite0 input size in pixels (default 224; 96 needs ~9x less CPU)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="inputs per forward pass")
    parser.add_argument("--limit", type=positive_int, help="encode only the first N items")
    parser.add_argument("--data-dir", help="folder of the data set's files, for loaders that take one")
    parser.add_argument("--cache-dir", help="feature cache root (default $HASHLEARN_CACHE_DIR or ~/.cache/hashlearn)")
    parser.add_argument("-o", "--output", help="write features (and labels) to this .npz")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    import io

    import numpy as np

    from hashlearn._io import atomic_write_bytes
    from hashlearn._progress import set_quiet
    from hashlearn._validation import check_positive_int
    from hashlearn.data import extract_features, get_dataset_info, load_dataset

    if args.quiet:
        set_quiet(True)
    loader_kwargs = {}
    if args.data_dir is not None:
        if "data_dir" not in inspect.signature(get_dataset_info(args.dataset).loader).parameters:
            raise ValueError(f"--data-dir: the {args.dataset!r} loader does not read a folder.")
        loader_kwargs["data_dir"] = args.data_dir
    dataset = load_dataset(args.dataset, **loader_kwargs)
    data, labels = dataset.data, dataset.labels
    if args.limit is not None:
        n = check_positive_int(args.limit, "--limit")
        data, labels = data[:n], (None if labels is None else labels[:n])
    encoder_kwargs = {} if args.image_size is None else {"image_size": args.image_size}
    encoder = args.encoder or {"image": "efficientnet-lite0", "text": "minilm"}.get(dataset.modality)
    if encoder is None:
        raise ValueError(f"{args.dataset!r} holds {dataset.modality} data, which needs no encoder; use it directly.")
    features = extract_features(data, encoder, cache_dir=args.cache_dir, batch_size=args.batch_size, **encoder_kwargs)
    if args.output:
        buffer = io.BytesIO()
        arrays = {"features": features} if labels is None else {"features": features, "labels": labels}
        np.savez(buffer, **arrays)
        atomic_write_bytes(args.output, buffer.getvalue())
    if args.json:
        print_json({"dataset": args.dataset, "encoder": encoder, "n": int(features.shape[0]), "dim": int(features.shape[1]), "output": args.output})
    elif not args.quiet:
        where = f" -> {args.output}" if args.output else " (cached)"
        print(f"{args.dataset}: {features.shape[0]} x {features.shape[1]} {encoder} features{where}")
    return 0
