"""BSDS500 (format ``bsds``): ``groundTruth/<split>/<id>.mat`` + ``images/<split>/<id>.jpg``.

Each ``.mat`` holds a cell ``groundTruth`` with one struct per annotator, fields
``Segmentation`` (a label map, segments numbered from 1) and ``Boundaries`` (a thin boundary
map), read with scipy. The edge task uses the boundaries, kept per annotator in
``Sample.meta["boundaries"]`` (bool arrays: one sample's worth, built on demand); every
annotator's segment is also an instance (id ``a<annotator>-<segment>``) for mask tasks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sambench.datasets.base import FORMATS, IndexedDataset, broken_sample
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.types import Sample


def read_ground_truth(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(segmentation, boundaries), ...]`` per annotator from a BSDS ``.mat`` file."""
    from scipy.io import loadmat

    if not path.is_file():
        raise SambenchError(f"annotation file not found: {path}")
    try:
        cells = loadmat(str(path))["groundTruth"]
        out = []
        for k in range(cells.shape[1]):
            entry = cells[0, k]
            out.append((np.asarray(entry["Segmentation"][0, 0]).astype(np.int64),
                        np.asarray(entry["Boundaries"][0, 0]).astype(bool)))
    except (ValueError, KeyError, IndexError, TypeError, OSError) as exc:
        raise SambenchError(f"unreadable BSDS ground truth {path}: {exc!r}") from None
    if not out:
        raise SambenchError(f"BSDS ground truth {path} has no annotator")
    return out


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
            annotators = read_ground_truth(self._gt_dir / f"{image_id}.mat")
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation", str(exc))
        height, width = annotators[0][0].shape
        instances, problems = [], []
        for k, (seg, bnd) in enumerate(annotators):
            if seg.shape != (height, width) or bnd.shape != (height, width):
                problems.append({"kind": "label_size", "detail": f"annotator {k} of {image_id} has another size"})
                continue
            found, _ = extract(seg, LabelRule(mode="ids"), prefix=f"a{k}-")
            instances += found
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_path=image, problems=problems,
                      meta={"boundaries": [b for s, b in annotators if b.shape == (height, width)]})


@FORMATS.register("bsds")
def open_bsds(card: DatasetCard, root: Path) -> BsdsDataset:
    return BsdsDataset(card.name, root, card.layout.get("split", "test"))
