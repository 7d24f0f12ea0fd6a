"""SA-1B (format ``sa1b``): one JSON per image beside its JPEG (an extracted shard).

Each ``sa_N.json`` is ``{"image": {image_id, width, height, file_name}, "annotations":
[{id, segmentation (COCO RLE), bbox, area, predicted_iou, stability_score, crop_box,
point_coords}]}`` (the segment-anything README). The index is the list of JSON files; a JSON is
read only when its sample is built, so a shard of 10k images costs nothing to open. The AMG
fields are kept in ``Instance.meta``.
"""
from __future__ import annotations

import json
from pathlib import Path

from sambench import masks as mask_codec
from sambench import validate
from sambench.datasets.base import IndexedDataset, broken_sample, find_files
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError
from sambench.types import Instance, Sample

AMG_FIELDS = ("bbox", "area", "predicted_iou", "stability_score", "crop_box", "point_coords")


class Sa1bDataset(IndexedDataset):
    def __init__(self, name: str, root: Path, pattern: str = "**/sa_*.json"):
        self.name, self.root = name, Path(root)
        self._files = {p.relative_to(self.root).with_suffix("").as_posix(): p
                       for p in find_files(self.root, pattern)}
        if not self._files:
            raise SambenchError(f"dataset {name}: no SA-1B JSON files under {self.root} match {pattern!r}")
        self.image_ids = list(self._files)

    def sample(self, image_id) -> Sample:
        path = self._files[image_id]
        image = path.with_suffix(".jpg")
        try:
            data = json.loads(path.read_text())
            info = data["image"]
            anns = data["annotations"]
            if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
                raise TypeError("annotations is not a list of objects")
            image = path.parent / str(info.get("file_name", image.name))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation",
                                 f"malformed SA-1B JSON {path}: {exc!r}")
        try:  # before any mask is decoded at that size
            h, w = validate.image_size(info.get("height"), info.get("width"))
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "bad_image_size", f"{path.name}: {exc}")
        instances, problems = [], []
        for k, ann in enumerate(anns):
            ann_id = str(ann.get("id", k))
            try:
                rle = mask_codec.from_annotation(ann["segmentation"], h, w)
            except (SambenchError, KeyError) as exc:
                problems.append({"kind": "bad_segmentation", "detail": f"{path.name}: annotation {ann_id}: {exc}"})
                continue
            if mask_codec.area(rle) == 0:
                problems.append({"kind": "empty_mask", "detail": f"annotation {ann_id}"})
                continue
            instances.append(Instance(id=ann_id, rle=rle,
                                      meta={f: ann[f] for f in AMG_FIELDS if f in ann}))
        return Sample(id=image_id, dataset=self.name, height=h, width=w, instances=instances,
                      image_path=image, problems=problems, meta={"image_id": info.get("image_id")})


def open_sa1b(card: DatasetCard, root: Path) -> Sa1bDataset:
    return Sa1bDataset(card.name, root, card.layout.get("annotations", "**/sa_*.json"))
