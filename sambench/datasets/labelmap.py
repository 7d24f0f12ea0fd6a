"""Image files with one label-map PNG each (format ``labelmap``).

The layout names a glob of images and a template for each image's label file; the card's
``rule`` (:class:`~sambench.datasets.labels.LabelRule`) says how values become instances.
Covers instance-id PNGs (PPDLS, iShape ``instance_map``), category maps (EgoHOS, DRAM) and
binary masks (GTEA, DOORS). Layout keys:

- ``images``: glob relative to the root, e.g. ``train/image/*.jpg``
- ``labels``: label path template relative to the root; ``{stem}`` is the image name
  without extension (minus ``stem_strip`` if given), ``{rel_dir}`` the image's folder
  relative to the root, ``{parent}`` that folder's name, e.g. ``train/label/{stem}.png``
- ``include`` / ``exclude``: regexes on the image's relative path (e.g. a subset of sources)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sambench.datasets.base import IndexedDataset, broken_sample, find_files, read_label
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.types import Sample


class LabelMapDataset(IndexedDataset):
    """Images and their label maps; ids are image paths relative to the root, no extension."""

    def __init__(self, name: str, root: Path, images: str, labels: str, rule: LabelRule, *,
                 stem_strip: str = "", include: str = "", exclude: str = ""):
        self.name, self.root, self.rule = name, Path(root), rule
        self.labels, self.stem_strip = labels, stem_strip
        files = find_files(self.root, images, include, exclude)
        if not files:
            filters = "".join(f", {k} {v!r}" for k, v in (("include", include), ("exclude", exclude)) if v)
            raise SambenchError(f"dataset {name}: no images under {self.root} match {images!r}{filters}")
        self._images = {self._id(p): p for p in files}
        self.image_ids = list(self._images)

    def _id(self, path: Path) -> str:
        return path.relative_to(self.root).with_suffix("").as_posix()

    def label_path(self, image: Path) -> Path:
        stem = image.stem
        if self.stem_strip and stem.endswith(self.stem_strip):
            stem = stem[: -len(self.stem_strip)]
        rel_dir = image.parent.relative_to(self.root).as_posix()
        return self.root / self.labels.format(stem=stem, rel_dir=rel_dir, parent=image.parent.name)

    def sample(self, image_id) -> Sample:
        image = self._images[image_id]
        label_path = self.label_path(image)
        if not label_path.is_file():
            return broken_sample(self.name, image_id, image, "missing_annotation",
                                 f"label file not found: {label_path}")
        try:
            label = read_label(label_path)
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation", str(exc))
        instances, problems = extract(label, self.rule)
        return Sample(id=image_id, dataset=self.name, height=label.shape[0], width=label.shape[1],
                      instances=instances, image_path=image, problems=problems,
                      meta={"label_file": str(label_path)}, void_loader=void_of(label, self.rule))


def void_of(label, rule: LabelRule):
    """The ignore region of a label map: its ``rule.ignore`` values (e.g. DRAM's 255), or None."""
    if not rule.ignore:
        return None
    return lambda: np.isin(label, rule.ignore)


def open_labelmap(card: DatasetCard, root: Path) -> LabelMapDataset:
    layout = card.layout
    for key in ("images", "labels"):
        if key not in layout:
            raise SambenchError(f"dataset card {card.name}: format labelmap needs layout.{key}")
    return LabelMapDataset(card.name, root, layout["images"], layout["labels"],
                           LabelRule.from_layout(layout), stem_strip=layout.get("stem_strip", ""),
                           include=layout.get("include", ""), exclude=layout.get("exclude", ""))
