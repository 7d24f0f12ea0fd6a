"""What every format parser shares: the FORMATS registry, the indexed-dataset shape, parts.

A format is one module with an opener ``(card, root) -> dataset`` and one line below.

A parser builds a cheap index of image ids when opened and a :class:`Sample` only when one is
asked for, so a dataset of 10k masks never holds all of them decoded; sampling, sample lists
and ``datasets check`` rely on exactly this shape (``image_ids`` + ``sample(id)``).
Helpers here read label images and image headers with one clear error when a file is missing
or corrupt.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from sambench import validate
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError
from sambench.registry import Registry
from sambench.types import Sample

# format name -> opener(card, root) -> dataset (iterable of Sample with __len__)
FORMATS: Registry[Callable[[DatasetCard, Path], Iterable[Sample]]] = Registry("dataset format")
FORMATS.register("coco", "sambench.datasets.coco:open_coco", "COCO instances JSON + images")
FORMATS.register("lvis", "sambench.datasets.lvis:open_lvis", "LVIS v0.5 / v1 instances JSON")
FORMATS.register("ade20k", "sambench.datasets.ade20k:open_ade20k", "ADE20K full release: object and part masks")
FORMATS.register("bbbc038", "sambench.datasets.bbbc038:open_bbbc038", "BBBC038 nuclei, one PNG per mask")
FORMATS.register("bsds", "sambench.datasets.bsds:open_bsds", "BSDS500 images + .mat boundaries")
FORMATS.register("cityscapes", "sambench.datasets.cityscapes:open_cityscapes", "Cityscapes gtFine, panoptic")
FORMATS.register("hf", "sambench.datasets.hf:open_hf", "Hugging Face datasets (Hub or local folder)")
FORMATS.register("hypersim", "sambench.datasets.hypersim:open_hypersim", "Hypersim per-frame HDF5 instance maps")
FORMATS.register("labelmap", "sambench.datasets.labelmap:open_labelmap", "images with one label-map PNG each")
FORMATS.register("visor", "sambench.datasets.polygons:open_visor", "VISOR polygons painted in order")
FORMATS.register("woodscape", "sambench.datasets.polygons:open_woodscape", "WoodScape polygons painted in order")
FORMATS.register("via", "sambench.datasets.polygons:open_via", "VGG Image Annotator polygons")
FORMATS.register("refcoco", "sambench.datasets.refcoco:open_refcoco", "RefCOCO / RefCOCO+ / RefCOCOg (refer layout)")
FORMATS.register("saco", "sambench.datasets.saco:open_saco", "SA-Co concept pairs (SAM 3), COCO-style JSON")
FORMATS.register("sa1b", "sambench.datasets.sa1b:open_sa1b", "SA-1B: one JSON per image beside its JPEG")
FORMATS.register("ytvis", "sambench.datasets.ytvis:open_ytvis", "YouTube-VIS-style video instances, frames as images")

# Problem kinds that mean a file is missing or broken (``datasets check`` reports them as
# errors); every other kind is an annotation skipped by rule (empty, too small, crowd, ...).
BROKEN = {"missing_annotation", "unreadable_annotation", "label_size", "missing_image",
          "bad_segmentation", "bad_image_size", "duplicate_image_id", "orphan_annotation"}


class IndexedDataset:
    """Image ids known up front (``image_ids``), each Sample built on demand (``sample``)."""

    name: str = ""
    image_ids: list = []
    sample_list = None  # the SampleList a selection was made from (Selected), else None
    problems: list = []  # of the dataset's files, not of one image (e.g. a duplicated image id)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[Sample]:
        for image_id in self.image_ids:
            yield self.sample(image_id)

    def sample(self, image_id) -> Sample:
        raise NotImplementedError


class Concat(IndexedDataset):
    """Several parts (sub-datasets, subsets, splits) as one; ids become ``part/id``."""

    def __init__(self, name: str, parts: list[tuple[str, IndexedDataset]]):
        self.name = name
        self._lookup = {f"{part}/{i}": (ds, i) for part, ds in parts for i in ds.image_ids}
        self.problems = [p for _, ds in parts for p in getattr(ds, "problems", [])]
        self.image_ids = list(self._lookup)

    def sample(self, image_id) -> Sample:
        dataset, native = self._lookup[image_id]
        sample = dataset.sample(native)
        sample.id = image_id
        sample.dataset = self.name
        return sample


def open_format(card: DatasetCard, root: Path):
    """Open ``root`` with the card's format; ``layout.parts`` makes one dataset of several.

    ``parts`` is a glob of sub-folders (each opened with the rest of the layout), or a list
    of layout overrides each with a ``name`` (e.g. one annotation file per split).
    """
    opener = FORMATS.get(card.format)
    parts = card.layout.get("parts")
    if parts is None:
        return opener(card, root)
    base = {k: v for k, v in card.layout.items() if k != "parts"}
    if isinstance(parts, str):
        folders = sorted(p for p in root.glob(parts) if p.is_dir())
        if not folders:
            raise SambenchError(f"dataset {card.name}: no folder under {root} matches {parts!r}")
        opened = [(p.relative_to(root).as_posix(), opener(replace(card, layout=base), p))
                  for p in folders]
    else:
        opened = []
        for part in parts:
            layout = {**base, **{k: v for k, v in part.items() if k != "name"}}
            opened.append((part["name"], opener(replace(card, layout=layout), root)))
    return Concat(card.name, opened)


def find_files(root: Path, pattern: str, include: str = "", exclude: str = "") -> list[Path]:
    """Files under ``root`` matching a glob, filtered by regexes on the relative path, sorted."""
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if include:
        files = [p for p in files if re.search(include, p.relative_to(root).as_posix())]
    if exclude:
        files = [p for p in files if not re.search(exclude, p.relative_to(root).as_posix())]
    return files


def read_label(path: Path) -> np.ndarray:
    """A label/instance image as a 2-D integer array, values exactly as stored.

    Palette PNGs give their indices, 16-bit PNGs their 16-bit values, and RGB(A) images are
    packed as ``R*65536 + G*256 + B`` so every colour is one value.
    """
    from PIL import UnidentifiedImageError

    if not validate.is_file(path):
        raise SambenchError(f"label file not found: {path}")
    try:
        with validate.open_image(path, "label file") as im:
            im.load()
            if im.mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB")).astype(np.int64)
                return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            if im.mode not in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
                im = im.convert("L")
            return np.asarray(im).astype(np.int64)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SambenchError(f"unreadable label file {path}: {exc}") from None
    except MemoryError:  # a corrupt chunk length asks PIL to read gigabytes
        raise SambenchError(f"unreadable label file {path}: it declares more data than fits in memory") from None


def read_rgb_label(path: Path) -> np.ndarray:
    """A colour-coded label image as ``(H, W, 3)`` int array (ADE20K's encoding needs channels)."""
    packed = read_label(path)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the image header only (no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    if not validate.is_file(path):
        raise SambenchError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SambenchError(f"unreadable image {path}: {exc}") from None  # header only: PIL's limit is enough


def broken_sample(dataset: str, sample_id: str, image_path: Path, kind: str, detail: str) -> Sample:
    """A sample whose annotation could not be read: no instances, one problem, size from the
    image header when the image itself is readable (0x0 otherwise)."""
    try:
        height, width = image_size(image_path)
    except SambenchError:
        height, width = 0, 0
    return Sample(id=sample_id, dataset=dataset, height=height, width=width, instances=[],
                  image_path=image_path, problems=[{"kind": kind, "detail": detail}])
