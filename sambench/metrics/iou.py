"""Mask IoU and the aggregates of the point protocol (SAM App. D.1; docs/protocols.md).

Per-dataset mIoU is the mean IoU over masks; a suite's headline is the unweighted mean over
datasets. The 95% CI is a percentile cluster bootstrap over *images* seeded from the run seed:
the masks of one image share its content (and its draw in the subsample), so resampling masks
as if independent understates the spread. The mean of a resample is the ratio of the drawn
images' IoU sums to their mask counts, the same mean-over-masks the metric is.
NoC@t follows RITM's evaluation code: the first click count whose IoU reaches t, else the
number of clicks run.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
CI_METHOD = "percentile cluster bootstrap over images (masks of an image resampled together)"


def ci_protocol(resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """How every ``_ci95`` of a result was computed (recorded in its ``protocol``)."""
    return {"method": CI_METHOD, "resamples": resamples, "level": 0.95, "unit": "image"}


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape. Two empty masks count as IoU 1."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def batch_iou(preds: np.ndarray, gt: np.ndarray, ignore: Optional[np.ndarray] = None) -> np.ndarray:
    """IoU of each of K masks ``(K, H, W)`` against one GT ``(H, W)``. ``ignore`` ``(H, W)``
    marks pixels counted in neither the intersection nor the union (RITM's ``get_iou``)."""
    flat = preds.reshape(len(preds), -1)
    g = gt.reshape(-1)
    if ignore is not None:
        keep = ~ignore.reshape(-1)
        flat, g = flat[:, keep], g[keep]
    inter = np.count_nonzero(flat & g, axis=1)
    union = np.count_nonzero(flat | g, axis=1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def bootstrap_ci(values: Sequence[float], seed: int, clusters: Optional[Sequence] = None,
                 n_resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``.

    ``clusters`` (one label per value, e.g. the image id of each mask) resamples whole clusters
    with replacement, the mean of a resample being Σ values / Σ counts over the drawn clusters;
    without it each value is resampled on its own (independent units). A single cluster gives
    a zero-width interval.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    if clusters is None:
        clusters = np.arange(len(v))
    sums, counts = cluster_sums(v, clusters)
    return percentile_interval(resample_means(sums, counts, seed, n_resamples), level)


def cluster_sums(values: np.ndarray, clusters: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sum of ``values`` and number of values, clusters in order of first appearance."""
    labels = np.asarray([str(c) for c in clusters])
    if len(labels) != len(values):
        raise ValueError(f"{len(values)} values but {len(labels)} cluster labels")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # clusters by first appearance: stable under relabelling
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    index = rank[inverse]
    sums = np.bincount(index, weights=values, minlength=len(order))
    counts = np.bincount(index, minlength=len(order)).astype(np.float64)
    return sums, counts


def resample_means(sums: np.ndarray, counts: np.ndarray, seed: int,
                   n_resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """``n_resamples`` bootstrap means Σ sums / Σ counts over clusters drawn with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)


def percentile_interval(means: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def noc(ious_per_click: Sequence[float], threshold: float) -> int:
    """Clicks needed to reach ``threshold`` IoU; the number of clicks run if never reached."""
    for k, value in enumerate(ious_per_click, start=1):
        if value >= threshold:
            return k
    return len(ious_per_click)
