"""A text-conditioned detector's boxes: the composed text-to-mask route (``--text-detections``).

Users get text-to-mask today by running a detector that takes a phrase (Grounding DINO,
OWL-ViT, ...) and prompting SAM with its box. The text task scores that pipeline on the same
units as a text-prompted model when given a JSON list of::

    {"image_id": 42, "phrase": "the man in red", "box": [x0, y0, x1, y1], "score": 0.87}

``image_id`` is the sample id (the COCO image id for COCO-format data, compared as a string),
``box`` is XYXY in pixels of the original image, extra keys are ignored. Phrases match after
lower-casing and collapsing white space. Per (image, phrase) the highest-scoring box is kept
(ties: the first in the file); a unit with no box scores IoU 0 and is counted. The concept
task (every instance of a phrase) takes all boxes of a pair, ``image_id`` being the pair id.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from sambench.errors import SambenchError
from sambench.tasks.detections import file_key, read_json_list

FIELDS = ("image_id", "phrase", "box", "score")


def phrase_key(phrase: str) -> str:
    return " ".join(phrase.lower().split())


@dataclass(frozen=True)
class TextDetections:
    path: str
    sha256: str
    total: int
    best: dict  # (str(image_id), phrase_key) -> (box [x0, y0, x1, y1], score, index in file)
    boxes: dict  # (str(image_id), phrase_key) -> every (box, score, index), in file order

    def lookup(self, image_id: str, phrase: str):
        """``(box, score, index)`` of the best box for the pair, or None."""
        return self.best.get((str(image_id), phrase_key(phrase)))


def load_text_detections(path) -> TextDetections:
    """Read and check a text detections file (cached per path, size and modification time)."""
    return _load(*file_key(path, "text detections"))


@functools.lru_cache(maxsize=2)
def _load(path: str, size: int, mtime_ns: int) -> TextDetections:
    data, sha256 = read_json_list(path, "text detections", "{image_id, phrase, box: [x0, y0, x1, y1], score}")
    best: dict = {}
    boxes: dict = {}
    for i, det in enumerate(data):
        image_id, phrase, box, score = _check(path, i, det)
        key = (str(image_id), phrase_key(phrase))
        found = ([float(v) for v in box], float(score), i)
        boxes.setdefault(key, []).append(found)
        if key not in best or score > best[key][1]:
            best[key] = found
    return TextDetections(path, sha256, len(data), best, boxes)


def _check(path: str, i: int, det) -> tuple:
    """One detection's fields, or a one-line error naming it."""
    if not isinstance(det, dict) or not set(FIELDS) <= set(det):
        raise SambenchError(f"{path}: detection {i} lacks one of {', '.join(FIELDS)}")
    image_id, phrase, box, score = (det[k] for k in FIELDS)
    if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
        raise SambenchError(f"{path}: detection {i}: image_id {image_id!r} is not an integer or string")
    if not isinstance(phrase, str) or not phrase.strip():
        raise SambenchError(f"{path}: detection {i}: phrase {phrase!r} is not a non-empty string")
    numbers = list(box) + [score] if isinstance(box, list) else []
    if (len(numbers) != 5 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v) for v in numbers)
            or box[2] < box[0] or box[3] < box[1]):
        raise SambenchError(f"{path}: detection {i}: box {box!r} / score {score!r} is not "
                            "[x0, y0, x1 >= x0, y1 >= y0] and a finite number")
    return image_id, phrase, box, score


__all__ = ["TextDetections", "load_text_detections", "phrase_key"]
