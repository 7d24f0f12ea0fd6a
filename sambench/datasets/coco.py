"""COCO-format instance datasets: an images folder and one instances JSON.

Polygons, compressed and uncompressed RLE and ``iscrowd`` are read as COCO defines them
(pycocotools does the rasterising). Samples are built lazily, one image at a time, so a
large dataset never holds all its masks decoded.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Optional

from sambench import masks as mask_codec
from sambench import validate
from sambench.datasets.base import IndexedDataset
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


def load_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SambenchError(f"annotation file not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise SambenchError(f"malformed JSON in {path}: {exc}") from None


class CocoDataset(IndexedDataset):
    """A COCO instances file plus its images, parsed once: ``data`` is the file as read (what
    pycocotools scores against), ``images``, ``categories`` and :meth:`annotations` index it.

    ``min_area`` drops instances smaller than that many pixels, counted as problems of kind
    ``too_small``; ``include_crowd`` keeps ``iscrowd`` annotations (flagged on the Instance).
    """

    def __init__(self, name: str, annotation_file: Path, image_dir: Path, *,
                 min_area: int = 0, include_crowd: bool = True, image_ids: Optional[list] = None):
        self.name = name
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        self.min_area = min_area
        self.include_crowd = include_crowd
        self.data = data = load_json(self.annotation_file)
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise SambenchError(f"{self.annotation_file} is not a COCO instances file "
                                "(needs 'images' and 'annotations')")
        try:
            self.images, self.problems = {}, []  # problems: of the file, not of one image
            for img in data["images"]:
                if img["id"] in self.images:
                    self.problems.append({"kind": "duplicate_image_id", "detail": (
                        f"{self.annotation_file.name}: image id {img['id']} listed again (the first is kept)")})
                else:
                    self.images[img["id"]] = img
            self.categories = {c["id"]: c for c in data.get("categories", [])}
            self._anns = defaultdict(list)
            for ann in data["annotations"]:
                self._anns[ann["image_id"]].append(ann)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SambenchError(f"malformed COCO file {self.annotation_file}: missing {exc}") from None
        for image_id in self._anns:
            if image_id not in self.images:
                self.problems.extend({"kind": "orphan_annotation", "detail": (
                    f"{self.annotation_file.name}: annotation {a.get('id')} refers to image id "
                    f"{image_id!r}, which is not in the file")} for a in self._anns[image_id])
        self.image_ids = list(self.images) if image_ids is None else list(image_ids)

    @property
    def n_annotations(self) -> int:
        return sum(len(self._anns[i]) for i in self.image_ids)

    def annotations(self, image_id) -> list[dict]:
        """The image's annotations in file order."""
        return self._anns.get(image_id, [])

    def sample(self, image_id) -> Sample:
        img = self.images[image_id]
        try:  # before any mask is decoded at that size
            h, w = validate.image_size(img.get("height"), img.get("width"))
        except SambenchError as exc:
            return Sample(id=str(image_id), dataset=self.name, height=0, width=0, instances=[],
                          image_path=self.image_path(img), image_loader=_refused(exc),
                          meta={"file_name": img.get("file_name", "")},
                          problems=[{"kind": "bad_image_size", "detail": (
                              f"{self.annotation_file.name}: image {image_id}: {exc}")}])
        instances, problems = [], []
        for ann in self._anns.get(image_id, []):
            inst, problem = self._instance(ann, h, w)
            if inst is not None:
                instances.append(inst)
            else:
                problems.append(problem)
        return Sample(id=str(image_id), dataset=self.name, height=h, width=w,
                      instances=instances, image_path=self.image_path(img),
                      meta={"file_name": img.get("file_name", "")}, problems=problems)

    def image_path(self, img: dict) -> Path:
        return self.image_dir / str(img.get("file_name", ""))

    def _instance(self, ann: dict, h: int, w: int):
        ann_id = str(ann.get("id"))
        crowd = bool(ann.get("iscrowd", 0))
        if crowd and not self.include_crowd:
            return None, {"kind": "crowd_excluded", "detail": f"annotation {ann_id}"}
        cat_id = ann.get("category_id")
        if cat_id is not None and (isinstance(cat_id, bool) or not isinstance(cat_id, int)):
            return None, {"kind": "unknown_category",
                          "detail": f"annotation {ann_id} has category_id {cat_id!r}, not an integer"}
        if self.categories and cat_id not in self.categories:
            return None, {"kind": "unknown_category",
                          "detail": f"annotation {ann_id} has category_id {cat_id}"}
        if "segmentation" not in ann:
            return None, {"kind": "no_segmentation", "detail": f"annotation {ann_id}"}
        rle, problem = segmentation_rle(ann["segmentation"], h, w,
                                        f"{self.annotation_file.name}: annotation {ann_id}")
        if problem:
            return None, problem
        area = mask_codec.area(rle)
        if area < self.min_area:
            return None, {"kind": "too_small", "detail": f"annotation {ann_id} ({area} px)"}
        category = self.categories.get(cat_id, {}).get("name", str(cat_id))
        extra = {k: ann[k] for k in ("level", "parent_id", "description", "color") if k in ann}
        return Instance(id=ann_id, rle=rle, category=category, category_id=int(cat_id or 0),
                        iscrowd=crowd, ignore=bool(ann.get("ignore", 0)), meta=extra), None


def open_coco(card, root: Path) -> CocoDataset:
    """The ``coco`` format: ``layout.annotations`` and ``layout.images``, or found under the root
    (in ``layout.folder``, if the split is a sub-folder)."""
    layout = card.layout
    if "annotations" in layout:
        ann, images = root / layout["annotations"], root / layout.get("images", "")
    else:
        ann, images = find_coco_files(root / layout.get("folder", ""))
    return CocoDataset(card.name, ann, images, min_area=int(layout.get("min_area", 0)),
                       include_crowd=bool(layout.get("include_crowd", True)))


def _refused(exc: SambenchError):
    """An image loader for an image whose declared size is refused: it is never decoded."""
    def load():
        raise SambenchError(f"image not decoded: {exc}")
    return load


def segmentation_rle(segmentation, height: int, width: int, label: str) -> tuple[Optional[dict], Optional[dict]]:
    """A COCO ``segmentation`` value as (RLE, None), or (None, problem) when it is malformed
    (``bad_segmentation``) or empty (``empty_mask``); ``label`` names it in the problem."""
    try:
        rle = mask_codec.from_annotation(segmentation, height, width)
    except SambenchError as exc:
        return None, {"kind": "bad_segmentation", "detail": f"{label}: {exc}"}
    if mask_codec.area(rle) == 0:
        return None, {"kind": "empty_mask", "detail": label}
    return rle, None


def find_coco_files(root: Path) -> tuple[Path, Path]:
    """Guess (annotation JSON, image folder) of a COCO-style directory given as a path.

    Looks for ``annotations.json``, else the single JSON in the folder or in ``annotations/``;
    images live in ``images/`` if present, else next to the JSON.
    """
    root = Path(root)
    candidates = [root / "annotations.json"]
    if not candidates[0].is_file():
        candidates = sorted(root.glob("*.json")) or sorted((root / "annotations").glob("*.json"))
    if len(candidates) != 1 or not candidates[0].is_file():
        found = ", ".join(p.name for p in candidates) or "none"
        raise SambenchError(f"{root}: expected one COCO annotations JSON (found: {found})")
    image_dir = root / "images" if (root / "images").is_dir() else root
    return candidates[0], image_dir
