"""Checks on untrusted annotations and images, applied before anything is decoded.

pycocotools and OpenCV trust their input: a NaN or 1e30 polygon vertex makes pycocotools
allocate without limit, RLE counts that sum past ``H*W`` write past the mask buffer, and a
declared size of 60000² makes every mask of the image a 3.6 GB array. So every value that
reaches a decoder passes here first; a violation is a :class:`SambenchError` whose message
the parsers turn into a counted, logged skip (``run``) and an ERROR line (``datasets check``).

Rules (docs/reliability.md):

- Polygons: flat lists of an even number of finite numbers; pieces of fewer than 3 points
  cover no area and are dropped, an annotation left with none is refused; every vertex lies
  within one image size of the image (``-W <= x <= 2W``, ``-H <= y <= 2H``).
- RLE: ``size`` is the image's; ``counts`` (a list of non-negative integers, or COCO's
  compressed string) parse completely and sum exactly to ``H*W``.
- Image sizes: positive integers whose product is at most :func:`max_pixels` (default
  ``DEFAULT_MAX_PIXELS``, raised with ``--max-pixels`` or ``SAMBENCH_MAX_PIXELS``); a decoded
  image must have the size its annotations declare (checked in :mod:`sambench.types`).
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from sambench.errors import SambenchError

DEFAULT_MAX_PIXELS = 100_000_000  # 10k x 10k; SA-1B's largest images are ~3.4 Mpx
_max_pixels: Optional[int] = None  # set by --max-pixels


def max_pixels() -> int:
    """The largest image (in pixels) sambench decodes: ``--max-pixels``, else
    ``$SAMBENCH_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("SAMBENCH_MAX_PIXELS")
    if env:
        try:
            return _positive(int(env), "SAMBENCH_MAX_PIXELS")
        except ValueError:
            raise SambenchError(f"SAMBENCH_MAX_PIXELS must be a positive integer, got {env!r}") from None
    return DEFAULT_MAX_PIXELS


def set_max_pixels(limit: Optional[int]) -> None:
    """Raise (or lower) the pixel limit for this process; None restores the default."""
    global _max_pixels
    _max_pixels = None if limit is None else _positive(limit, "--max-pixels")


def _positive(value: int, what: str) -> int:
    if value < 1:
        raise SambenchError(f"{what} must be a positive integer, got {value}")
    return value


def image_size(height, width) -> tuple[int, int]:
    """A declared ``(height, width)`` as ints, refused unless plausible (see module docstring)."""
    try:
        h, w = _as_int(height), _as_int(width)
    except (TypeError, ValueError):
        raise SambenchError(f"declared image size {height!r}x{width!r} is not a pair of integers") from None
    if h < 1 or w < 1:
        raise SambenchError(f"declared image size {w}x{h} is not positive")
    check_pixels(h, w, "declared image size")
    return h, w


def check_pixels(height: int, width: int, what: str = "image") -> None:
    limit = max_pixels()
    if height * width > limit:
        raise SambenchError(f"{what} {width}x{height} ({height * width:,} pixels) is over the limit of "
                            f"{limit:,} pixels (raise it with --max-pixels or SAMBENCH_MAX_PIXELS)")


_PIL_LIMIT = threading.Lock()


def open_image(path, what: str = "image"):
    """``PIL.Image.open`` with our pixel limit in place of PIL's (whose error names no way
    out): the header is read, nothing decoded; refused over :func:`max_pixels`. PIL's own
    check runs only inside ``open``, so it is lifted just there."""
    from PIL import Image

    with _PIL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    try:
        check_pixels(im.height, im.width, f"{what} {path}")
    except SambenchError:
        im.close()
        raise
    return im


