"""Hugging Face image-segmentation datasets stored as parquet (format ``hf``).

A Hub dataset is a set of parquet files whose image columns hold the ``datasets`` Image
feature (a struct of ``bytes`` and ``path``). We read those files with pyarrow, one row
group at a time, instead of through the ``datasets`` library: it needs no conversion into
an Arrow cache, never touches the network, and pyarrow is the one dependency both share
(``datasets`` pulls in a dozen more). The files come from the card's folder under
``--data-root`` (e.g. ``huggingface-cli download --repo-type dataset NAME --local-dir DIR``)
or, when that folder is absent, from the user's Hub cache snapshot of ``layout.hf_dataset``
(:func:`hub_snapshot`). Layout keys:

- ``data_files``: glob of parquet files under the root (default ``**/*.parquet``)
- ``image``: the image column (default ``image``)
- ``label``: a label-map image column, turned into instances by ``rule`` (as ``labelmap``)
- ``masks``: or a column holding a list of binary mask images, one instance each
- ``id``: a column with sample ids (default: ``<file stem>/<row>``)
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset, find_files
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SambenchError("reading parquet (Hugging Face) datasets needs pyarrow: pip install pyarrow") from None
    return pq


def hub_snapshot(repo_id: str) -> Optional[Path]:
    """The user's cached snapshot of a Hub dataset (huggingface_hub cache layout), or None."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(Path.home(), ".cache", "huggingface")), "hub")
    folder = Path(cache) / f"datasets--{repo_id.replace('/', '--')}"
    ref = folder / "refs" / "main"
    if ref.is_file() and (folder / "snapshots" / ref.read_text().strip()).is_dir():
        return folder / "snapshots" / ref.read_text().strip()
    snapshots = sorted((folder / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
    return snapshots[-1] if snapshots else None


def decode_image(cell, root: Path, mode: Optional[str] = None) -> np.ndarray:
    """An Image-feature cell (``{"bytes", "path"}``) as an array (``mode`` "RGB" or raw)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(cell, dict):
        raise SambenchError(f"expected an Image feature (bytes/path), found {type(cell).__name__}")
    try:
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else root / cell["path"]
        with Image.open(source) as im:
            im.load()
            return np.asarray(im.convert(mode) if mode else im)
    except (UnidentifiedImageError, OSError, KeyError, TypeError, ValueError) as exc:
        raise SambenchError(f"undecodable image cell ({cell.get('path') or 'inline bytes'}): {exc}") from None


class ParquetDataset(IndexedDataset):
    """Rows of parquet files as samples, read one row group at a time (one group cached)."""

    def __init__(self, name: str, root: Path, layout: dict):
        pq = _pyarrow()
        self.name, self.root = name, Path(root)
        self.image_col = layout.get("image", "image")
        self.label_col, self.masks_col = layout.get("label"), layout.get("masks")
        if bool(self.label_col) == bool(self.masks_col):
            raise SambenchError(f"dataset card {name}: format hf needs exactly one of layout.label, layout.masks")
        self.rule = LabelRule.from_layout(layout)
        files = find_files(self.root, layout.get("data_files", "**/*.parquet"))
        if not files:
            raise SambenchError(f"dataset {name}: no parquet files under {self.root} "
                                f"match {layout.get('data_files', '**/*.parquet')!r}")
        self._rows: dict[str, tuple[Path, int, int]] = {}
        for path in files:
            try:
                meta = pq.ParquetFile(path)
            except Exception as exc:  # pyarrow raises several types for a corrupt file
                raise SambenchError(f"unreadable parquet file {path}: {exc}") from None
            columns = set(meta.schema_arrow.names)
            wanted = {self.image_col, self.label_col or self.masks_col} | ({layout["id"]} if "id" in layout else set())
            if not wanted <= columns:
                raise SambenchError(f"{path}: missing columns {sorted(wanted - columns)} (has {sorted(columns)})")
            ids = meta.read(columns=[layout["id"]]).column(0).to_pylist() if "id" in layout else None
            row = 0
            for group in range(meta.num_row_groups):
                for k in range(meta.metadata.row_group(group).num_rows):
                    key = str(ids[row]) if ids else f"{path.relative_to(self.root).with_suffix('').as_posix()}/{row}"
                    self._rows[key] = (path, group, k)
                    row += 1
        self.image_ids = list(self._rows)
        self._cached: tuple = (None, None, None)

    def _row(self, image_id) -> dict:
        path, group, k = self._rows[image_id]
        if self._cached[:2] != (path, group):
            columns = [self.image_col, self.label_col or self.masks_col]
            table = _pyarrow().ParquetFile(path).read_row_group(group, columns=columns)
            self._cached = (path, group, table)
        return {name: self._cached[2].column(name)[k].as_py() for name in self._cached[2].column_names}

    def sample(self, image_id) -> Sample:
        row = self._row(image_id)
        cell, root = row[self.image_col], self.root
        try:
            if self.label_col:
                label = decode_image(row[self.label_col], root).astype(np.int64)
                if label.ndim == 3:
                    label = (label[..., 0] << 16) | (label[..., 1] << 8) | label[..., 2]
                instances, problems = extract(label, self.rule)
                height, width = label.shape
            else:
                instances, problems, (height, width) = self._mask_list(row[self.masks_col] or [], cell)
        except SambenchError as exc:
            instances, problems, height, width = [], [{"kind": "unreadable_annotation", "detail": str(exc)}], 0, 0
        return Sample(id=image_id, dataset=self.name, height=height, width=width,
                      instances=instances, image_loader=lambda: decode_image(cell, root, "RGB"),
                      problems=problems)

    def _mask_list(self, cells: list, image_cell) -> tuple[list[Instance], list[dict], tuple]:
        """One instance per mask image; the first mask's size is the sample's."""
        instances, problems, size = [], [], None
        for k, mask_cell in enumerate(cells):
            mask = decode_image(mask_cell, self.root)
            mask = (mask.max(axis=-1) if mask.ndim == 3 else mask) > 0
            size = size or mask.shape
            if mask.shape != size:
                problems.append({"kind": "label_size", "detail": f"mask {k} is {mask.shape}, mask 0 is {size}"})
            elif not mask.any():
                problems.append({"kind": "empty_mask", "detail": f"mask {k}"})
            else:
                instances.append(Instance(id=str(k), rle=mask_codec.encode(mask)))
        return instances, problems, size or decode_image(image_cell, self.root).shape[:2]


def open_hf(card: DatasetCard, root: Path) -> ParquetDataset:
    return ParquetDataset(card.name, root, card.layout)
