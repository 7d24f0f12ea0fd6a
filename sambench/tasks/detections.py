"""Detector outputs in the COCO results format: the box prompts of the instances task.

A detections file is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}`` (what detectron2 or mmdet write for a COCO submission; extra keys are ignored).
It is read once per file and kept as one compact structured array per image, because an
LVIS file holds ~6M boxes. Matching to a dataset counts, instead of dropping silently, the
detections whose image or category the dataset does not have and those over ``max_dets``.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sambench.errors import SambenchError

log = logging.getLogger("sambench")

DTYPE = np.dtype([("index", np.int64), ("category_id", np.int64), ("bbox", np.float64, (4,)),
                  ("score", np.float64)])


@dataclass(frozen=True)
class Detections:
    path: str
    sha256: str
    total: int
    by_image: dict  # str(image_id) -> DTYPE array in file order


def file_key(path, what: str) -> tuple[str, int, int]:
    """``(resolved path, size, mtime)`` of an input file, the cache key of its parsed form;
    a missing file is a clear error."""
    p = Path(path)
    if not p.is_file():
        raise SambenchError(f"{what} file not found: {p}")
    st = p.stat()
    return str(p.resolve()), st.st_size, st.st_mtime_ns


def read_json_list(path: str, what: str, expected: str) -> tuple[list, str]:
    """The JSON list in ``path`` and the file's sha256 (recorded in results)."""
    import json

    raw = Path(path).read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SambenchError(f"malformed JSON in {what} file {path}: {exc}") from None
    if not isinstance(data, list):
        raise SambenchError(f"{path}: a {what} file is a JSON list of {expected}")
    return data, hashlib.sha256(raw).hexdigest()


def load_detections(path) -> Detections:
    """Read and check a detections file (cached per path, size and modification time)."""
    return _load(*file_key(path, "detections"))


@functools.lru_cache(maxsize=2)
def _load(path: str, size: int, mtime_ns: int) -> Detections:
    data, sha256 = read_json_list(path, "detections", "COCO results ({image_id, category_id, bbox, score})")
    rows = np.zeros(len(data), DTYPE)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, det in enumerate(data):
        image_id, category_id, bbox, score = _check(path, i, det)
        rows[i] = (i, category_id, bbox, score)
        groups[str(image_id)].append(i)
    by_image = {key: rows[idx] for key, idx in groups.items()}
    return Detections(path, sha256, len(data), by_image)


def _check(path: str, i: int, det) -> tuple:
    """One detection's fields, or a one-line error naming it."""
    if not isinstance(det, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(det):
        raise SambenchError(f"{path}: detection {i} lacks image_id, category_id, bbox or score")
    image_id, category_id, bbox, score = det["image_id"], det["category_id"], det["bbox"], det["score"]
    if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
        raise SambenchError(f"{path}: detection {i}: image_id {image_id!r} is not an integer or string")
    if isinstance(category_id, bool) or not isinstance(category_id, int) or abs(category_id) >= 2**63:
        raise SambenchError(f"{path}: detection {i}: category_id {category_id!r} is not a 64-bit integer")
    numbers = list(bbox) + [score] if isinstance(bbox, list) else []
    if (len(numbers) != 5 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v) for v in numbers)
            or bbox[2] < 0 or bbox[3] < 0):
        raise SambenchError(f"{path}: detection {i}: bbox {bbox!r} / score {score!r} is not "
                            "[x, y, w >= 0, h >= 0] and a finite number")
    return image_id, category_id, bbox, score


def match_detections(dets: Detections, dataset: str, image_ids: dict, categories: set,
                     max_dets: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The detections to prompt per sample id (top ``max_dets`` by score, ties in file order)
    and counts of those left out: unknown image, unknown category, over ``max_dets``."""
    kept: dict[str, np.ndarray] = {}
    unknown_images: list[str] = []
    n_unknown_image = n_unknown_category = n_over = 0
    unknown_cats: set[int] = set()
    known_cats = np.array(sorted(c for c in categories if isinstance(c, int)), np.int64)
    for key, rows in dets.by_image.items():
        if key not in image_ids:
            n_unknown_image += len(rows)
            unknown_images.append(key)
            continue
        known = np.isin(rows["category_id"], known_cats)
        n_unknown_category += int((~known).sum())
        unknown_cats.update(int(c) for c in rows["category_id"][~known])
        rows = rows[known]
        rows = rows[np.argsort(-rows["score"], kind="stable")]
        n_over += max(0, len(rows) - max_dets)
        kept[key] = rows[:max_dets]
    if dets.total and not any(len(r) for r in kept.values()):
        raise SambenchError(f"none of the {dets.total} detections in {dets.path} refer to an image and "
                            f"category of dataset {dataset}: wrong --detections file?")
    if n_unknown_image:
        log.warning("instances/%s: %d detections refer to %d images not in the dataset (e.g. %s): "
                    "not scored", dataset, n_unknown_image, len(unknown_images),
                    ", ".join(unknown_images[:5]))
    if n_unknown_category:
        log.warning("instances/%s: %d detections have categories not in the dataset (%s): not scored",
                    dataset, n_unknown_category, ", ".join(map(str, sorted(unknown_cats)[:10])))
    if n_over:
        log.info("instances/%s: %d detections beyond the top %d of their image left out",
                 dataset, n_over, max_dets)
    counts = {"detections_unknown_image": n_unknown_image,
              "detections_unknown_category": n_unknown_category, "detections_over_max_dets": n_over}
    return kept, {k: v for k, v in counts.items() if v}
