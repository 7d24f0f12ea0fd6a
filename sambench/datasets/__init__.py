"""Datasets: cards (what a dataset is) + formats (how to parse it) → an iterable of Samples.

A dataset is named on the command line as ``NAME`` (a card; its folder found under
``--data-root`` or, for bundled synthetic data, generated into the cache), ``NAME=ROOT``
(a card at an explicit folder) or a path to a COCO-style folder (no card needed).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from sambench.datasets.cards import DatasetCard, load_cards
from sambench.datasets.coco import CocoDataset, find_coco_files
from sambench.errors import SambenchError
from sambench.registry import Registry
from sambench.types import Sample

# format name -> opener(card, root) -> dataset (iterable of Sample with __len__)
FORMATS: Registry[Callable[[DatasetCard, Path], Iterable[Sample]]] = Registry("dataset format")


@FORMATS.register("coco")
def _open_coco(card: DatasetCard, root: Path) -> CocoDataset:
    layout = card.layout
    if "annotations" in layout:
        ann, images = root / layout["annotations"], root / layout.get("images", "")
    else:
        ann, images = find_coco_files(root)
    return CocoDataset(card.name, ann, images, min_area=int(layout.get("min_area", 0)),
                       include_crowd=bool(layout.get("include_crowd", True)))


@dataclass
class DatasetRef:
    """A dataset as named by the user, resolved to a card and a root folder."""

    name: str
    card: DatasetCard
    root: Path

    def open(self):
        if not self.root.exists():
            raise SambenchError(f"dataset {self.name}: folder not found: {self.root}")
        return FORMATS.get(self.card.format)(self.card, self.root)


def cache_dir() -> Path:
    return Path(os.environ.get("SAMBENCH_CACHE", Path.home() / ".cache" / "sambench"))


def resolve(spec: str, data_root: Optional[str] = None) -> DatasetRef:
    """Turn ``NAME``, ``NAME=ROOT`` or a folder path into a :class:`DatasetRef`."""
    cards = load_cards()
    name, sep, root = spec.partition("=")
    if not sep and name not in cards and Path(spec).is_dir():
        path = Path(spec).resolve()
        card = DatasetCard(name=path.name, format="coco", title=path.name,
                           extraction="COCO instances as annotated")
        return DatasetRef(path.name, card, path)
    card = cards.get(name)
    if sep:
        return DatasetRef(name, card, Path(root).expanduser())
    if card.synthetic is not None:
        return DatasetRef(name, card, ensure_synthetic(card))
    if data_root is None:
        raise SambenchError(f"dataset {name}: give its folder as {name}=DIR or pass --data-root")
    return DatasetRef(name, card, Path(data_root).expanduser() / (card.dirname or name))


def ensure_synthetic(card: DatasetCard) -> Path:
    """Generate a bundled synthetic dataset into the cache once (deterministic from its card)."""
    from sambench.datasets import synth

    settings = dict(card.synthetic or {})
    root = cache_dir() / "data" / f"{card.name}-v{synth.GENERATOR_VERSION}-{synth.settings_key(settings)}"
    if not (root / "annotations.json").is_file():
        synth.write_dataset(root, name=card.name, **settings)
    return root


__all__ = ["FORMATS", "DatasetCard", "DatasetRef", "load_cards", "resolve", "CocoDataset"]
