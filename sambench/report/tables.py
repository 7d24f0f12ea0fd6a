"""Result tables (pandas): per-dataset rows for each task, values ×100 like the paper.

``HEADLINE`` names each task's headline metrics once, so the report summary, the terminal
summary and the leaderboard agree on what a task's "numbers" are.
"""
from __future__ import annotations

import math

import pandas as pd

from sambench.results import scored

# task -> [(metric, label)]; the first is the primary metric (per-dataset leaderboard columns).
HEADLINE: dict[str, list[tuple[str, str]]] = {
    "point": [("miou@1", "mIoU 1 pt"), ("miou@1_oracle", "oracle 1 pt"), ("miou@5", "mIoU 5 pt"),
              ("random_miou@1", "random 1 pt")],
    "edges": [("ods", "ODS"), ("ois", "OIS"), ("ap", "AP"), ("r50", "R50")],
    "proposals": [("ar@1000", "AR@1000")],
    "instances": [("ap", "AP")],
    "instances-gtbox": [("gtbox_miou", "GT-box mIoU")],
    "text": [("text_miou", "mIoU"), ("text+point_miou", "text + 1 pt mIoU"), ("det_miou", "det. box mIoU"),
             ("chance_miou", "chance mIoU")],
    "concept": [("cgf1", "cgF1"), ("il_mcc", "IL_MCC"), ("pmf1", "pmF1"), ("text_cgf1", "text cgF1"),
                ("det_cgf1", "det. box cgF1")],
}
# Edge metrics are printed as fractions with 3 digits, as in the paper's Table 3.
FRACTION_TASKS = {"edges"}

POINT_COLUMNS = ["miou@1", "miou@2", "miou@3", "miou@5", "miou@9", "miou@1_oracle",
                 "random_miou@1", "random_miou@1_oracle", "random_miou@9", "noc@85", "noc@90"]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value, scale: float = 100, digits: int = 1) -> str:
    """A metric for display: ×100 with one digit by default; blank when missing."""
    return f"{value * scale:.{digits}f}" if is_number(value) else ""


def fmt_task(task: str, value) -> str:
    return fmt(value, 1, 3) if task in FRACTION_TASKS else fmt(value)


def fmt_ci(pair, scale: float = 100, signed: bool = False) -> str:
    if not pair or not all(is_number(v) for v in pair):
        return ""
    if signed:
        return f"[{pair[0] * scale:+.1f}, {pair[1] * scale:+.1f}]"
    return f"{pair[0] * scale:.1f}–{pair[1] * scale:.1f}"


def headline_values(results: dict) -> list[tuple[str, str, str, float, int]]:
    """(task, metric, label, unweighted mean over present datasets, n datasets) per headline."""
    out = []
    tasks = dict.fromkeys(e["task"] for e in results["results"])
    for task in tasks:
        for metric, label in HEADLINE.get(task, []):
            values = [e["metrics"][metric] for e in results["results"]
                      if e["task"] == task and scored(e)
                      and is_number(e.get("metrics", {}).get(metric))]
            if values:
                out.append((task, metric, label, sum(values) / len(values), len(values)))
    return out


def headline_table(results: dict) -> pd.DataFrame:
    rows = [{"task": task, "metric": f"{label} ({metric})", "value": fmt_task(task, mean),
             "datasets": n} for task, metric, label, mean, n in headline_values(results)]
    return pd.DataFrame(rows)


def point_table(results: dict) -> pd.DataFrame:
    """One row per dataset of the point task (plus the unweighted mean over present ones)."""
    rows = []
    for entry in results["results"]:
        if entry["task"] != "point":
            continue
        row = {"dataset": entry["dataset"], "images": entry["n_images"], "masks": entry["n_masks"]}
        if not scored(entry):
            row["status"] = entry["status"]
        for col in POINT_COLUMNS:
            value = entry["metrics"].get(col)
            if value is not None:
                row[col] = value if col.startswith("noc") else 100 * value
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    present = table[table.get("status", pd.Series(index=table.index, dtype=object)).isna()]
    if len(present) > 1:
        mean = {"dataset": f"mean ({len(present)} datasets)", "images": present["images"].sum(),
                "masks": present["masks"].sum()}
        for col in POINT_COLUMNS:
            if col in present:
                mean[col] = present[col].mean()
        table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    return table


def results_text(results: dict) -> str:
    """A plain-text summary for the terminal."""
    lines = [f"model: {results['model']['name']}  suite: {results.get('suite', {}).get('name', '')}  "
             f"duration: {results['run']['duration_s']} s"]
    table = point_table(results)
    if not table.empty:
        cols = [c for c in ["dataset", "masks", "miou@1", "miou@1_oracle", "miou@3", "miou@5", "miou@9",
                            "random_miou@1", "status"] if c in table]
        lines.append("point task (mIoU ×100):")
        lines.append(table[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}", na_rep=""))
    others = [(t, m, label, mean, n) for t, m, label, mean, n in headline_values(results) if t != "point"]
    for task, metric, label, mean, n in others:
        lines.append(f"{task}: {label} = {fmt_task(task, mean)} (mean of {n} datasets)")
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


def task_table(task: str, entries: list[dict], metrics: list[tuple[str, str]]) -> tuple[pd.DataFrame, list[str]]:
    """Per-dataset rows of ``metrics`` for a task, each followed by the published rows for the
    same task and dataset (marked ``_kind = "ref"``); returns the table and the sources cited.
    Columns no row fills are dropped (e.g. LVIS-only breakdowns on a COCO-only run)."""
    from sambench.report import reference

    rows, sources = [], []
    for entry in entries:
        m = entry.get("metrics", {})
        row = {"dataset": entry["dataset"], "images": entry.get("n_images", "")}
        for metric, label in metrics:
            row[label] = fmt_task(task, m.get(metric))
        if not scored(entry):
            row["images"] = entry["status"]
        rows.append(row)
        for ref, ref_row in reference.rows_for(task, entry["dataset"], entry.get("protocol")):
            if not any(is_number(ref_row.get(metric)) for metric, _ in metrics):
                continue
            if ref["source"] not in sources:
                sources.append(ref["source"])
            rows.append({"dataset": f"published: {ref_row['model']}", "images": "", "_kind": "ref",
                         **{label: fmt_task(task, ref_row.get(metric)) for metric, label in metrics}})
    frame = pd.DataFrame(rows).fillna("")
    keep = [c for c in frame.columns if c in ("dataset", "images", "_kind")
            or (frame.loc[frame.get("_kind", pd.Series("", index=frame.index)) != "ref", c] != "").any()]
    return frame[keep], sources
