"""The report's protocol-sensitivity section, from ``<run>/sensitivity.json`` when
``sambench sensitivity`` has written one: the headline Δ table sorted by |Δ| and a tornado chart."""
from __future__ import annotations

import json
from typing import Optional

import pandas as pd

from sambench.report import figures
from sambench.report.sections import ReportContext, Section
from sambench.sensitivity import load_sensitivity, table_rows


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _interval(pair) -> str:
    return f"[{100 * pair[0]:+.2f}, {100 * pair[1]:+.2f}]" if pair else "—"


def sensitivity_section(ctx: ReportContext) -> Optional[Section]:
    summary = load_sensitivity(ctx.run_dir)
    if summary is None or not summary["variants"]:
        return None
    rows = table_rows(summary)
    sec = Section("Protocol sensitivity", "sensitivity")
    sec.note("Each row re-scores this run with one protocol option changed (the paper leaves the open "
             "ones unspecified; docs/sensitivity.md). Δ = alternative − this run, ×100, on the unweighted "
             f"mean over datasets; CI95: {summary['ci_method']} ({summary['resamples']} resamples).")
    frame = pd.DataFrame([{
        "task": r["task"], "option": r["option"] + ("" if r["open"] else " (not open)"),
        "this run → alternative": f"{_show(r['setting'])} → {_show(r['alternative'])}", "metric": r["metric"],
        "this run": f"{100 * r['base']:.2f}", "alternative": f"{100 * r['value']:.2f}",
        "Δ": f"{100 * r['delta']:+.2f}", "Δ CI95": _interval(r["delta_ci95"]),
        "per dataset Δ": ", ".join(f"{k} {100 * v:+.2f}" for k, v in r["datasets"].items())} for r in rows])
    sec.table(frame, "Sorted by |Δ|, largest first; every metric and each dataset's CI are in sensitivity.json.")
    labels = [f"{r['task']}: {r['option']} → {_show(r['alternative'])} ({r['metric']})" for r in rows]
    sec.figure(figures.tornado(labels, [r["delta"] for r in rows], [r["delta_ci95"] for r in rows],
                               "Δ (×100) from this run's protocol, mean over datasets"),
               "Protocol sensitivity: how far each alternative moves the headline numbers; whiskers: "
               "paired 95% CI.")
    return sec
