"""The report's protocol-sensitivity section, from ``<run>/sensitivity.json`` when
``sambench sensitivity`` has written one: the headline Δ table sorted by |Δ| and a tornado chart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

from sambench.errors import SambenchError
from sambench.report import figures
from sambench.report.sections import ReportContext, Section

SCHEMA = "sambench.sensitivity/1"  # sensitivity.json, written by `sambench sensitivity`


def load_sensitivity(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / "sensitivity.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SambenchError(f"{path}: malformed JSON: {exc}") from None
    if data.get("schema") != SCHEMA:
        raise SambenchError(f"{path}: not a sambench sensitivity file (schema {data.get('schema')!r})")
    return data


def table_rows(summary: dict, headline_only: bool = True) -> list[dict]:
    """One row per (task, option, alternative, metric), sorted by |Δ| of the mean, largest first:
    the run's ``base`` value, the alternative's ``value``, ``delta`` and ``delta_ci95``."""
    rows = []
    for item in summary["variants"]:
        for metric, m in item["metrics"].items():
            if headline_only and not m["headline"]:
                continue
            rows.append({"task": item["task"], "option": item["option"], "setting": item["setting"],
                         "alternative": item["value"], "open": item["open"], "metric": metric, **m["mean"],
                         "datasets": {r["dataset"]: r["delta"] for r in m["datasets"]}})
    return sorted(rows, key=lambda r: -abs(r["delta"]))


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
