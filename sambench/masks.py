"""Mask encodings: COCO RLE in and out, via pycocotools.

Masks travel through sambench as compressed COCO RLE dicts (``{"size": [h, w], "counts":
str}``) so a 10k-mask dataset stays small in memory; they are decoded to ``bool`` arrays only
where a metric or a prompt needs pixels.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from sambench import validate
from sambench.errors import SambenchError


def encode(masks: np.ndarray):
    """Bool/uint8 ``(H, W)`` array → compressed RLE with JSON-ready ``str`` counts; ``(N, H, W)``
    → a list of N of them (one C call for all)."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        return encode(masks[None])[0]
    if len(masks) == 0:
        return []
    return [_jsonable(rle) for rle in mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))]


def uncompressed(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths in column-major order, starting with background."""
    flat = np.asfortranarray(mask).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def decode(rle: dict) -> np.ndarray:
    """Compressed or uncompressed RLE → ``(H, W)`` bool array."""
    return mask_utils.decode(_compressed(rle)).astype(bool)


def area(rle: dict) -> int:
    return int(mask_utils.area(_compressed(rle)))


def to_bbox(rle: dict) -> list[float]:
    """XYWH box of the mask (pycocotools convention)."""
    return [float(v) for v in mask_utils.toBbox(_compressed(rle))]


def from_polygons(polygons: list[list[float]], height: int, width: int) -> dict:
    """COCO polygon list (each ``[x1, y1, x2, y2, ...]``) → one merged compressed RLE."""
    polys = [p for p in polygons if len(p) >= 6]
    if not polys:
        return encode(np.zeros((height, width), bool))
    rles = mask_utils.frPyObjects(polys, height, width)
    return _jsonable(mask_utils.merge(rles))


def from_annotation(segmentation, height: int, width: int) -> dict:
    """Any COCO ``segmentation`` value (polygons, uncompressed or compressed RLE) → RLE.

    Raises :class:`SambenchError` for a value of the wrong kind, or one that fails the checks
    of :mod:`sambench.validate` (non-finite or far-away vertices, an RLE whose size differs
    from the image's or whose counts do not cover it exactly): such an annotation would crash
    the decoder or silently score against the wrong pixels.
    """
    height, width = validate.image_size(height, width)
    if isinstance(segmentation, list):
        if not all(isinstance(p, (list, tuple)) for p in segmentation):
            raise SambenchError("polygon segmentation must be a list of coordinate lists")
        return from_polygons(validate.polygons(segmentation, height, width), height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        validate.rle(segmentation, height, width)
        if isinstance(segmentation["counts"], list):
            segmentation = {"size": [height, width], "counts": [int(v) for v in segmentation["counts"]]}
        return _jsonable(_compressed(segmentation))
    raise SambenchError(f"unsupported segmentation of type {type(segmentation).__name__}")


def _compressed(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE (e.g. COCO crowd annotations)
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    if isinstance(counts, str):
        return {"size": list(rle["size"]), "counts": counts.encode("ascii")}
    return rle


def _jsonable(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