def is_file(path) -> bool:
    """``Path.is_file`` that is False, not an error, for a name no file system accepts (too
    long, a NUL byte): such names come from annotation files."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _as_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating, str)):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number) or number != int(number) or abs(number) > 2**31:
        raise ValueError(value)
    return int(number)


def polygons(segmentation, height: int, width: int) -> list[list[float]]:
    """COCO polygons (``[[x1, y1, x2, y2, ...], ...]``) checked against the image; returns
    the pieces of 3+ points as float lists."""
    if not isinstance(segmentation, (list, tuple)):
        raise SambenchError(f"polygon segmentation must be a list, got {type(segmentation).__name__}")
    kept = []
    for piece in segmentation:
        coords = polygon_vertices(piece, height, width, flat=True)
        if len(coords) >= 3:
            kept.append(coords.reshape(-1).tolist())
    if not kept:
        raise SambenchError("polygon segmentation has no piece of 3 or more points")
    return kept


def polygon_vertices(piece, height: int, width: int, flat: bool = False) -> np.ndarray:
    """One polygon as an ``(N, 2)`` float array of finite vertices near the image; ``flat``:
    the COCO form ``[x1, y1, x2, y2, ...]``, else a list of ``[x, y]`` pairs."""
    if not isinstance(piece, (list, tuple, np.ndarray)):
        raise SambenchError(f"a polygon must be a list of coordinates, got {type(piece).__name__}")
    if len(piece) > 2 * max_pixels():
        raise SambenchError(f"a polygon of {len(piece)} values is larger than any image")
    try:
        arr = np.asarray(piece, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SambenchError("polygon coordinates are not all numbers") from None
    if flat:
        if arr.ndim != 1 or arr.size % 2:
            raise SambenchError(f"polygon has {arr.size} coordinates, not an even count of numbers")
        arr = arr.reshape(-1, 2)
    elif arr.size == 0:
        arr = arr.reshape(0, 2)
    elif arr.ndim != 2 or arr.shape[1] != 2:
        raise SambenchError(f"polygon vertices must be [x, y] pairs (got shape {list(arr.shape)})")
    if not np.isfinite(arr).all():
        raise SambenchError("polygon has a non-finite coordinate (NaN or infinity)")
    if arr.size and ((arr[:, 0] < -width).any() or (arr[:, 0] > 2 * width).any()
                     or (arr[:, 1] < -height).any() or (arr[:, 1] > 2 * height).any()):
        raise SambenchError(f"polygon vertex outside the {width}x{height} image by more than its size "
                            f"(x in [{arr[:, 0].min():g}, {arr[:, 0].max():g}], "
                            f"y in [{arr[:, 1].min():g}, {arr[:, 1].max():g}])")
    return arr


def rle(segmentation: dict, height: int, width: int) -> None:
    """Refuse an RLE whose size is not the image's or whose counts do not cover it exactly."""
    size = segmentation.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise SambenchError(f"RLE size must be [height, width], got {size!r}")
    try:
        size = [_as_int(v) for v in size]
    except (TypeError, ValueError):
        raise SambenchError(f"RLE size must be [height, width] integers, got {size!r}") from None
    if size != [height, width]:
        raise SambenchError(f"RLE size {size} differs from image size {[height, width]}")
    counts = rle_counts(segmentation.get("counts"))
    total = int(counts.sum())
    if total != height * width:
        raise SambenchError(f"RLE counts sum to {total} pixels, the {width}x{height} image has "
                            f"{height * width}")


def rle_counts(counts) -> np.ndarray:
    """Run lengths of an uncompressed (list) or compressed (COCO string) RLE as int64, refused
    unless every run is a non-negative integer below 2³²."""
    if isinstance(counts, (list, tuple)):
        try:
            arr = np.asarray(counts, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise SambenchError("RLE counts are not all numbers") from None
        if arr.ndim != 1 or not np.isfinite(arr).all() or (arr != np.floor(arr)).any():
            raise SambenchError("RLE counts must be a flat list of integers")
        runs = arr.astype(np.int64) if arr.size else np.zeros(0, np.int64)
    elif isinstance(counts, (str, bytes)):
        try:
            raw = counts.encode("ascii") if isinstance(counts, str) else counts
        except UnicodeEncodeError:
            raise SambenchError("compressed RLE counts hold characters outside COCO's alphabet") from None
        runs = _compressed_counts(raw)
    else:
        raise SambenchError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    if (runs < 0).any() or (runs >= 2**32).any():
        raise SambenchError("RLE counts has a negative or oversized run")
    return runs


def _compressed_counts(raw: bytes) -> np.ndarray:
    """Decode COCO's compressed counts (pycocotools' ``rleFrString``, vectorised): each value
    is little-endian 5-bit groups in characters 48..111, bit 0x20 = more groups follow, bit
    0x10 of the last group = negative; from the fourth value on, each is a delta to the value
    two before it."""
    if not raw:
        return np.zeros(0, np.int64)
    c = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if (c < 0).any() or (c > 63).any():
        raise SambenchError("compressed RLE counts hold characters outside COCO's alphabet")
    ends = np.flatnonzero((c & 0x20) == 0)
    if ends.size == 0 or ends[-1] != c.size - 1:
        raise SambenchError("compressed RLE counts end in the middle of a value")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 7:  # 35 bits: more than any uint32 run
        raise SambenchError("compressed RLE counts hold a value too long for a run length")
    position = np.arange(c.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((c & 0x1F) << (5 * position), starts)
    negative = (c[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * lengths))
    runs = values.copy()  # odd indexes from 3 and even ones from 4 accumulate their deltas
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs
