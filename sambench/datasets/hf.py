"""Hugging Face datasets (format ``hf``), read with the ``datasets`` library.

Three sources, one reader:

- a Hub dataset, ``--dataset hf:REPO_ID[:CONFIG][@SPLIT]`` or a card whose ``layout.hf_dataset``
  names it (``config``, ``split`` and a pinned ``revision`` in the layout): ``load_dataset``
  with the user's cache, token and ``HF_HUB_OFFLINE``; ``--stream`` streams it instead;
- a folder written by ``Dataset.save_to_disk`` (``load_from_disk``);
- a folder of parquet files, e.g. a ``huggingface-cli download`` (``load_dataset("parquet")``,
  files matching ``layout.data_files``, default ``**/*.parquet``).

Images stay undecoded until a sample's image is asked for: rows are read as Arrow, so an
Image cell is its ``{"bytes", "path"}`` struct and :func:`decode_image` decodes it with PIL.
Column mapping (``layout``; the defaults are what ``hf:`` datasets without a card use):

- ``image`` (default ``image``): the image column
- exactly one annotation column: ``segmentation`` (default): per instance a COCO RLE
  (``{"size", "counts"}``) or polygon list; ``masks``: per instance a binary mask image;
  ``label``: one label-map image, turned into instances by ``rule`` (as ``labelmap``)
- ``id`` (default ``image_id`` if present, else the row number): sample ids
- ``instance_ids`` (default ``annotation_ids``), ``iscrowd`` (default ``iscrowd``),
  ``category_id`` (default ``category_id``): optional per-instance lists

A run records where the rows came from (``source`` in each results entry): the repository or
folder, config, split, requested revision, the ``datasets`` version and the table fingerprint.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset, find_files
from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import segmentation_rle
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.types import Instance, Sample

ANNOTATIONS = ("segmentation", "masks", "label")


def _datasets():
    try:
        import datasets
    except ImportError:
        raise SambenchError("Hugging Face datasets need the datasets library: "
                            "pip install 'sambench[datasets]'") from None
    return datasets


def streaming() -> bool:
    """``--stream`` (``SAMBENCH_STREAM=1``): Hub datasets are streamed, not downloaded whole."""
    return os.environ.get("SAMBENCH_STREAM", "") not in ("", "0")


def spec_card(spec: str) -> tuple[DatasetCard, Path]:
    """``REPO_ID[:CONFIG][@SPLIT]`` or a local folder (saved dataset / parquet files) as a card
    with the default column mapping, and the folder (``hf:REPO_ID`` when remote)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        card = DatasetCard(name=path.resolve().name, format="hf", title=f"Hugging Face dataset at {path}",
                           extraction="one instance per annotation of the default columns (docs/datasets.md)")
        return card, path.resolve()
    spec, _, split = spec.partition("@")
    repo, _, config = spec.partition(":")
    if not repo or repo.count("/") > 1:
        raise SambenchError(f"--dataset hf:{spec}: expected hf:REPO_ID[:CONFIG][@SPLIT] or hf:FOLDER")
    layout = {"hf_dataset": repo, **({"config": config} if config else {}), **({"split": split} if split else {})}
    name = "-".join([repo.split("/")[-1]] + [p for p in (config, split) if p])
    card = DatasetCard(name=name, format="hf", title=f"https://huggingface.co/datasets/{repo}", layout=layout,
                       source=f"https://huggingface.co/datasets/{repo}", split=split or "train",
                       extraction="one instance per annotation of the default columns (docs/datasets.md)")
    return card, Path(f"hf:{repo}")


def load(card: DatasetCard, root: Path):
    """The rows of ``card``'s dataset: a ``datasets.Dataset`` (or ``IterableDataset`` when
    streaming a Hub dataset), and its provenance."""
    datasets = _datasets()
    layout, split = card.layout, card.layout.get("split")
    source = {"loader": "datasets", "datasets_version": datasets.__version__}
    try:
        if Path(root).is_dir():
            source["path"] = str(root)
            if (root / "dataset_info.json").is_file() or (root / "dataset_dict.json").is_file():
                rows = datasets.load_from_disk(str(root))
                if isinstance(rows, datasets.DatasetDict):
                    rows = _pick_split(rows, split, card.name)
            else:
                files = find_files(root, layout.get("data_files", "**/*.parquet"))
                if not files:
                    raise SambenchError(f"dataset {card.name}: no saved dataset or parquet files under {root} "
                                        f"(looked for {layout.get('data_files', '**/*.parquet')!r})")
                rows = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        else:
            repo = layout["hf_dataset"]
            source.update(repo=repo, config=layout.get("config"), split=split or "train",
                          revision=layout.get("revision"))
            rows = datasets.load_dataset(repo, layout.get("config"), split=split or "train",
                                         revision=layout.get("revision"), streaming=streaming())
    except SambenchError:
        raise
    except Exception as exc:  # datasets raises many kinds (not found, offline, bad config/split)
        raise SambenchError(f"dataset {card.name}: cannot load {source.get('repo') or root}: "
                            f"{type(exc).__name__}: {exc}") from None
    source["fingerprint"] = getattr(rows, "_fingerprint", None)
    return rows, source


