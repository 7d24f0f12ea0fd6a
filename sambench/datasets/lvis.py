"""LVIS v0.5 and v1 instance JSON (format ``lvis``): COCO's structure plus LVIS's fields.

What differs from COCO: images are COCO 2017 files found through ``coco_url``
(``.../val2017/000000397133.jpg`` → ``<images>/val2017/000000397133.jpg``, the rule
detectron2's LVIS loader uses; v0.5 also has ``file_name``, used only without ``coco_url``);
categories carry a ``frequency`` group (r/c/f) that proposals AR is split by; images carry
the federated-evaluation lists ``not_exhaustive_category_ids`` and ``neg_category_ids``,
kept in ``Sample.meta``. LVIS has no crowd annotations.
"""
from __future__ import annotations

from pathlib import Path

from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import CocoDataset
from sambench.errors import SambenchError
from sambench.types import Sample

FREQUENCIES = {"r": "rare", "c": "common", "f": "frequent"}


class LvisDataset(CocoDataset):
    def __init__(self, name: str, annotation_file: Path, image_dir: Path, **kwargs):
        super().__init__(name, annotation_file, image_dir, **kwargs)
        bad = [c["id"] for c in self.categories.values() if str(c.get("frequency")) not in FREQUENCIES]
        if bad:
            raise SambenchError(f"{annotation_file}: not an LVIS file: categories {bad[:5]} "
                                "lack a frequency (r/c/f)")
        for img in self.images.values():
            for key in ("not_exhaustive_category_ids", "neg_category_ids"):
                ids = img.get(key, [])
                if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                    raise SambenchError(f"{annotation_file}: not an LVIS file: image {img['id']} has "
                                        f"{key} {str(ids)[:40]}, not a list of category ids")

    def image_path(self, img: dict) -> Path:
        if img.get("coco_url"):
            return self.image_dir / "/".join(str(img["coco_url"]).split("/")[-2:])
        return self.image_dir / str(img.get("file_name", ""))

    def sample(self, image_id) -> Sample:
        sample = super().sample(image_id)
        img = self.images[image_id]
        sample.meta.update({
            "not_exhaustive_category_ids": list(img.get("not_exhaustive_category_ids", [])),
            "neg_category_ids": list(img.get("neg_category_ids", [])),
        })
        for inst in sample.instances:
            inst.meta["frequency"] = self.categories.get(inst.category_id, {}).get("frequency")
        return sample


def open_lvis(card: DatasetCard, root: Path) -> LvisDataset:
    layout = card.layout
    if "annotations" not in layout:
        raise SambenchError(f"dataset card {card.name}: format lvis needs layout.annotations")
    return LvisDataset(card.name, root / layout["annotations"], root / layout.get("images", ""),
                       min_area=int(layout.get("min_area", 0)))
