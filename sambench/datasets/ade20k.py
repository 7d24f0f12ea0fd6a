"""ADE20K full release: object and part masks (format ``ade20k``).

Per image ``ADE_val_XXXXXXXX.jpg`` the release (2016 and 2021 layouts alike) has
``<stem>_seg.png`` for objects and ``<stem>_parts_N.png`` for part level N. As the official
``loadAde20K`` decodes them: class = ``R // 10 * 256 + G``, instance = the B channel. An
instance is the pixels sharing one (class, B) pair with class ≠ 0 (0 is unlabelled). Object
ids are ``o<B>``, part ids ``p<N>-<B>``; a (class, B) pair under ``min_area`` is counted.
Layout keys: ``images`` (glob, default ``**/ADE_val_*.jpg``), ``part_levels`` to include
(``all`` or a list like ``[1]``; ``[]`` for objects only), ``min_area``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset, broken_sample, find_files, read_rgb_label
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


def decode_seg(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class map, instance map) of an ADE20K ``_seg``/``_parts`` image, as loadAde20K does."""
    return rgb[..., 0] // 10 * 256 + rgb[..., 1], rgb[..., 2]


class Ade20kDataset(IndexedDataset):
    def __init__(self, name: str, root: Path, images: str = "**/ADE_val_*.jpg",
                 part_levels="all", min_area: int = 0, unlabeled_is_void: bool = False):
        self.name, self.root, self.min_area = name, Path(root), min_area
        self.unlabeled_is_void = unlabeled_is_void  # class 0 pixels: the ignore region
        self.part_levels = part_levels
        files = find_files(self.root, images)
        if not files:
            raise SambenchError(f"dataset {name}: no images under {self.root} match {images!r}")
        self._images = {p.stem: p for p in files}
        self.image_ids = list(self._images)

    def _levels(self, image: Path) -> list[int]:
        found, level = [], 1
        while image.with_name(f"{image.stem}_parts_{level}.png").is_file():
            found.append(level)
            level += 1
        if self.part_levels == "all":
            return found
        return [lv for lv in found if lv in set(self.part_levels)]

    def sample(self, image_id) -> Sample:
        image = self._images[image_id]
        seg = image.with_name(f"{image.stem}_seg.png")
        try:
            classes, inst = decode_seg(read_rgb_label(seg))
        except SambenchError as exc:
            kind = "missing_annotation" if not seg.is_file() else "unreadable_annotation"
            return broken_sample(self.name, image_id, image, kind, str(exc))
        instances, problems = self._masks(classes, inst, "o")
        for level in self._levels(image):
            path = image.with_name(f"{image.stem}_parts_{level}.png")
            try:
                p_classes, p_inst = decode_seg(read_rgb_label(path))
            except SambenchError as exc:
                problems.append({"kind": "unreadable_annotation", "detail": str(exc)})
                continue
            if p_classes.shape != classes.shape:
                problems.append({"kind": "label_size", "detail": f"{path.name} differs in size from {seg.name}"})
                continue
            more, more_problems = self._masks(p_classes, p_inst, f"p{level}-", level)
            instances += more
            problems += more_problems
        void = (lambda: classes == 0) if self.unlabeled_is_void else None
        return Sample(id=image_id, dataset=self.name, height=classes.shape[0], width=classes.shape[1],
                      instances=instances, image_path=image, problems=problems, void_loader=void)

    def _masks(self, classes, inst, prefix: str, level: int = 0):
        instances, problems = [], []
        labelled = classes != 0
        pairs = np.unique(np.stack([classes[labelled], inst[labelled]]), axis=1).T
        for cls, b in ((int(c), int(b)) for c, b in pairs):
            mask = labelled & (classes == cls) & (inst == b)
            inst_id = f"{prefix}{b}" if np.sum(labelled & (inst == b) & (classes != cls)) == 0 else f"{prefix}{b}-{cls}"
            area = int(mask.sum())
            if area < self.min_area:
                problems.append({"kind": "too_small", "detail": f"mask {inst_id} ({area} px)"})
                continue
            instances.append(Instance(id=inst_id, rle=mask_codec.encode(mask), category=str(cls),
                                      category_id=cls, meta={"part_level": level}))
        return instances, problems


def open_ade20k(card: DatasetCard, root: Path) -> Ade20kDataset:
    layout = card.layout
    return Ade20kDataset(card.name, root, layout.get("images", "**/ADE_val_*.jpg"),
                         part_levels=layout.get("part_levels", "all"),
                         min_area=int(layout.get("min_area", 0)),
                         unlabeled_is_void=bool(layout.get("unlabeled_is_void", False)))
