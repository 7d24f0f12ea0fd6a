"""Prompt samplers: the first point (center or random) and corrective clicks (RITM rule).

The rules follow RITM's ``Clicker._get_next_click`` (docs/protocols.md), which the SAM paper
cites for its point protocol:

* FN = gt ∧ ¬pred and FP = ¬gt ∧ pred, both outside the ignore region when one is given
  (RITM's ``not_ignore_mask``), so no click lands on an ignore pixel;
* each error map is padded with a 1-px zero border before an exact Euclidean distance
  transform (``cv2.DIST_L2`` with ``DIST_MASK_PRECISE``) and cropped back, so the image border
  counts as a boundary and a mask touching it is not pulled towards it;
* pixels already clicked are zeroed;
* the click is positive if max(DT_FN) > max(DT_FP) (a tie gives a negative click) and lands on
  the first pixel in raster (row-major) order that attains that maximum.

With an empty prediction this is the "center" point: the deepest interior pixel of the mask.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np


@dataclass(frozen=True)
class Click:
    x: int
    y: int
    positive: bool

    @property
    def label(self) -> int:
        return 1 if self.positive else 0


def padded_distance(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each ``True`` pixel to the nearest ``False`` pixel, with
    everything outside the image counted as ``False`` (RITM's 1-px padding)."""
    padded = np.pad(mask.astype(np.uint8), 1, mode="constant")
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def _first_argmax(values: np.ndarray) -> tuple[int, int]:
    """(row, col) of the first maximum in raster order (``np.argmax`` on a C-order array)."""
    flat = int(np.argmax(values))
    return divmod(flat, values.shape[1])


def center_point(gt: np.ndarray) -> Optional[Click]:
    """The point farthest from the mask boundary (SAM's default first point). None if empty."""
    return next_click(gt, np.zeros_like(gt, dtype=bool))


def random_point(gt: np.ndarray, rng: np.random.Generator) -> Optional[Click]:
    """A point drawn uniformly over the mask pixels (the paper's Fig. 9d variant)."""
    ys, xs = np.nonzero(gt)
    if len(ys) == 0:
        return None
    i = int(rng.integers(len(ys)))
    return Click(int(xs[i]), int(ys[i]), True)


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: Optional[np.ndarray] = None,
               ignore: Optional[np.ndarray] = None) -> Optional[Click]:
    """The RITM corrective click for prediction ``pred`` of mask ``gt``.

    ``clicked`` marks pixels clicked before (never clicked twice); ``ignore`` marks pixels that
    are errors of neither kind. Returns None when no unclicked error pixel is left (the
    prediction is perfect): the caller keeps its mask.
    """
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    valid = np.ones_like(gt) if ignore is None else ~ignore.astype(bool)
    fn_dt = padded_distance(gt & ~pred & valid)
    fp_dt = padded_distance(~gt & pred & valid)
    if clicked is not None:
        fn_dt[clicked] = 0
        fp_dt[clicked] = 0
    fn_max, fp_max = float(fn_dt.max()), float(fp_dt.max())
    if fn_max == 0 and fp_max == 0:
        return None
    positive = fn_max > fp_max
    y, x = _first_argmax(fn_dt if positive else fp_dt)
    return Click(int(x), int(y), positive)


def stable_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the run seed and the keys (dataset, sample, mask),
    so random prompts are identical whatever the order, sharding or resume pattern."""
    digest = hashlib.blake2b("\x1f".join(keys).encode(), digest_size=8).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest, "little")])
