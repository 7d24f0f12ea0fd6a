"""Mask IoU and the aggregates of the point protocol (SAM App. D.1; docs/protocols.md).

Per-dataset mIoU is the mean IoU over masks; a suite's headline is the unweighted mean over
datasets; the 95% CI is a percentile bootstrap over masks seeded from the run seed.
NoC@t follows RITM's evaluation code: the first click count whose IoU reaches t, else the
number of clicks run.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape. Two empty masks count as IoU 1."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def batch_iou(preds: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of each of K masks ``(K, H, W)`` against one GT ``(H, W)``."""
    flat = preds.reshape(len(preds), -1)
    g = gt.reshape(-1)
    inter = np.count_nonzero(flat & g, axis=1)
    union = np.count_nonzero(flat | g, axis=1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def bootstrap_ci(values: Sequence[float], seed: int, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean. A single value gives a zero-width interval."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_resamples, len(v)))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def noc(ious_per_click: Sequence[float], threshold: float) -> int:
    """Clicks needed to reach ``threshold`` IoU; the number of clicks run if never reached."""
    for k, value in enumerate(ious_per_click, start=1):
        if value >= threshold:
            return k
    return len(ious_per_click)
