"""BBBC038v1 / Kaggle DSB2018 ``stage1_train`` (format ``bbbc038``).

The release has a folder per image, ``<id>/images/<id>.png``, and one binary PNG per
nucleus in ``<id>/masks/`` (docs/datasets.md). Each mask file is one instance,
named by its file stem; a mask file of the wrong size or with no foreground is a counted
problem, an unreadable one a broken annotation.
"""
from __future__ import annotations

from pathlib import Path

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset, broken_sample, image_size, read_label
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


class Bbbc038Dataset(IndexedDataset):
    def __init__(self, name: str, root: Path):
        self.name, self.root = name, Path(root)
        self.image_ids = sorted(p.name for p in self.root.iterdir()
                                if (p / "images").is_dir()) if self.root.is_dir() else []
        if not self.image_ids:
            raise SambenchError(f"dataset {name}: no <id>/images/ folders under {self.root}")

    def sample(self, image_id) -> Sample:
        folder = self.root / image_id
        image = folder / "images" / f"{image_id}.png"
        try:
            height, width = image_size(image)
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "missing_image", str(exc))
        instances, problems = [], []
        for path in sorted((folder / "masks").glob("*.png")):
            try:
                mask = read_label(path) > 0
            except SambenchError as exc:
                problems.append({"kind": "unreadable_annotation", "detail": str(exc)})
                continue
            if mask.shape != (height, width):
                problems.append({"kind": "label_size", "detail": f"{path} is {mask.shape[1]}x"
                                 f"{mask.shape[0]}, image is {width}x{height}"})
            elif not mask.any():
                problems.append({"kind": "empty_mask", "detail": f"mask {path.stem}"})
            else:
                instances.append(Instance(id=path.stem, rle=mask_codec.encode(mask),
                                          category="nucleus", category_id=1))
        if not instances and not problems:
            problems.append({"kind": "missing_annotation", "detail": f"no mask files in {folder / 'masks'}"})
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_path=image, problems=problems)


def open_bbbc038(card: DatasetCard, root: Path) -> Bbbc038Dataset:
    return Bbbc038Dataset(card.name, root)
