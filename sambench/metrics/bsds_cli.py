"""``sambench edges-eval PRED_DIR GT_DIR``: the BSDS boundary benchmark from the command line.

``add_parser(subparsers)`` registers the subcommand on the main CLI's argparse subparsers; its
handler (``args.func``) prints a table, or one JSON object with ``--json``, and returns 0.
Bad input raises :class:`~sambench.errors.SambenchError` for the main CLI to print as one line.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sambench.errors import SambenchError
from sambench.metrics.bsds import MATCHERS, evaluate_dir


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``edges-eval`` to an ``argparse`` subparsers object; sets ``func=run``."""
    p = subparsers.add_parser(
        "edges-eval", help="BSDS boundary benchmark (ODS, OIS, AP, R50) of edge maps",
        description="Score edge maps <id>.png|.npy in PRED_DIR against BSDS ground truth "
                    "<id>.mat in GT_DIR, as the official BSDS500 benchmark (edgesEvalDir).")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="edge maps <id>.png (8/16-bit) or .npy")
    p.add_argument("gt_dir", metavar="GT_DIR", help="BSDS ground truth <id>.mat (groundTruth cell)")
    p.add_argument("--nthresh", type=int, default=99, help="number of thresholds (default 99)")
    p.add_argument("--max-dist", type=float, default=0.0075,
                   help="match tolerance as a fraction of the image diagonal (default 0.0075)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (0: one per CPU)")
    p.add_argument("--matcher", choices=MATCHERS, default="exact",
                   help="exact: deterministic optimum (default); official: also emulate the "
                        "official code's random outlier graph (seeded, slower)")
    p.add_argument("--no-thin", action="store_true", help="do not thin thresholded maps")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--out", metavar="DIR",
                   help="also write the official text files (eval_bdry*.txt, <id>_ev1.txt) "
                        "and summary.json here")
    p.set_defaults(func=run)
    return p


def _json_ready(summary: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def format_table(summary: dict) -> str:
    """Human-readable summary (fractions, as in results.json)."""
    def f(x) -> str:
        return "   nan" if isinstance(x, float) and math.isnan(x) else f"{x:.4f}"
    s = summary
    return "\n".join([
        f"BSDS boundary benchmark: {s['n_images']} images, {s['nthresh']} thresholds",
        "        F       R       P       T",
        f"ODS  {f(s['ods'])}  {f(s['ods_r'])}  {f(s['ods_p'])}  {f(s['ods_t'])}",
        f"OIS  {f(s['ois'])}  {f(s['ois_r'])}  {f(s['ois_p'])}",
        f"AP   {f(s['ap'])}",
        f"R50  {f(s['r50'])}",
    ])


def run(args: argparse.Namespace) -> int:
    """Handler of ``edges-eval``."""
    if args.nthresh < 1:
        raise SambenchError(f"--nthresh must be at least 1, got {args.nthresh}")
    result = evaluate_dir(args.pred_dir, args.gt_dir, nthresh=args.nthresh,
                          max_dist=args.max_dist, thin=not args.no_thin,
                          workers=args.workers, matcher=args.matcher)
    summary = result.summary()
    summary.update(max_dist=args.max_dist, thin=not args.no_thin, matcher=args.matcher)
    summary = _json_ready(summary)
    if args.out:
        result.write_matlab_files(args.out)
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary) if args.json else format_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m sambench.metrics.bsds_cli edges-eval ...``)."""
    parser = argparse.ArgumentParser(prog="sambench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SambenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
