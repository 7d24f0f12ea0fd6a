"""The pieces of automatic mask generation, each small enough to test alone.

Behaviour follows the official ``segment_anything/utils/amg.py`` where a user would notice a
difference (grid order, crop boxes, inclusive box edges, stability as int counts, OpenCV
8-connectivity), since AMG's output must equal the official generator's on the same weights.
Masks are numpy ``bool`` arrays, boxes ``XYXY`` int pixels with inclusive right/bottom edges,
points ``(x, y)`` pixels.
"""
from __future__ import annotations

import math
from itertools import product
from typing import Any

import cv2
import numpy as np


class MaskData:
    """Parallel per-mask fields (numpy arrays or lists) that every AMG step filters together."""

    def __init__(self, **fields: Any) -> None:
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self[name] = value

    def __setitem__(self, name: str, value: Any) -> None:
        self._fields[name] = value if isinstance(value, list) else np.asarray(value)

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def __len__(self) -> int:
        return len(next(iter(self._fields.values()))) if self._fields else 0

    def keys(self):
        return self._fields.keys()

    def filter(self, keep) -> None:
        """Keep the masks selected by a bool array or an index array (in that order)."""
        keep = np.asarray(keep)
        index = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        for name, value in self._fields.items():
            self._fields[name] = [value[i] for i in index] if isinstance(value, list) else value[index]

    def cat(self, other: "MaskData") -> None:
        """Append another MaskData with the same fields."""
        if not self._fields:
            self._fields = dict(other._fields)
            return
        if set(other.keys()) != set(self.keys()) and len(other):
            raise ValueError(f"cannot concatenate fields {sorted(other.keys())} to {sorted(self.keys())}")
        for name, value in other._fields.items():
            mine = self._fields[name]
            self._fields[name] = mine + value if isinstance(mine, list) else np.concatenate([mine, value])


# -- point grids and crops --------------------------------------------------------------
def build_point_grid(n_per_side: int) -> np.ndarray:
    """``(n², 2)`` points ``(x, y)`` in [0, 1]², at the centres of an n x n grid of cells,
    x varying fastest (row by row), the official order."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has ``int(n_per_side / scale_per_layer**i)`` points a side."""
    return [build_point_grid(int(n_per_side / scale_per_layer ** i)) for i in range(n_layers + 1)]


def generate_crop_boxes(im_size: tuple[int, int], n_layers: int,
                        overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes ``[x0, y0, x1, y1]`` (x1/y1 exclusive) and their layer: the whole image, then
    ``(2**i)²`` overlapping crops for layer i, x-major; the overlap shrinks with the crop count."""
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for layer in range(n_layers):
        n_side = 2 ** (layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_side))
        crop_w, crop_h = crop_len(im_w, n_side, overlap), crop_len(im_h, n_side, overlap)
        x0s = [int((crop_w - overlap) * i) for i in range(n_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(n_side)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(layer + 1)
    return boxes, layers


# -- boxes and points ---------------------------------------------------------------------
def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool → ``(N, 4)`` int64 XYXY with inclusive right/bottom edges; an empty
    mask gives ``[0, 0, 0, 0]``."""
    n, h, w = masks.shape
    boxes = np.zeros((n, 4), np.int64)
    if n == 0:
        return boxes
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    found = rows.any(axis=1)
    boxes[:, 0] = cols.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = w - 1 - cols[:, ::-1].argmax(axis=1)
    boxes[:, 3] = h - 1 - rows[:, ::-1].argmax(axis=1)
    boxes[~found] = 0
    return boxes


def is_box_near_crop_edge(boxes: np.ndarray, crop_box: list[int], orig_box: list[int],
                          atol: float = 20.0) -> np.ndarray:
    """Boxes (crop frame) within ``atol`` px of an edge of the crop that is not an image edge:
    such masks are probably cut by the crop (SAM App. B)."""
    boxes = uncrop_boxes_xyxy(boxes, crop_box).astype(np.float32)
    crop = np.asarray(crop_box, np.float32)[None]
    image = np.asarray(orig_box, np.float32)[None]
    near_crop = np.abs(boxes - crop) <= atol
    near_image = np.abs(boxes - image) <= atol
    return (near_crop & ~near_image).any(axis=1)


def uncrop_boxes_xyxy(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    x0, y0 = crop_box[:2]
    return boxes + np.array([[x0, y0, x0, y0]], dtype=boxes.dtype)


def uncrop_points(points: np.ndarray, crop_box: list[int]) -> np.ndarray:
    return points + np.array([crop_box[:2]], dtype=points.dtype)


def box_xyxy_to_xywh(box) -> list:
    x0, y0, x1, y1 = (v.item() if hasattr(v, "item") else v for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


# -- mask quality and cleanup -------------------------------------------------------------
def stability_score(logits: np.ndarray, threshold: float, offset: float) -> np.ndarray:
    """IoU of ``logits > threshold + offset`` and ``logits > threshold - offset`` per mask (the
    first is inside the second, so it is a ratio of pixel counts); float32, NaN for two empty masks."""
    inner = (logits > threshold + offset).sum(axis=(-1, -2), dtype=np.int64).astype(np.float32)
    outer = (logits > threshold - offset).sum(axis=(-1, -2), dtype=np.int64).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inner / outer


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``area_thresh``
    px, by 8-connected components; returns the mask and whether it changed.

    As in the official code, "holes" are components of the inverted mask, so a small
    background region touching the image border is filled too; "islands" keeps the largest
    island when all are small.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    working = (mask != holes).astype(np.uint8)
    n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < area_thresh) + 1
    if len(small) == 0:
        return mask, False
    keep = np.zeros(n_labels, bool)
    if holes:  # the mask (label 0 of the inverted image) plus its small holes
        keep[0] = True
        keep[small] = True
    else:
        keep[1:] = True
        keep[small] = False
        if not keep.any():
            keep[int(np.argmax(sizes)) + 1] = True
    return keep[regions], True


def uncrop_masks(masks: np.ndarray, crop_box: list[int], orig_h: int, orig_w: int) -> np.ndarray:
    """Place crop-frame masks ``(N, h, w)`` into the full image frame."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    out = np.zeros((len(masks), orig_h, orig_w), bool)
    out[:, y0:y1, x0:x1] = masks
    return out


def chunk_size(pixels: int, max_floats: int = 1 << 25) -> int:
    """Masks per chunk so that float32 full-resolution logits stay within ~128 MB."""
    return max(1, max_floats // max(pixels, 1))


__all__ = ["MaskData", "build_point_grid", "build_all_layer_point_grids", "generate_crop_boxes",
           "masks_to_boxes", "is_box_near_crop_edge", "uncrop_boxes_xyxy", "uncrop_points",
           "box_xyxy_to_xywh", "stability_score", "remove_small_regions", "uncrop_masks",
           "chunk_size"]
