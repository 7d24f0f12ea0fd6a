"""A run's per-sample records as reports need them: per-mask values for paired comparisons,
the examples to draw, and a digest of which samples and masks were scored."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import pandas as pd

from sambench.errors import SambenchError
from sambench.paths import record_dir

def load_records(run_dir: Path, task: str, dataset: str) -> list[dict]:
    folder = record_dir(run_dir, task, dataset)
    if not folder.is_dir():
        raise SambenchError(f"{run_dir}: no records for {task}/{dataset} (expected {folder})")
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise SambenchError(f"{path}: malformed record: {exc}") from None
    return out


def point_frame(run_dir: Path, dataset: str, task: str = "point") -> pd.DataFrame:
    """One row per (sample, mask, mode, step) of a point task, as the records hold them."""
    rows = []
    for rec in load_records(run_dir, task, dataset):
        for row in rec["rows"]:
            rows.append({"sample": rec["sample_id"], "mask": str(row["mask"]), "mode": row["mode"],
                         "step": row["step"], "iou": row["iou"], "oracle_iou": row.get("oracle_iou"),
                         "point": row.get("point"), "pred": row.get("pred")})
    return pd.DataFrame(rows, columns=["sample", "mask", "mode", "step", "iou", "oracle_iou",
                                       "point", "pred"])


def point_values(frame: pd.DataFrame, metric: str, protocol: dict) -> pd.Series:
    """Per-mask values behind a point metric of a run under ``protocol`` (``miou@3``,
    ``random_miou@1_oracle``...), indexed by (sample, mask) in sorted order: the mean of this
    series is the metric."""
    from sambench.tasks.point import per_mask_metrics

    known = per_mask_metrics(protocol)
    if metric not in known:
        raise SambenchError(f"not a per-mask point metric of this run: {metric!r} "
                            f"(known: {', '.join(known)})")
    mode, step, column = known[metric]
    rows = frame[(frame["mode"] == mode) & (frame["step"] == step)]
    return rows.set_index(["sample", "mask"])[column].astype(float).sort_index()


def sample_digest(run_dir: Path, task: str, dataset: str) -> Optional[str]:
    """A short hash of which samples have records (their file names, one per sample id), or
    None when the run has none (a results.json copied on its own). Cheap enough for a
    leaderboard of many large runs; the paired comparison checks masks one by one instead."""
    folder = record_dir(run_dir, task, dataset)
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.glob("*.json"))
    return hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]
