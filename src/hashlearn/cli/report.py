"""``hashlearn report``: a run's ``report.html`` / ``report.md``, or several runs compared on one page.

    hashlearn report runs/itq-32                       # (re)write runs/itq-32/report.html and report.md
    hashlearn report runs/itq-16 runs/itq-32 runs/csq-32 -o compare.html
"""

from __future__ import annotations

from hashlearn.cli.main import add_common_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a run's self-contained report.html (and report.md), or compare several runs in one page",
        description="One run: (re)write RUN/report.html and RUN/report.md. Several runs (or -o): one self-contained "
        "page with their metrics side by side, mAP vs bits and the PR / P@k curves overlaid. "
        "Example: hashlearn report runs/itq-16 runs/itq-32 -o compare.html",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (evaluated with `hashlearn evaluate` to compare them)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE.html",
                        help="the comparison page to write (default: compare.html when several runs are given)")
    parser.add_argument("--title", default="hashlearn: runs compared", help="title of the comparison page (default: %(default)s)")
    add_common_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from hashlearn.runs.report import compare_runs, write_run_report

    if len(args.runs) == 1 and args.output is None:
        html_path, md_path = write_run_report(args.runs[0])
        print(f"report: {html_path}\nreport: {md_path}")
        return 0
    output = args.output or "compare.html"
    if not str(output).endswith((".html", ".htm")):
        raise ValueError(f"--output must name an .html file, got {output!r}.")
    path = compare_runs(args.runs, output, title=args.title)
    print(f"comparison of {len(args.runs)} runs: {path}")
    return 0
