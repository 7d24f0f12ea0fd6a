"""Polygon annotation files painted in order (formats ``visor``, ``woodscape``, ``via``).

These releases store objects as pixel polygons and their own tools rasterise them with
``cv2.fillPoly`` on integer vertices, painting objects one after the other so a later object
covers an earlier one. We do the same and take each object's *visible* pixels as its mask, so
our masks equal the ones the official tools render (all polygons of one object go into one
``fillPoly`` call, as there, so where two of them overlap the even-odd rule leaves a hole). An
object with no polygon of 3+ points, or fully covered, is counted as ``empty_mask``.

- ``visor``: EPIC-KITCHENS VISOR sparse annotations, one JSON per video with
  ``video_annotations[].image.name`` and ``annotations[].segments`` (lists of ``[x, y]``),
  painted in file order at 1920x1080 (the VISOR-VIS renderer's input resolution).
- ``woodscape``: ``instance_annotations/<id>.json`` = ``{key: {annotation: [{tags, segmentation,
  z_order}], image_width, image_height}}``, painted by ascending ``z_order`` as the WoodScape
  scripts do; objects with other than one tag are skipped like theirs.
- ``via``: a VGG Image Annotator project JSON (NDD20): ``{key: {filename, regions: [{
  shape_attributes: {name: polygon, all_points_x, all_points_y}, region_attributes}]}}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sambench import masks as mask_codec
from sambench import validate
from sambench.datasets.base import IndexedDataset, broken_sample, image_size
from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import load_json
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


@dataclass
class PolygonObject:
    id: str
    category: str
    polygons: list  # list of (N, 2) pixel vertex lists
    category_id: int = 0


def paint(objects: list[PolygonObject], height: int, width: int) -> tuple[list[Instance], list[dict]]:
    """Visible mask of every object when painted in list order (later on top). An object
    with a polygon that fails :func:`sambench.validate.polygon_vertices` is not painted and
    is counted as ``bad_segmentation``; a refused image size paints nothing."""
    try:
        height, width = validate.image_size(height, width)
    except SambenchError as exc:
        return [], [{"kind": "bad_image_size", "detail": str(exc)}]
    canvas = np.zeros((height, width), np.int32)
    problems, painted = [], []
    for index, obj in enumerate(objects, start=1):
        try:
            if not isinstance(obj.polygons, (list, tuple)):
                raise SambenchError(f"polygons must be a list, got {type(obj.polygons).__name__}")
            polys = [validate.polygon_vertices(p, height, width) for p in obj.polygons]
        except SambenchError as exc:
            problems.append({"kind": "bad_segmentation", "detail": f"object {obj.id} ({obj.category}): {exc}"})
            continue
        polys = [p.astype(np.int32) for p in polys if len(p) >= 3]
        if polys:
            cv2.fillPoly(canvas, polys, index)
        painted.append((index, obj))
    instances = []
    for index, obj in painted:
        mask = canvas == index
        if not mask.any():
            problems.append({"kind": "empty_mask", "detail": f"object {obj.id} ({obj.category})"})
            continue
        instances.append(Instance(id=obj.id, rle=mask_codec.encode(mask), category=obj.category,
                                  category_id=obj.category_id))
    return instances, problems


class PolygonDataset(IndexedDataset):
    """Samples from ``{id: (image path, height, width, objects)}``; size None = image header."""

    def __init__(self, name: str, entries: dict[str, tuple]):
        self.name = name
        self._entries = entries
        self.image_ids = list(entries)

    def sample(self, image_id) -> Sample:
        image, height, width, objects, problems = self._entries[image_id]
        if height is None:
            try:
                height, width = image_size(image)
            except SambenchError as exc:
                return broken_sample(self.name, image_id, image, "missing_image", str(exc))
        instances, more = paint(objects, height, width)
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_path=image, problems=list(problems) + more)


def _json_files(root: Path, folder: str, name: str) -> list[Path]:
    files = sorted((root / folder).glob("*.json"))
    if not files:
        raise SambenchError(f"dataset {name}: no annotation JSON files in {root / folder}")
    return files


# ---- VISOR -----------------------------------------------------------------------------

def visor_image(images: Path, name: str) -> Path:
    """Where a VISOR frame is: ``<images>/<Pxx>/<video>/<name>`` (the release's per-video
    zips extracted in place) or ``<images>/<video>/<name>`` (VISOR-VIS's layout)."""
    video = "_".join(name.split("_")[:2])
    candidates = [images / video.split("_")[0] / video / name, images / video / name]
    return next((p for p in candidates if p.is_file()), candidates[0])


def open_visor(card: DatasetCard, root: Path) -> PolygonDataset:
    layout = card.layout
    height, width = layout.get("resolution", [1080, 1920])
    images = root / layout.get("images", "GroundTruth-SparseAnnotations/rgb_frames/val")
    folder = layout.get("annotations", "GroundTruth-SparseAnnotations/annotations/val")
    entries = {}  # the split's polygons stay in memory (small); masks are built per sample
    for path in _json_files(root, folder, card.name):
        data = load_json(path)
        try:
            frames = data["video_annotations"]
            for frame in frames:
                name = frame["image"]["name"]
                objects = [PolygonObject(id=str(a.get("id", k)), category=str(a.get("name", "")),
                                         polygons=a.get("segments") or [],
                                         category_id=int(a.get("class_id", 0)))
                           for k, a in enumerate(frame.get("annotations", []))]
                entries[Path(name).stem] = (visor_image(images, name), height, width, objects, [])
        except (KeyError, TypeError, ValueError) as exc:
            raise SambenchError(f"malformed VISOR annotation file {path}: {exc!r}") from None
    return PolygonDataset(card.name, dict(sorted(entries.items())))


# ---- WoodScape -------------------------------------------------------------------------

class WoodscapeDataset(IndexedDataset):
    """One JSON per image, read when its sample is built (10k files cost nothing to open)."""

    def __init__(self, name: str, annotations: Path, images: Path):
        self.name, self.images = name, images
        self._files = {p.stem: p for p in sorted(annotations.glob("*.json"))}
        if not self._files:
            raise SambenchError(f"dataset {name}: no annotation JSON files in {annotations}")
        self.image_ids = list(self._files)

    def sample(self, image_id) -> Sample:
        path, image = self._files[image_id], self.images / f"{image_id}.png"
        try:
            (value,) = load_json(path).values()
            anns = value["annotation"]
            objects = [a for a in anns if len(a["tags"]) == 1]
            objects.sort(key=lambda a: a["z_order"])  # stable, as the WoodScape scripts sort
            objects = [PolygonObject(id=str(a.get("id", k)), category=a["tags"][0],
                                     polygons=[a["segmentation"]]) for k, a in enumerate(objects)]
            height, width = int(value["image_height"]), int(value["image_width"])
        except (SambenchError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation",
                                 f"malformed WoodScape annotation file {path}: {exc}")
        skipped = [{"kind": "ambiguous_tags", "detail": f"object {a.get('id')} tags {a['tags']}"}
                   for a in anns if len(a["tags"]) != 1]
        instances, problems = paint(objects, height, width)
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_path=image, problems=skipped + problems)


