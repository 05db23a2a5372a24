"""``hashlearn encode``: packed binary codes of an array with a trained model.

    hashlearn encode --model runs/dpsh-32-digits --input X.npy -o codes.npy

The input is what the model was trained on: raw vectors / images for
``features=pixels``, the frozen encoder's features otherwise.
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("encode", help="encode an .npy array into packed codes with a trained model")
    parser.add_argument("--model", required=True, help="a run directory (or its model/ folder)")
    parser.add_argument("--input", required=True, help=".npy array of inputs (n, ...)")
    parser.add_argument("-o", "--output", required=True, help="where to write the uint8 codes (.npy)")
    parser.add_argument("--batch-size", type=int, default=1024)
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from hashlearn._io import atomic_write_bytes
    from hashlearn.runs import Run, load_model

    model_dir = Path(args.model)
    model = Run(model_dir).load_model() if not (model_dir / "model.json").exists() else load_model(model_dir)
    if not Path(args.input).exists():
        raise FileNotFoundError(f"--input {args.input} does not exist.")
    X = np.load(args.input, allow_pickle=False)
    if not np.issubdtype(X.dtype, np.number) or X.ndim < 2:
        raise ValueError(f"--input must hold a numeric array of shape (n, ...), got dtype {X.dtype} shape {X.shape}.")
    expected = model.backbone_kwargs.get("in_features")
    if expected is not None and int(np.prod(X.shape[1:])) != expected:
        raise ValueError(
            f"the model expects {expected} input features per item, --input has shape {X.shape}; "
            "for a model trained on encoder features, pass those features."
        )
    codes = model.encode(X, batch_size=args.batch_size)
    import io

    buffer = io.BytesIO()
    np.save(buffer, codes)
    atomic_write_bytes(args.output, buffer.getvalue())
    print(f"wrote {len(codes)} codes of {model.n_bits} bits to {args.output}")
    return 0
