"""``hashlearn audit``: query attacks, a transfer check and a privacy check on a trained run, in one report.

    hashlearn audit --model runs/csq-32
    hashlearn audit --model runs/csq-32 --privacy
    hashlearn audit --model runs/csq-32 --attacks hag,dhta --surrogate runs/dpsh-32 --steps 50

Writes ``RUN_DIR/audit/audit.json`` and ``RUN_DIR/audit/report.html`` (the
summary table first: attack, budget, clean mAP, attacked mAP, drop, time;
reconstruction PSNR/SSIM from codes vs floats), and adds the summary to the
run's own ``report.html`` / ``report.md``. ``--privacy`` runs the privacy check
only. Without ``--surrogate`` the transfer check trains a second model with the
run's config and another seed (``RUN_DIR/audit/surrogate/``, reused next time).
"""

from __future__ import annotations

import sys

from hashlearn.cli.main import add_common_arguments, add_k_argument, nonnegative_int, positive_int, print_json


def _names(text: str, option: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"{option} must list at least one name separated by commas, got {text!r}.")
    return names


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="security audit of a run: query attacks, transfer, reconstruction privacy; one HTML report")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="run folder holding a deep hash model and its split")
    parser.add_argument("--privacy", action="store_true", help="run only the privacy check (same as --checks privacy)")
    parser.add_argument("--checks", default=None, help="comma-separated subset of attacks,transfer,privacy (default: all three)")
    parser.add_argument("--attacks", default=None, help="comma-separated registered attacks (default: hag,pgd,fgsm,dhta,prototype and prosgan when registered)")
    parser.add_argument("--eps", default="8/255", help="L-inf (or --norm l2) budget of every attack, a number or a fraction (default 8/255)")
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"], help="norm of the budget")
    parser.add_argument("--steps", type=positive_int, default=100, help="gradient steps of every iterative attack")
    parser.add_argument("--n-queries", type=positive_int, default=100, help="attack the first N queries of the split")
    parser.add_argument("--n-database", type=positive_int, default=2000, help="seeded random database subset the attacks are scored on")
    add_k_argument(parser, 1000, "cut-off of mAP@k")
    parser.add_argument("--surrogate", default=None, metavar="RUN_DIR", help="run whose model crafts the transferred attack (default: train one)")
    parser.add_argument("--surrogate-epochs", type=positive_int, default=None, help="epochs of the surrogate trained here (default: the run's)")
    parser.add_argument("--n-auxiliary", type=positive_int, default=5000, help="privacy: training items the attacker knows with their representations")
    parser.add_argument("--decoder-epochs", type=positive_int, default=30, help="privacy: training epochs of each reconstruction decoder")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the attacks, subsets and decoders")
    add_common_arguments(parser, json=True)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn._progress import set_quiet
    from hashlearn.cli.attack import parse_eps
    from hashlearn.runs.audit import CHECKS, audit_run

    set_quiet(args.quiet)
    if args.privacy and args.checks is not None:
        raise ValueError("--privacy and --checks exclude each other; --privacy is --checks privacy.")
    checks = ["privacy"] if args.privacy else (_names(args.checks, "--checks") if args.checks else list(CHECKS))
    attacks = _names(args.attacks, "--attacks") if args.attacks else None
    say = None if args.quiet or args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    record = audit_run(args.model, checks=checks, attacks=attacks, eps=parse_eps(args.eps), norm=args.norm, steps=args.steps,
                       n_queries=args.n_queries, n_database=args.n_database, k=args.k, surrogate=args.surrogate,
                       surrogate_epochs=args.surrogate_epochs, n_auxiliary=args.n_auxiliary,
                       decoder={"epochs": args.decoder_epochs}, seed=args.seed, say=say)
    if args.json:
        print_json(record)
        return 0
    from hashlearn.eval.html import format_value, privacy_rows

    for row in record["rows"]:
        clean, attacked = (v for key, v in row.items() if key.startswith(("clean mAP", "attacked mAP")))
        print(f"{row['check']:<36} {row['budget']:<22} clean {format_value(clean)}  attacked {format_value(attacked)}  "
              f"drop {format_value(row['drop'])}  {row['attack seconds']:.2f} s")
    if "privacy" in record:
        for row in privacy_rows(record["privacy"]):
            print(f"privacy: {row['released']:<36} PSNR {format_value(row['PSNR (dB)'], 2)} dB  SSIM {format_value(row['SSIM'], 3)}")
    print(f"report: {record['report']}")
    return 0
