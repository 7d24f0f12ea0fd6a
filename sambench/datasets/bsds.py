"""BSDS500 (format ``bsds``): ``groundTruth/<split>/<id>.mat`` + ``images/<split>/<id>.jpg``.

Each ``.mat`` holds a cell ``groundTruth`` with one struct per annotator, fields
``Segmentation`` (a label map, segments numbered from 1) and ``Boundaries`` (a thin boundary
map), read with scipy once :mod:`sambench.matfile` has checked the file's structure (a corrupt
file is a counted ``unreadable_annotation``, never a crash). The edge task uses the boundaries,
kept per annotator in ``Sample.meta["boundaries"]`` (bool arrays: one sample's worth, built on
demand); every annotator's segment is also an instance (id ``a<annotator>-<segment>``) for mask
tasks.
"""
from __future__ import annotations

from pathlib import Path

from sambench.datasets.base import IndexedDataset, broken_sample
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.metrics.bsds import read_annotators
from sambench.types import Sample


class BsdsDataset(IndexedDataset):
    def __init__(self, name: str, root: Path, split: str = "test"):
        self.name, self.root, self.split = name, Path(root), split
        self._gt_dir = self.root / "groundTruth" / split
        self.image_ids = sorted(p.stem for p in self._gt_dir.glob("*.mat"))
        if not self.image_ids:
            raise SambenchError(f"dataset {name}: no groundTruth/{split}/*.mat under {self.root}")

    def sample(self, image_id) -> Sample:
        image = self.root / "images" / self.split / f"{image_id}.jpg"
        try:
            annotators = read_annotators(self._gt_dir / f"{image_id}.mat")
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation", str(exc))
        height, width = annotators[0][1].shape
        instances, problems = [], []
        for k, (seg, bnd) in enumerate(annotators):
            if bnd.shape != (height, width):
                problems.append({"kind": "label_size", "detail": f"annotator {k} of {image_id} has another size"})
                continue
            if seg is None:
                problems.append({"kind": "no_segmentation", "detail": f"annotator {k} of {image_id} has "
                                 "Boundaries only: no masks from it"})
                continue
            found, _ = extract(seg, LabelRule(mode="ids"), prefix=f"a{k}-")
            instances += found
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_path=image, problems=problems,
                      meta={"boundaries": [b for s, b in annotators if b.shape == (height, width)]})


def open_bsds(card: DatasetCard, root: Path) -> BsdsDataset:
    return BsdsDataset(card.name, root, card.layout.get("split", "test"))
