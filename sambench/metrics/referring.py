"""Referring-segmentation metrics: mIoU, cumulative IoU (cIoU) and precision@t.

The conventions of the RefCOCO literature (e.g. LAVT, CRIS evaluation code): one evaluation
unit per (object, expression); mIoU is the mean of the units' IoUs; cIoU is
Σ intersection / Σ union over every unit of the dataset, so large objects weigh more;
precision@t is the fraction of units with IoU ≥ t. A unit without a prediction (a detector
that gave no box) counts with intersection 0 and union = its ground-truth area, i.e. IoU 0.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from sambench.metrics.iou import bootstrap_ci


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """Pixel counts of ``pred ∧ gt`` and ``pred ∨ gt`` (boolean masks of one shape)."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def referring_metrics(inters: Sequence[int], unions: Sequence[int], thresholds: Sequence[float],
                      seed: int, prefix: str = "", images: Optional[Sequence[str]] = None) -> dict:
    """``{prefix}miou`` (+ ``_ci95``, a bootstrap over ``images`` when given, one per unit, else
    over units), ``{prefix}ciou`` and ``{prefix}p@{t}`` for each threshold; empty when there
    are no units."""
    inter = np.asarray(inters, np.float64)
    union = np.asarray(unions, np.float64)
    if len(inter) == 0:
        return {}
    ious = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    out = {f"{prefix}miou": float(ious.mean()),
           f"{prefix}miou_ci95": list(bootstrap_ci(ious, seed, clusters=images)),
           f"{prefix}ciou": float(inter.sum() / union.sum()) if union.sum() > 0 else 1.0}
    for t in thresholds:
        out[f"{prefix}p@{t:g}"] = float((ious >= t).mean())
    return out


__all__ = ["intersection_union", "referring_metrics"]