def _pick_split(rows, split: Optional[str], name: str):
    if split is None and len(rows) == 1:
        return next(iter(rows.values()))
    if split not in rows:
        raise SambenchError(f"dataset {name}: split {split!r} not among {sorted(rows)} (name one with @SPLIT "
                            "or layout.split)")
    return rows[split]


def decode_image(cell, root: Optional[Path], mode: Optional[str] = None) -> np.ndarray:
    """An Image-feature cell (``{"bytes", "path"}``) as an array (``mode`` "RGB" or raw)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(cell, dict):
        raise SambenchError(f"expected an Image feature (bytes/path), found {type(cell).__name__}")
    try:
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else Path(root or ".") / cell["path"]
        with Image.open(source) as im:
            im.load()
            return np.asarray(im.convert(mode) if mode else im)
    except (UnidentifiedImageError, OSError, KeyError, TypeError, ValueError) as exc:
        raise SambenchError(f"undecodable image cell ({cell.get('path') or 'inline bytes'}): {exc}") from None


class _Columns:
    """The card's column mapping checked against the dataset's columns."""

    def __init__(self, name: str, layout: dict, columns: list[str]):
        self.image = layout.get("image", "image")
        given = [key for key in ANNOTATIONS if key in layout]
        if len(given) > 1:
            raise SambenchError(f"dataset card {name}: give one of layout.{', layout.'.join(ANNOTATIONS)}")
        if given:
            self.kind, self.annotations = given[0], layout[given[0]]
        else:
            found = [key for key in ANNOTATIONS if key in columns]
            if not found:
                raise SambenchError(f"dataset {name}: no annotation column ({', '.join(ANNOTATIONS)}) among "
                                    f"{sorted(columns)}; map one in a card's layout")
            self.kind = self.annotations = found[0]
        optional = {"id": "image_id", "instance_ids": "annotation_ids", "iscrowd": "iscrowd",
                    "category_id": "category_id"}
        for key, default in optional.items():
            setattr(self, key, layout.get(key, default if default in columns else None))
        wanted = {self.image, self.annotations} | {c for c in (self.id, self.instance_ids, self.iscrowd,
                                                                self.category_id) if c}
        if not wanted <= set(columns):
            raise SambenchError(f"dataset {name}: missing columns {sorted(wanted - set(columns))} "
                                f"(has {sorted(columns)})")


class _Rows:
    """Turns one raw row (Image cells undecoded) into a Sample."""

    def __init__(self, name: str, layout: dict, columns: list[str], root: Optional[Path]):
        self.name, self.root = name, root
        self.cols = _Columns(name, layout, columns)
        self.rule = LabelRule.from_layout(layout) if self.cols.kind == "label" else None

    def sample_id(self, row: dict, index: int) -> str:
        return str(row[self.cols.id]) if self.cols.id else str(index)

    def sample(self, row: dict, sample_id: str) -> Sample:
        cell, root = row[self.cols.image], self.root
        try:
            instances, problems, (height, width) = getattr(self, f"_{self.cols.kind}")(row)
        except SambenchError as exc:
            instances, problems, height, width = [], [{"kind": "unreadable_annotation", "detail": str(exc)}], 0, 0
        return Sample(id=sample_id, dataset=self.name, height=height, width=width, instances=instances,
                      image_loader=lambda: decode_image(cell, root, "RGB"), problems=problems)

    def _image_size(self, row: dict) -> tuple[int, int]:
        from PIL import Image

        cell = row[self.cols.image]
        try:
            source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else Path(self.root or ".") / cell["path"]
            with Image.open(source) as im:
                return im.height, im.width
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise SambenchError(f"unreadable image cell: {exc}") from None

    def _instance_meta(self, row: dict, k: int) -> dict:
        ids, crowd, cats = (row.get(c) if c else None for c in (self.cols.instance_ids, self.cols.iscrowd,
                                                                  self.cols.category_id))
        return {"id": str(ids[k]) if ids else str(k), "iscrowd": bool(crowd[k]) if crowd else False,
                "category_id": int(cats[k]) if cats else 0}

    def _segmentation(self, row: dict):
        """COCO RLE or polygons per instance, read as the COCO path reads them."""
        height, width = self._image_size(row)
        instances, problems = [], []
        for k, seg in enumerate(row[self.cols.annotations] or []):
            meta = self._instance_meta(row, k)
            rle, problem = segmentation_rle(seg, height, width, f"annotation {meta['id']}")
            if problem:
                problems.append(problem)
                continue
            instances.append(Instance(id=meta["id"], rle=rle, category=str(meta["category_id"]),
                                      category_id=meta["category_id"], iscrowd=meta["iscrowd"]))
        return instances, problems, (height, width)

    def _masks(self, row: dict):
        """One instance per mask image; the first mask's size is the sample's."""
        instances, problems, size = [], [], None
        for k, mask_cell in enumerate(row[self.cols.annotations] or []):
            meta = self._instance_meta(row, k)
            mask = decode_image(mask_cell, self.root)
            mask = (mask.max(axis=-1) if mask.ndim == 3 else mask) > 0
            size = size or mask.shape
            if mask.shape != size:
                problems.append({"kind": "label_size", "detail": f"mask {k} is {mask.shape}, mask 0 is {size}"})
            elif not mask.any():
                problems.append({"kind": "empty_mask", "detail": f"mask {meta['id']}"})
            else:
                instances.append(Instance(id=meta["id"], rle=mask_codec.encode(mask), iscrowd=meta["iscrowd"],
                                          category_id=meta["category_id"], category=str(meta["category_id"])))
        return instances, problems, size or self._image_size(row)

    def _label(self, row: dict):
        label = decode_image(row[self.cols.annotations], self.root).astype(np.int64)
        if label.ndim == 3:
            label = (label[..., 0] << 16) | (label[..., 1] << 8) | label[..., 2]
        instances, problems = extract(label, self.rule)
        return instances, problems, label.shape


class HFDataset(IndexedDataset):
    """A map-style ``datasets.Dataset`` as samples, one row read (as Arrow) per sample."""

    def __init__(self, name: str, rows, source: dict, layout: dict, root: Optional[Path]):
        self.name, self.source = name, source
        self._arrow = rows.with_format("arrow")
        self._rows = _Rows(name, layout, rows.column_names, root)
        ids = rows.with_format(None)[self._rows.cols.id] if self._rows.cols.id else range(len(rows))
        self._index = {str(i): k for k, i in enumerate(ids)}
        if len(self._index) != len(rows):
            raise SambenchError(f"dataset {name}: column {self._rows.cols.id!r} has repeated ids")
        self.image_ids = list(self._index)

    def sample(self, image_id) -> Sample:
        row = self._arrow[self._index[str(image_id)]].to_pylist()[0]
        return self._rows.sample(row, str(image_id))


class HFStream:
    """A streamed Hub dataset: samples in order, nothing indexed (no subsampling, no sample lists)."""

    def __init__(self, name: str, rows, source: dict, layout: dict):
        self.name, self.source = name, source
        self._stream = rows.decode(False)
        columns = list(rows.features) if rows.features else list(next(iter(self._stream.take(1)), {}))
        self._rows = _Rows(name, layout, columns, None)  # (features unknown up front: from the first row)
        split = (rows.info.splits or {}).get(layout.get("split") or "train")
        self._length = split.num_examples if split is not None and split.num_examples else None

    def __len__(self) -> int:
        return self._length if self._length is not None else sys.maxsize  # unknown: read to the end

    def __iter__(self):
        for index, row in enumerate(self._stream):
            yield self._rows.sample(row, self._rows.sample_id(row, index))


def open_hf(card: DatasetCard, root: Path):
    rows, source = load(card, Path(root))
    local = Path(root).is_dir()
    if not local and streaming():
        return HFStream(card.name, rows, source, card.layout)
    return HFDataset(card.name, rows, source, card.layout, Path(root) if local else None)
