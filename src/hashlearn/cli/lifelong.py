"""``hashlearn lifelong``: train the next stage of an incremental protocol from a trained run; old database codes stay frozen.

    hashlearn lifelong --from runs/stage1 --run-dir runs/stage2 --epochs 3
    hashlearn lifelong --from runs/stage2 --run-dir runs/stage3 --stage 8-9 --index db.hlx

Stage 1 is an ordinary run on an incremental protocol
(``hashlearn train ... --set data.protocol=class-incremental``). Each
``lifelong`` call updates the parent's model on the new stage's data plus an
exemplar memory of earlier training items (``--replay``), with the ``lifelong``
loss toward class centers set by the parent's stored database codes, encodes only
the new database items, and writes a new run (see docs/lifelong.md). With
``--index`` the new codes are appended to that saved index in place (or to
``-o``), without rebuilding it.

A two-tower (cross-modal) parent -- e.g. ``hashlearn train --dataset openmoji
--method dcmh --set data.protocol=groups`` -- trains both towers with the
``lifelong-crossmodal`` loss; both sides of the old pairs keep their stored codes,
and ``--index`` with ``--modality image|text`` grows an index of one side.

    hashlearn lifelong --from runs/om1 --run-dir runs/om2 --index text.hlx --modality text
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments, nonnegative_int, positive_int, print_json
from hashlearn.runs.lifelong import CROSSMODAL_DEFAULT_REPLAY, DEFAULT_REPLAY


def register(subparsers) -> None:
    parser = subparsers.add_parser("lifelong", help="train the next stage of an incremental protocol (old database codes frozen)")
    parser.add_argument("--from", dest="parent", required=True, metavar="RUN_DIR", help="the trained run of the previous stage")
    parser.add_argument("--run-dir", required=True, help="output folder of the new stage's run; must be empty or new")
    parser.add_argument("--stage", help="the stage to train, a number or a name (default: the parent's next one; no other is allowed)")
    parser.add_argument("--epochs", type=positive_int, help="training epochs of the stage (default: the parent's; a two-tower run's: at most 6)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override on the parent's config: method.loss.old_weight=2.0, trainer.lr=0.0003 ... (repeatable)")
    parser.add_argument("--replay", type=nonnegative_int, default=None, metavar="N",
                        help=f"also train on N earlier training items per old class (exemplar memory, default {DEFAULT_REPLAY}, "
                             f"{CROSSMODAL_DEFAULT_REPLAY} pairs for a two-tower run; 0: the new stage's data only)")
    parser.add_argument("--freeze-backbone", action="store_true", help="train the hash head only (the backbone stays the parent's)")
    parser.add_argument("--index", metavar="HLX", help="a saved index of the parent stage's database: append the new codes to it")
    parser.add_argument("-o", "--output", help="with --index: write the grown index here instead of in place")
    parser.add_argument("--modality", choices=("image", "text"), help="with --index on a two-tower stage: the side of the pairs the index holds")
    parser.add_argument("-k", "--k", dest="k", type=positive_int, default=1000, help="mAP@k of the stage's old-class, new-class and all queries")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --run-dir")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted stage in --run-dir from its checkpoint (same --from, --replay and --freeze-backbone)")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.runs.lifelong import append_stage_to_index, lifelong_run

    if args.quiet:
        set_quiet(True)
    if (args.output or args.modality) and not args.index:
        raise ValueError("-o/--output and --modality go with --index (the index to grow).")
    if args.index:  # refused before the stage trains: an index of one side of the pairs needs --modality, and the right one
        from hashlearn.index.io import read_header

        held = (read_header(args.index).get("info") or {}).get("modality")
        if held != args.modality:
            raise ValueError(f"--index {args.index} holds " + (f"the {held} side of a two-tower stage's pairs: pass --modality {held}"
                             if held else "single-modal codes: drop --modality") + f" (got --modality {args.modality}).")
    record = lifelong_run(args.parent, args.run_dir, stage=args.stage, epochs=args.epochs, overrides=args.overrides,
                          overwrite=args.overwrite, k=args.k, replay_per_class=args.replay,
                          freeze_backbone=args.freeze_backbone, resume=args.resume)
    appended = append_stage_to_index(args.run_dir, args.index, args.output, modality=args.modality) if args.index else None
    if args.json:
        print_json({"run_dir": str(args.run_dir), **record, **({"index": appended} if appended else {})})
        return 0
    metrics, k = record["metrics"], record["metrics"]["k"]
    print(f"run directory: {args.run_dir} (stage {record['stage']} {record['stage_name']!r} of {record['protocol']})")
    print(f"database: {record['n_old']} frozen codes + {record['n_new']} new; trained on {record['n_train']} new items"
          + (f" + {record['n_replay']} memory items" if record.get("n_replay") else "") + f" in {record['train_seconds']:.1f} s")
    for direction in ("I->T ", "T->I ", "") if "modalities" in record else ("",):
        name = f"{direction}mAP@{k}"
        label = f"{name} (mean of both directions)" if "modalities" in record and not direction else name
        print(f"{label}: all {metrics[name]:.4f}, old classes {_value(metrics[f'{name}_old'])}, new classes {_value(metrics[f'{name}_new'])}")
    if appended:
        print(f"index {appended['path']}: {appended['n_added']} codes appended, {appended['ntotal']} in all ({len(appended['blocks'])} blocks)")
    return 0


def _value(value) -> str:
    return "-" if value is None else f"{value:.4f}"
