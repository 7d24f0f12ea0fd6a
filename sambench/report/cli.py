"""The ``report``, ``compare`` and ``leaderboard`` subcommands (registered by sambench.cli)."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write report.html (and report.pdf) for a run directory")
    p.add_argument("run_dir")
    p.add_argument("--pdf", action="store_true", help="also write report.pdf")
    p.add_argument("--compare", nargs="+", default=[], metavar="OTHER_RUN",
                   help="runs on the same masks to compare with (paired Δ per dataset)")
    p.add_argument("--data-root", help="where the run's datasets are now, for the example images "
                                       "(default: the folders the run recorded)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="paired comparison of two runs on identical prompts")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--metric", default="miou@1",
                   help="per-mask point metric: miou@N, random_miou@N, miou@1_oracle... (default miou@1)")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("leaderboard", help="one ranked table across runs (CSV, Markdown, HTML)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="folder for leaderboard.csv / .md / .html")
    p.add_argument("--allow-mixed", action="store_true",
                   help="accept runs whose task versions, protocols or sample lists differ (flagged)")
    p.add_argument("--rank-by", help="column to rank by (default: the first headline column)")
    p.add_argument("--json", action="store_true", help="print the table as one JSON object")
    p.set_defaults(func=cmd_leaderboard)


def cmd_report(args) -> int:
    from sambench.report import write_report

    path = write_report(Path(args.run_dir), pdf=args.pdf, compare=[Path(c) for c in args.compare],
                        data_root=args.data_root)
    print(f"report: {path}")
    if args.pdf:
        print(f"pdf: {path.with_suffix('.pdf')}")
    return 0


def cmd_compare(args) -> int:
    from sambench.report.compare import compare_runs, compare_text

    result = compare_runs(Path(args.run_a), Path(args.run_b), args.metric)
    print(json.dumps(result) if args.json else compare_text(result))
    return 0


def cmd_leaderboard(args) -> int:
    from sambench.report.leaderboard import build_leaderboard, write_leaderboard

    board = build_leaderboard([Path(d) for d in args.run_dirs], allow_mixed=args.allow_mixed,
                              rank_by=args.rank_by)
    paths = write_leaderboard(board, Path(args.out))
    if args.json:
        print(json.dumps(board.to_json()))
    else:
        print(board.markdown())
        print("written: " + ", ".join(str(p) for p in paths))
    return 0
