"""Cityscapes ``gtFine`` (format ``cityscapes``), read as panoptic segments.

Release layout: ``leftImg8bit/<split>/<city>/<base>_leftImg8bit.png`` with
``gtFine/<split>/<city>/<base>_gtFine_instanceIds.png`` (id = class*1000 + k for thing
instances, the class id elsewhere) and ``<base>_gtFine_polygons.json`` (objects drawn in
order, later on top). ``layout.source`` picks ``instanceIds`` (default) or ``polygons``; the
polygons are rasterised into the same id map the official ``json2instanceImg`` writes, so
both give the same instances. Panoptic rule (the Cityscapes panoptic benchmark's): each thing
instance is a mask; each evaluated stuff class is one mask per image (``layout.stuff``); a
thing region without an instance id ("car group") is a crowd mask; classes with
``ignoreInEval`` (void, caravan, trailer, ...) give no mask and are the image's void region
(``Sample.ignore_mask``, with the crowd regions), as the official evaluation ignores them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset, broken_sample, read_label
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError
from sambench.types import Instance, Sample

# (name, id, hasInstances, ignoreInEval) from cityscapesScripts helpers/labels.py
LABELS = [
    ("unlabeled", 0, False, True), ("ego vehicle", 1, False, True),
    ("rectification border", 2, False, True), ("out of roi", 3, False, True),
    ("static", 4, False, True), ("dynamic", 5, False, True), ("ground", 6, False, True),
    ("road", 7, False, False), ("sidewalk", 8, False, False), ("parking", 9, False, True),
    ("rail track", 10, False, True), ("building", 11, False, False), ("wall", 12, False, False),
    ("fence", 13, False, False), ("guard rail", 14, False, True), ("bridge", 15, False, True),
    ("tunnel", 16, False, True), ("pole", 17, False, False), ("polegroup", 18, False, True),
    ("traffic light", 19, False, False), ("traffic sign", 20, False, False),
    ("vegetation", 21, False, False), ("terrain", 22, False, False), ("sky", 23, False, False),
    ("person", 24, True, False), ("rider", 25, True, False), ("car", 26, True, False),
    ("truck", 27, True, False), ("bus", 28, True, False), ("caravan", 29, True, True),
    ("trailer", 30, True, True), ("train", 31, True, False), ("motorcycle", 32, True, False),
    ("bicycle", 33, True, False), ("license plate", -1, False, True),
]
NAME_TO_ID = {name: i for name, i, _, _ in LABELS}
ID_TO_NAME = {i: name for name, i, _, _ in LABELS}
THINGS = {i for _, i, inst, ignore in LABELS if inst and not ignore}
STUFF = {i for _, i, inst, ignore in LABELS if not inst and not ignore}
HAS_INSTANCES = {i for _, i, inst, _ in LABELS if inst}
VOID = sorted(i for _, i, _, ignore in LABELS if ignore)


class CityscapesDataset(IndexedDataset):
    def __init__(self, name: str, root: Path, split: str, source: str = "instanceIds",
                 stuff: bool = True):
        if source not in ("instanceIds", "polygons"):
            raise SambenchError(f"cityscapes: layout.source must be instanceIds or polygons, not {source!r}")
        self.name, self.root, self.split, self.source, self.stuff = name, Path(root), split, source, stuff
        images = sorted((self.root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        if not images:
            raise SambenchError(f"dataset {name}: no leftImg8bit/{split}/<city>/*_leftImg8bit.png under {self.root}")
        self._images = {f"{p.parent.name}/{p.name[:-len('_leftImg8bit.png')]}": p for p in images}
        self.image_ids = list(self._images)

    def sample(self, image_id) -> Sample:
        image = self._images[image_id]
        city, base = image_id.split("/")
        gt = self.root / "gtFine" / self.split / city / f"{base}_gtFine_{self.source}"
        problems: list[dict] = []
        try:
            if self.source == "polygons":
                ids = polygons_to_ids(gt.with_suffix(".json"), problems)
            else:
                ids = read_label(gt.with_suffix(".png"))
        except SambenchError as exc:
            path = gt.with_suffix(".json" if self.source == "polygons" else ".png")
            kind = "missing_annotation" if not path.is_file() else "unreadable_annotation"
            return broken_sample(self.name, image_id, image, kind, str(exc))
        instances, more = panoptic_instances(ids, self.stuff)
        return Sample(id=image_id, dataset=self.name, height=ids.shape[0], width=ids.shape[1],
                      instances=instances, image_path=image, problems=problems + more,
                      void_loader=lambda: np.isin(np.where(ids >= 1000, ids // 1000, ids), VOID))


def panoptic_instances(ids: np.ndarray, stuff: bool = True) -> tuple[list[Instance], list[dict]]:
    """Instances of an ``instanceIds`` map under the panoptic rule (module docstring)."""
    instances, problems = [], []
    for value in (int(v) for v in np.unique(ids)):
        cls = value // 1000 if value >= 1000 else value
        crowd = value < 1000 and cls in THINGS
        if cls not in THINGS and not (stuff and cls in STUFF):
            if cls not in ID_TO_NAME:
                problems.append({"kind": "unknown_category", "detail": f"id {value} (class {cls})"})
            continue
        mask = ids == value
        instances.append(Instance(id=str(value), rle=mask_codec.encode(mask), category=ID_TO_NAME[cls],
                                  category_id=cls, iscrowd=crowd,
                                  meta={"kind": "thing" if cls in THINGS else "stuff"}))
    return instances, problems


def polygons_to_ids(path: Path, problems: list[dict]) -> np.ndarray:
    """Rasterise ``*_gtFine_polygons.json`` into an instanceIds map, as json2instanceImg does:
    objects in file order, later ones on top; thing objects numbered per class from 0;
    ``<class>group`` labels keep the bare class id (crowd); deleted objects skipped."""
    from PIL import Image, ImageDraw

    if not path.is_file():
        raise SambenchError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
        height, width = int(data["imgHeight"]), int(data["imgWidth"])
        objects = data["objects"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SambenchError(f"malformed Cityscapes polygons file {path}: {exc}") from None
    canvas = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    counts: dict[int, int] = {}
    for obj in objects:
        if obj.get("deleted"):
            continue
        label = obj.get("label", "")
        group = label not in NAME_TO_ID and label.endswith("group")
        cls = NAME_TO_ID.get(label[: -len("group")] if group else label)
        polygon = [tuple(p) for p in obj.get("polygon", [])]
        if cls is None:
            problems.append({"kind": "unknown_category", "detail": f"label {label!r} in {path.name}"})
            continue
        if len(polygon) < 3:
            problems.append({"kind": "empty_mask", "detail": f"{label} polygon with {len(polygon)} points"})
            continue
        if cls < 0:  # license plate: not drawn by json2instanceImg
            continue
        value = cls
        if cls in HAS_INSTANCES and not group:
            value = cls * 1000 + counts.get(cls, 0)
            counts[cls] = counts.get(cls, 0) + 1
        draw.polygon(polygon, fill=value)
    return np.asarray(canvas).astype(np.int64)


def open_cityscapes(card: DatasetCard, root: Path) -> CityscapesDataset:
    layout = card.layout
    return CityscapesDataset(card.name, root, layout.get("split", "val"),
                             source=layout.get("source", "instanceIds"),
                             stuff=bool(layout.get("stuff", True)))
