"""Referring expressions: RefCOCO / RefCOCO+ / RefCOCOg in the ``refer`` toolkit's layout.

A folder holds COCO ``instances.json`` and the refs list (``refs(unc).p``, ``refs(umd).p``,
``refs(google).p``); images are COCO train2014. Each ref names one annotation (``ann_id``), its
image, its ``split`` and ``sentences`` (``raw`` text, and the tokenised ``sent``). A sample is
an image of the chosen split with *all* its COCO annotations as instances (so chance levels
and point prompts see every object); the referred ones carry their expressions in
``Instance.meta["expressions"]`` (``raw``, else ``sent``; every sentence of every ref to that
annotation) and ``meta["ref_ids"]``.

The refs list is read from, in this order: ``<refs>.json`` (a JSON list of the refs, or
``{"refs": [...]}``), ``<refs>.parquet`` (one row per ref, the same fields; pandas + pyarrow),
or the original pickle ``<refs>.p``. Pickles can run code when loaded, so the pickle is read
by :class:`PlainUnpickler`, which refuses every class and global: only plain containers,
strings and numbers load (the released refs files are exactly that). Python 2 byte strings in
those files are decoded as UTF-8.
"""
from __future__ import annotations

import io
import json
import logging
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from sambench.datasets.base import IndexedDataset
from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import CocoDataset
from sambench.errors import SambenchError
from sambench.types import Sample

log = logging.getLogger("sambench")

REF_SUFFIXES = (".json", ".parquet", ".p", ".pkl", ".pickle")


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that resolves no class or global at all, so loading cannot run code:
    dicts, lists, tuples, strings, bytes, numbers, booleans and None only."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it references {module}.{name}; only plain types are read from pickles")


def load_plain_pickle(path: Path) -> Any:
    """A pickle of plain types (see :class:`PlainUnpickler`); bytes decoded as UTF-8 text."""
    try:
        data = PlainUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise SambenchError(f"refusing to load {path}: {exc} (export the refs to JSON if this is "
                            "a trusted file that holds other objects)") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, OSError) as exc:
        raise SambenchError(f"unreadable pickle {path}: {type(exc).__name__}: {exc}") from None
    return _text(data)


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return value


def find_refs_file(folder: Path, stem: str) -> Path:
    """``<stem>.json``, ``.parquet`` or the pickle, first found in that order (or ``stem`` itself)."""
    direct = folder / stem
    if direct.suffix in REF_SUFFIXES and direct.is_file():
        return direct
    for suffix in REF_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise SambenchError(f"refs file not found: {folder}/{stem}{{{','.join(REF_SUFFIXES)}}}")


def load_refs(path: Path) -> list[dict]:
    """The refs list of a JSON, parquet or (plain-type) pickle file."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SambenchError(f"malformed JSON in {path}: {exc}") from None
        if isinstance(data, dict) and "refs" in data:
            data = data["refs"]
    elif path.suffix == ".parquet":
        try:
            import pandas as pd

            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise SambenchError(f"reading {path} needs pyarrow: pip install 'sambench[datasets]' ({exc})") from None
        except (OSError, ValueError) as exc:
            raise SambenchError(f"unreadable parquet file {path}: {exc}") from None
        data = [_plain(row) for row in frame.to_dict(orient="records")]
    else:
        data = load_plain_pickle(path)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SambenchError(f"{path}: expected a list of refs (dicts with ref_id, ann_id, image_id, "
                            "split, sentences)")
    return data


def _plain(value: Any) -> Any:
    """numpy arrays and scalars from a parquet row → lists and Python numbers."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def ref_sentences(ref: dict) -> list[str]:
    """The texts of a ref: each sentence's ``raw`` (else ``sent``); plain strings as they are."""
    out = []
    for sentence in ref.get("sentences") or []:
        text = sentence if isinstance(sentence, str) else (sentence.get("raw") or sentence.get("sent"))
        if isinstance(text, str) and text.strip():
            out.append(text.strip())
    return out


class RefCocoDataset(IndexedDataset):
    """Images of one split that have refs; instances are every COCO annotation of the image."""

    def __init__(self, name: str, annotation_file: Path, image_dir: Path, refs_file: Path,
                 split: Optional[str] = None, include_crowd: bool = True):
        self.name = name
        self.coco = CocoDataset(name, annotation_file, image_dir, include_crowd=include_crowd)
        self.annotation_file = self.coco.annotation_file
        self.images, self.categories = self.coco.images, self.coco.categories
        self.refs_file = Path(refs_file)
        refs = load_refs(self.refs_file)
        self.split = split
        self.expressions: dict[str, list[str]] = defaultdict(list)  # by annotation id (as a string)
        self.ref_ids: dict[str, list] = defaultdict(list)
        self.problems: dict[Any, list[dict]] = defaultdict(list)
        known_anns = {str(ann.get("id")): image_id for image_id, anns in self.coco._anns.items() for ann in anns}
        images, unmatched = set(), []
        for i, ref in enumerate(refs):
            missing = [k for k in ("ref_id", "ann_id", "image_id", "sentences") if k not in ref]
            if missing:
                raise SambenchError(f"{self.refs_file}: ref {i} lacks {', '.join(missing)}")
            if split is not None and ref.get("split") != split:
                continue
            image_id, ann_id = ref["image_id"], str(ref["ann_id"])
            if image_id not in self.images or known_anns.get(ann_id) != image_id:
                unmatched.append(str(ref["ref_id"]))
                continue
            sentences = ref_sentences(ref)
            if not sentences:
                self.problems[image_id].append({"kind": "no_phrase", "detail": f"ref {ref['ref_id']} has no sentences"})
                continue
            self.expressions[ann_id] += sentences
            self.ref_ids[ann_id].append(ref["ref_id"])
            images.add(image_id)
        if not images:
            raise SambenchError(f"{self.refs_file}: no usable refs for split {split!r} in {annotation_file}")
        self.unmatched_refs = len(unmatched)
        if unmatched:
            log.warning("%s: %d refs name an image or annotation that %s does not have (e.g. ref %s): "
                        "not scored", self.refs_file, len(unmatched), annotation_file, ", ".join(unmatched[:5]))
        self.image_ids = [i for i in self.coco.image_ids if i in images]
        self.coco.image_ids = self.image_ids

    def sample(self, image_id) -> Sample:
        sample = self.coco.sample(image_id)
        for inst in sample.instances:
            if inst.id in self.expressions:
                inst.meta["expressions"] = list(self.expressions[inst.id])
                inst.meta["ref_ids"] = list(self.ref_ids[inst.id])
        sample.problems += self.problems.get(image_id, [])
        return sample


def open_refcoco(card: DatasetCard, root: Path) -> RefCocoDataset:
    layout = card.layout
    annotations = root / layout.get("annotations", "instances.json")
    refs = find_refs_file(root, layout.get("refs", "refs"))
    return RefCocoDataset(card.name, annotations, root / layout.get("images", "images"), refs,
                          split=layout.get("split"), include_crowd=bool(layout.get("include_crowd", True)))


__all__ = ["PlainUnpickler", "RefCocoDataset", "load_plain_pickle", "load_refs", "ref_sentences"]
