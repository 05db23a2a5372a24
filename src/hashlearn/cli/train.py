"""``hashlearn train``: train a hashing method on a dataset; everything lands in a run directory.

    hashlearn train --method dsdh+hswd --bits 32 --dataset fashion-mnist --set trainer.epochs=5 --run-dir runs/dsdh
    hashlearn train --run-dir runs/dsdh --resume            # continue from its checkpoint, with its own config
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, positive_int, print_json


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a hashing method (writes a run directory)")
    parser.add_argument("--method", help="deep loss[+quantizer] (csq, dsdh+hswd ...) or shallow itq, lsh, sign, pcah, sh, nac (default: csq)")
    parser.add_argument("--bits", type=positive_int, help="code length, a multiple of 8 (method.n_bits)")
    parser.add_argument("--dataset", help="registered dataset name (data.dataset); `hashlearn datasets` lists them")
    parser.add_argument("--features", choices=["pixels", "efficientnet", "minilm", "efficientnet+minilm"],
                        help="model input: raw data or cached frozen-encoder features (paired data sets: see docs/crossmodal.md)")
    parser.add_argument("--epochs", type=positive_int, help="shortcut for --set trainer.epochs=N (with --resume: train up to N epochs)")
    parser.add_argument("--config", help="a .json or .toml config file")
    parser.add_argument("--preset", choices=["hashlearn", "paper"],
                        help="training preset: hashlearn (the validation-chosen defaults) or paper (the official one-loss code's settings)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. trainer.lr=0.001 or model.hidden=[512,256] (repeatable)")
    parser.add_argument("--run-dir", help="output folder (default: runs/<method>-<bits>-<dataset>-<time>); must be empty or new")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint, with its saved config")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in --run-dir")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.eval.report import new_run_dir
    from hashlearn.runs import resolve_config, train_run

    if args.quiet:
        set_quiet(True)
    flags = {"method.name": args.method, "method.n_bits": args.bits, "data.dataset": args.dataset, "data.features": args.features}
    if args.resume:
        if not args.run_dir:
            raise ValueError("--resume needs --run-dir, the run to continue.")
        given = [name for name, value in (("--method", args.method), ("--bits", args.bits), ("--dataset", args.dataset),
                                          ("--features", args.features), ("--config", args.config), ("--preset", args.preset)) if value is not None]
        if given or args.overrides:
            raise ValueError(f"--resume continues the run's own config; drop {', '.join(given + ['--set'] * bool(args.overrides))} "
                             "(only --epochs may raise the number of epochs).")
        _, result = train_run(None, args.run_dir, resume=True, epochs=args.epochs)
        run_dir = args.run_dir
    else:
        flags["trainer.epochs"] = args.epochs
        overrides = [f"{key}={_json(value)}" for key, value in flags.items() if value is not None] + list(args.overrides)
        config = resolve_config(args.config, overrides, preset=args.preset)
        if args.run_dir:
            run_dir = args.run_dir
        else:
            import time

            name = f"{config.method.name}-{config.method.n_bits}-{config.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = new_run_dir("runs", name)
        _, result = train_run(config, run_dir, overwrite=args.overwrite)
    if args.json:
        print_json({"run_dir": str(run_dir), **({} if result is None else result.to_dict())})
        return 0
    print(f"run directory: {run_dir}")
    if result is not None:
        print(f"best epoch {result.best_epoch}: validation metric {result.best_metric:.4f}; "
              f"{result.seconds_per_epoch:.2f} s/epoch, {result.seconds_to_best:.1f} s to best")
    return 0


def _json(value) -> str:
    import json

    return json.dumps(value)