def open_woodscape(card: DatasetCard, root: Path) -> WoodscapeDataset:
    layout = card.layout
    return WoodscapeDataset(card.name, root / layout.get("annotations", "instance_annotations"),
                            root / layout.get("images", "rgb_images"))


# ---- VIA (NDD20) -----------------------------------------------------------------------

def via_objects(regions, category_attribute: str) -> tuple[list[PolygonObject], list[dict]]:
    objects, problems = [], []
    items = regions.items() if isinstance(regions, dict) else enumerate(regions)  # VIA 1 vs 2
    for k, region in items:
        shape = region.get("shape_attributes", {})
        attrs = region.get("region_attributes", {}) or {}
        category = str(attrs.get(category_attribute, "")) if category_attribute else ""
        if shape.get("name") == "polygon" or shape.get("name") == "polyline":
            points = list(zip(shape.get("all_points_x", []), shape.get("all_points_y", [])))
        elif shape.get("name") == "rect":
            x, y, w, h = (shape[k2] for k2 in ("x", "y", "width", "height"))
            points = [(x, y), (x + w - 1, y), (x + w - 1, y + h - 1), (x, y + h - 1)]
        else:
            problems.append({"kind": "unsupported_shape", "detail": f"region {k}: {shape.get('name')!r}"})
            continue
        objects.append(PolygonObject(id=str(k), category=category, polygons=[points]))
    return objects, problems


def open_via(card: DatasetCard, root: Path) -> PolygonDataset:
    layout = card.layout
    if "annotations" not in layout:
        raise SambenchError(f"dataset card {card.name}: format via needs layout.annotations")
    path = root / layout["annotations"]
    data = load_json(path)
    data = data.get("_via_img_metadata", data)  # a full VIA project file wraps the metadata
    images = root / layout.get("images", "")
    entries = {}
    try:
        for value in data.values():
            objects, problems = via_objects(value.get("regions", []), layout.get("category_attribute", ""))
            entries[Path(value["filename"]).stem] = (images / value["filename"], None, None, objects, problems)
    except (AttributeError, KeyError, TypeError) as exc:
        raise SambenchError(f"malformed VIA annotation file {path}: {exc!r}") from None
    return PolygonDataset(card.name, dict(sorted(entries.items())))
