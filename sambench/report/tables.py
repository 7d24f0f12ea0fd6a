"""Result tables (pandas): per-dataset rows for each task, values ×100 like the paper."""
from __future__ import annotations

import pandas as pd

POINT_COLUMNS = ["miou@1", "miou@2", "miou@3", "miou@5", "miou@9", "miou@1_oracle",
                 "random_miou@1", "random_miou@1_oracle", "random_miou@9", "noc@85", "noc@90"]


def point_table(results: dict) -> pd.DataFrame:
    """One row per dataset of the point task (plus the unweighted mean over present ones)."""
    rows = []
    for entry in results["results"]:
        if entry["task"] != "point":
            continue
        row = {"dataset": entry["dataset"], "images": entry["n_images"], "masks": entry["n_masks"]}
        if entry.get("status") == "absent":
            row["status"] = "absent"
        for col in POINT_COLUMNS:
            value = entry["metrics"].get(col)
            if value is not None:
                row[col] = value if col.startswith("noc") else 100 * value
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    present = table[table.get("status", pd.Series(index=table.index, dtype=object)).ne("absent")]
    if len(present) > 1:
        mean = {"dataset": f"mean ({len(present)} datasets)", "images": present["images"].sum(),
                "masks": present["masks"].sum()}
        for col in POINT_COLUMNS:
            if col in present:
                mean[col] = present[col].mean()
        table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    return table


def ci_text(entry: dict, metric: str) -> str:
    lo, hi = entry["metrics"].get(f"{metric}_ci95", (None, None))
    return "" if lo is None else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


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
    for entry in results["results"]:
        if entry.get("counts"):
            counts = ", ".join(f"{k}={v}" for k, v in entry["counts"].items())
            lines.append(f"{entry['task']}/{entry['dataset']}: not scored: {counts}")
    return "\n".join(lines)
