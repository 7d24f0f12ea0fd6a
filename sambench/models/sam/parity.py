"""Helpers to compare two SAM implementations on the same inputs (tests and benchmarks).

The bounds are the project's parity contract (docs/sam.md): fp32 low-res logits within 1e-4,
IoU predictions within 1e-5, and full-resolution masks identical except at pixels whose logit
is within 1e-3 of the 0 threshold (where any rounding may flip them).
"""
from __future__ import annotations

import numpy as np

LOGIT_TOL = 1e-4
SCORE_TOL = 1e-5
MASK_MARGIN = 1e-3


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image with smooth gradients, a few filled ellipses and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    image = np.stack([np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in
                      rng.uniform([-3, -3, 0], [3, 3, 6], size=(3, 3))], axis=-1) * 60 + 128
    for _ in range(4):
        cy, cx = rng.uniform(0, 1, 2) * (y.max(), x.max())
        ry, rx = rng.uniform(0.05, 0.3, 2)
        inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        image[inside] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def prediction_diffs(ours, reference, reference_logits: np.ndarray) -> dict:
    """Max differences of two Predictions; ``reference_logits`` are the reference's full-res logits.

    ``mask_flips`` counts differing mask pixels, ``mask_flips_outside_margin`` those whose
    reference logit is not within :data:`MASK_MARGIN` of 0 (must be 0 for parity).
    """
    flips = ours.masks != reference.masks
    return {
        "low_res_max_abs": float(np.abs(ours.low_res_logits - reference.low_res_logits).max()),
        "scores_max_abs": float(np.abs(ours.scores - reference.scores).max()),
        "mask_flips": int(flips.sum()),
        "mask_flips_outside_margin": int((flips & (np.abs(reference_logits) >= MASK_MARGIN)).sum()),
        "logit_scale": float(np.abs(reference.low_res_logits).mean()),
    }


def ellipse_mask_input(cx: float, cy: float, rx: float, ry: float, side: int = 256) -> np.ndarray:
    """A ``(1, side, side)`` mask prompt: logits +10 at the centre of an ellipse (low-res frame
    pixels), 0 on its boundary, clipped to ±10 outside. Plain arithmetic, so any NumPy gives
    the same array from the same numbers (golden files store only the four numbers)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    logits = 10.0 * (1.0 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2)
    return np.clip(logits, -10.0, 10.0).astype(np.float32)[None]
