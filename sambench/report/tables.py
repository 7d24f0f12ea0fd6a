"""Result tables (pandas): per-dataset rows for each task, each metric shown as its runner
declares it (:class:`sambench.tasks.Metric`: ×100 like the paper, or a fraction).

The headline metrics come from the results entries' metric specs, so the report summary, the
terminal summary and the leaderboard agree on what a task's "numbers" are.
"""
from __future__ import annotations

import math

import pandas as pd

from sambench.results import scored
from sambench.tasks import Metric, entry_metrics


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, scale: float = 100, digits: int = 1) -> str:
    """A metric for display: ×100 with one digit by default; blank when missing."""
    return f"{value * scale:.{digits}f}" if is_number(value) else ""


def fmt_metric(metric: Metric, value) -> str:
    return fmt(value, metric.scale, metric.digits)


def fmt_ci(pair, scale: float = 100, signed: bool = False) -> str:
    if not pair or not all(is_number(v) for v in pair):
        return ""
    if signed:
        return f"[{pair[0] * scale:+.1f}, {pair[1] * scale:+.1f}]"
    return f"{pair[0] * scale:.1f}–{pair[1] * scale:.1f}"


def task_metrics(results: dict, task: str, headline: bool = False) -> list[Metric]:
    """The metrics a task's entries declare (optionally only headlines), in declared order."""
    out: dict[str, Metric] = {}
    for entry in (e for e in results["results"] if e["task"] == task):
        for m in entry_metrics(entry):
            if m.headline or not headline:
                out.setdefault(m.name, m)
    return list(out.values())


def headline_values(results: dict) -> list[tuple[str, Metric, float, int]]:
    """(task, metric, unweighted mean over present datasets, n datasets) per headline metric."""
    out = []
    for task in dict.fromkeys(e["task"] for e in results["results"]):
        for metric in task_metrics(results, task, headline=True):
            values = [e["metrics"][metric.name] for e in results["results"]
                      if e["task"] == task and scored(e) and is_number(e.get("metrics", {}).get(metric.name))]
            if values:
                out.append((task, metric, sum(values) / len(values), len(values)))
    return out


def headline_table(results: dict) -> pd.DataFrame:
    rows = [{"task": task, "metric": f"{m.label} ({m.name})", "value": fmt_metric(m, mean), "datasets": n}
            for task, m, mean, n in headline_values(results)]
    return pd.DataFrame(rows)


def results_text(results: dict) -> str:
    """A plain-text summary for the terminal: each task's headline metrics per dataset."""
    lines = [f"model: {results['model']['name']}  suite: {results.get('suite', {}).get('name', '')}  "
             f"duration: {results['run']['duration_s']} s"]
    for task in dict.fromkeys(e["task"] for e in results["results"]):
        metrics = task_metrics(results, task, headline=True)
        if not metrics:
            continue
        rows = []
        for entry in results["results"]:
            if entry["task"] == task:
                row = {"dataset": entry["dataset"], "masks": entry.get("n_masks", "")}
                row.update({m.label: fmt_metric(m, entry["metrics"].get(m.name)) for m in metrics})
                rows.append(row if scored(entry) else {**row, "status": entry["status"]})
        lines.append(f"{task}:")
        lines.append(pd.DataFrame(rows).fillna("").to_string(index=False))
    lines += unsupported_lines(results)
    for entry in results["results"]:
        if entry.get("counts"):
            counts = ", ".join(f"{k}={v}" for k, v in entry["counts"].items())
            lines.append(f"{entry['task']}/{entry['dataset']}: not scored: {counts}")
    return "\n".join(lines)


def unsupported_by_reason(entries: list[dict]) -> dict[str, list[str]]:
    """Reason -> the metrics (results entries' ``unsupported_metrics``) it applies to, each once."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        for name, why in (entry.get("unsupported_metrics") or {}).items():
            if name not in out.setdefault(why, []):
                out[why].append(name)
    return out


def unsupported_lines(results: dict) -> list[str]:
    """One terminal line per task naming the metrics the model cannot be scored on."""
    lines = []
    for task in dict.fromkeys(e["task"] for e in results["results"]):
        reasons = unsupported_by_reason([e for e in results["results"] if e["task"] == task])
        if reasons:
            lines.append(f"{task}: n/a for this model: "
                         + "; ".join(f"{', '.join(names)} ({why})" for why, names in reasons.items()))
    return lines


def task_table(entries: list[dict], metrics: list[Metric], runner: str) -> tuple[pd.DataFrame, list[str]]:
    """Per-dataset rows of ``metrics`` for a task, each followed by the published rows for the
    same runner and dataset (marked ``_kind = "ref"``); returns the table and the sources cited.
    Columns no row fills are dropped (e.g. LVIS-only breakdowns on a COCO-only run)."""
    from sambench.report import reference

    rows, sources = [], []
    for entry in entries:
        m = entry.get("metrics", {})
        row = {"dataset": entry["dataset"], "images": entry.get("n_images", "")}
        for metric in metrics:
            row[metric.label] = fmt_metric(metric, m.get(metric.name))
        if not scored(entry):
            row["images"] = entry["status"]
        rows.append(row)
        for ref, ref_row in reference.rows_for(runner, entry["dataset"], entry.get("protocol")):
            if not any(is_number(ref_row.get(metric.name)) for metric in metrics):
                continue
            if ref["source"] not in sources:
                sources.append(ref["source"])
            rows.append({"dataset": f"published: {ref_row['model']}", "images": "", "_kind": "ref",
                         **{m.label: fmt_metric(m, ref_row.get(m.name)) for m in metrics}})
    frame = pd.DataFrame(rows).fillna("")
    keep = [c for c in frame.columns if c in ("dataset", "images", "_kind")
            or (frame.loc[frame.get("_kind", pd.Series("", index=frame.index)) != "ref", c] != "").any()]
    return frame[keep], sources
