"""A classical promptable baseline: OpenCV GrabCut seeded from points, boxes and masks.

It needs no weights, so a fresh install has a real leaderboard row to compare against. Clicks
become hard labels (small disks: foreground for positive, background for negative); a box
makes its outside background; a previous mask (``mask_input``) initialises the probable
foreground. GrabCut has no notion of scale, so the three "multimask" outputs come from three
sizes of probable-foreground disk around the positive clicks (small / medium / large, i.e.
sub-part / part / whole scales). GrabCut also has no quality estimate: the scores are a fixed
prior that ranks the medium scale first (so top-1 equals the single-mask output) and let the
oracle pick among scales. The result keeps only the connected regions that contain a positive
click (or, box-only, the largest region), as classical interactive tools do.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import cv2
import numpy as np

from sambench.errors import SambenchError
from sambench.models.base import LOW_RES, ModelInfo, batch_prompts, reject_text, resized_shape, unbatch
from sambench.types import Prediction

SCALES = (0.04, 0.10, 0.20)  # probable-foreground disk radius as a fraction of the long side
SCALE_PRIOR = np.array([0.5, 1.0, 0.75], np.float32)  # medium scale ranked first
SINGLE_SCALE = 1
LOGIT = 10.0  # hard masks expressed as logits for mask_input feedback


@dataclass
class GrabCutEmbedding:
    image: np.ndarray  # working copy, longest side <= max_side
    original_size: tuple[int, int]


class GrabCut:
    """GrabCut behind the PromptableModel protocol (see module docstring)."""

    def __init__(self, max_side: int = 320, iterations: int = 3, click_radius: int = 3):
        self.max_side = max_side
        self.iterations = iterations
        self.click_radius = click_radius

    def info(self) -> ModelInfo:
        return ModelInfo(name="grabcut", family="classical",
                         config={"max_side": self.max_side, "iterations": self.iterations,
                                 "click_radius": self.click_radius, "scales": list(SCALES)})

    def embed(self, image: np.ndarray) -> GrabCutEmbedding:
        h, w = image.shape[:2]
        if max(h, w) > self.max_side:
            nh, nw = resized_shape(h, w, self.max_side)
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        return GrabCutEmbedding(np.ascontiguousarray(image[..., ::-1]), (h, w))  # GrabCut wants BGR

    def predict(self, embedding: GrabCutEmbedding, points=None, labels=None, box=None,
                mask_input=None, multimask: bool = True, text=None) -> Prediction:
        reject_text(text, "grabcut")
        batch = batch_prompts(points, labels, box, mask_input)
        scales = range(len(SCALES)) if multimask else [SINGLE_SCALE]
        h, w = embedding.original_size
        sh, sw = embedding.image.shape[:2]
        fx, fy = sw / w, sh / h
        masks = np.zeros((batch.size, len(scales), h, w), bool)
        for b in range(batch.size):
            pts = None if batch.points is None else batch.points[b] * [fx, fy]
            lbl = None if batch.labels is None else batch.labels[b]
            bx = None if batch.boxes is None else batch.boxes[b] * [fx, fy, fx, fy]
            prior = None if batch.mask_input is None else _from_low_res(batch.mask_input[b, 0], (sh, sw))
            for k, scale in enumerate(scales):
                small = self._segment(embedding.image, pts, lbl, bx, prior, SCALES[scale])
                masks[b, k] = cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        scores = np.tile(SCALE_PRIOR[list(scales)], (batch.size, 1))
        logits = np.stack([[_to_low_res(m) for m in mb] for mb in masks])
        return unbatch(Prediction(masks, scores, logits), batch)

    def _segment(self, image, pts, lbl, box, prior, scale) -> np.ndarray:
        """Seed GrabCut's label map from the prompts, run it on a window around them."""
        h, w = image.shape[:2]
        state = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        radius = max(2, round(scale * max(h, w)))
        if box is not None:
            state[:] = cv2.GC_BGD
            x0, y0, x1, y1 = np.clip(np.round(box), 0, [w - 1, h - 1, w - 1, h - 1]).astype(int)
            state[y0:y1 + 1, x0:x1 + 1] = cv2.GC_PR_FGD if prior is None and pts is None else cv2.GC_PR_BGD
        if prior is not None:
            state[(prior > 0) & (state != cv2.GC_BGD)] = cv2.GC_PR_FGD
        seeds = []
        if pts is not None:
            if prior is None:
                for (x, y), label in zip(pts, lbl):
                    if label == 1:
                        cv2.circle(state, (round(x), round(y)), radius, cv2.GC_PR_FGD, -1)
            elif (lbl == 0).any():
                # A corrective negative click claims the pixels nearer to it than to any
                # positive click (a Voronoi split), the classical way to carve a part out.
                ys, xs = np.mgrid[0:h, 0:w]
                d = np.stack([(xs - x) ** 2 + (ys - y) ** 2 for x, y in pts])
                nearest_negative = lbl[np.argmin(d, axis=0)] == 0
                state[nearest_negative & (state == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
            for (x, y), label in zip(pts, lbl):
                value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
                cv2.circle(state, (round(x), round(y)), self.click_radius, int(value), -1)
                if label == 1:
                    seeds.append((min(h - 1, max(0, round(y))), min(w - 1, max(0, round(x)))))
        fg = np.isin(state, (cv2.GC_FGD, cv2.GC_PR_FGD))
        if fg.all() or not fg.any():
            return fg
        # GrabCut only on a window around the probable foreground (plus a margin of context):
        # the result outside it is background anyway, and the cost is linear in pixels.
        ys, xs = np.nonzero(fg)
        margin = max(8, radius, int(np.ptp(ys) + np.ptp(xs)) // 4)
        y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + margin + 1)
        x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + margin + 1)
        window = np.ascontiguousarray(state[y0:y1, x0:x1])
        if not np.isin(window, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
            window, (y0, y1, x0, x1) = state, (0, h, 0, w)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means init draws from OpenCV's global RNG: pin it per call
        cv2.grabCut(np.ascontiguousarray(image[y0:y1, x0:x1]), window, None, bgd, fgd,
                    self.iterations, cv2.GC_INIT_WITH_MASK)
        out = np.zeros((h, w), bool)
        out[y0:y1, x0:x1] = np.isin(window, (cv2.GC_FGD, cv2.GC_PR_FGD))
        return _keep_seeded(out, seeds)


def _keep_seeded(mask: np.ndarray, seeds: list[tuple[int, int]]) -> np.ndarray:
    """The connected regions that contain a seed pixel; without seeds, the largest region."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    keep = {labels[y, x] for y, x in seeds} - {0}
    if not keep:
        keep = {1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))}
    return np.isin(labels, list(keep))


def _to_low_res(mask: np.ndarray) -> np.ndarray:
    """A full-size mask in SAM's 256×256 low-res frame (longest side 256, zero-padded)."""
    h, w = mask.shape
    nh, nw = resized_shape(h, w, LOW_RES)
    out = np.full((LOW_RES, LOW_RES), -LOGIT, np.float32)
    small = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    out[:nh, :nw] = np.where(small > 0, LOGIT, -LOGIT)
    return out


def _from_low_res(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    nh, nw = resized_shape(h, w, LOW_RES)
    return cv2.resize(logits[:nh, :nw], (w, h), interpolation=cv2.INTER_LINEAR)


def build_grabcut(checkpoint=None, device="cpu", dtype="float32", **options) -> GrabCut:
    known = [name for name in inspect.signature(GrabCut).parameters]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SambenchError(f"unknown option(s) for model grabcut: {', '.join(unknown)} "
                            f"(known: {', '.join(known)})")
    return GrabCut(**options)
