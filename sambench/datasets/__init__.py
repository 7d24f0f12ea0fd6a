"""Datasets: cards (what a dataset is) + formats (how to parse it) → an iterable of Samples.

A dataset is named on the command line as ``NAME`` (a card, by its name or an alias; its folder
found under ``--data-root`` or, for bundled synthetic data, generated into the cache),
``NAME=ROOT`` (a card at an explicit folder), a path to a COCO-style folder (no card needed) or
``hf:REPO_ID[:CONFIG][@SPLIT]`` / ``hf:FOLDER`` (a Hugging Face dataset, ``datasets`` library). A run opens a
Table 7 dataset with the paper's subsampling rule, or with a frozen sample list when given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sambench.datasets.base import FORMATS, open_format
from sambench.datasets.cards import DatasetCard, load_cards
from sambench.datasets.coco import CocoDataset
from sambench.datasets.sampling import SampleList, Selected, draw, read_sample_list
from sambench.errors import SambenchError
from sambench.resources import cache_root as cache_dir  # the one rule for where the cache lives


@dataclass
class DatasetRef:
    """A dataset as named by the user, resolved to a card and a root folder."""

    name: str
    card: DatasetCard
    root: Path  # the folder; ``hf:REPO_ID`` for a Hub dataset read through ``datasets``

    def present(self) -> bool:
        """Whether there is data to open: the folder exists, or it is a Hub dataset (which
        ``datasets`` fetches or finds in the user's cache when opened)."""
        return self.root.exists() or (self.card.format == "hf" and str(self.root).startswith("hf:"))

    def open(self, seed: int = 0, sample_list: Optional[str] = None, subsample: bool = False):
        """The dataset as an iterable of Samples with ``__len__``, built lazily: the whole
        split by default.

        With ``sample_list`` (a file from ``sambench datasets sample``) only its images and
        masks; with ``subsample`` and a Table 7 card, the paper's rule drawn from ``seed`` (what
        a run evaluates). The returned dataset's ``sample_list`` attribute, when set, says which.
        """
        if not self.present():
            raise SambenchError(f"dataset {self.name}: folder not found: {self.root}")
        dataset = open_format(self.card, self.root)
        indexed = hasattr(dataset, "image_ids")
        if not indexed and (sample_list is not None or (subsample and self.card.subsample is not None)):
            raise SambenchError(f"dataset {self.name} is streamed: it cannot be subsampled or restricted to a "
                                "sample list (drop --stream)")
        if sample_list is not None:
            chosen = read_sample_list(Path(sample_list))
            if chosen.dataset != self.name:
                raise SambenchError(f"sample list {sample_list} is for dataset {chosen.dataset}, not {self.name}")
            return Selected(dataset, chosen)
        if subsample and self.card.subsample is not None:
            return Selected(dataset, draw(dataset, self.name, seed))
        return dataset




def resolve(spec: str, data_root: Optional[str] = None) -> DatasetRef:
    """Turn ``NAME``, ``NAME=ROOT``, a folder path or ``hf:...`` into a :class:`DatasetRef`
    (named by the card's own name when ``NAME`` is an alias)."""
    if spec.startswith("hf:"):
        from sambench.datasets.hf import spec_card

        card, root = spec_card(spec[3:])
        return DatasetRef(card.name, card, root)
    cards = load_cards()
    name, sep, root = spec.partition("=")
    if not sep and name not in cards and Path(spec).is_dir():
        path = Path(spec).resolve()
        card = DatasetCard(name=path.name, format="coco", title=path.name,
                           extraction="COCO instances as annotated")
        return DatasetRef(path.name, card, path)
    card = cards.get(name)
    name = card.name
    if sep:
        return DatasetRef(name, card, Path(root).expanduser())
    if card.synthetic is not None:
        return DatasetRef(name, card, ensure_synthetic(card))
    folder = Path(data_root).expanduser() / (card.dirname or name) if data_root else None
    if card.format == "hf" and card.layout.get("hf_dataset") and not (folder and folder.exists()):
        return DatasetRef(name, card, Path(f"hf:{card.layout['hf_dataset']}"))  # read through `datasets`
    if folder is None:
        raise SambenchError(f"dataset {name}: give its folder as {name}=DIR or pass --data-root")
    return DatasetRef(name, card, folder)


def sample_lists_by_dataset(paths: list[str]) -> dict[str, str]:
    """``--sample-list`` files keyed by the dataset each names (read now, so a bad file fails
    before any work)."""
    by_name: dict[str, str] = {}
    for path in paths:
        chosen = read_sample_list(Path(path))
        if chosen.dataset in by_name:
            raise SambenchError(f"two sample lists for dataset {chosen.dataset}: {by_name[chosen.dataset]}, {path}")
        by_name[chosen.dataset] = str(path)
    return by_name


def ensure_synthetic(card: DatasetCard) -> Path:
    """Generate a bundled synthetic dataset into the cache once (deterministic from its card)."""
    from sambench.datasets import synth

    settings = dict(card.synthetic or {})
    root = cache_dir() / "data" / f"{card.name}-v{synth.GENERATOR_VERSION}-{synth.settings_key(settings)}"
    if card.format == "bsds":  # the edges task's synthetic data, in the BSDS500 layout
        if not (root / "groundTruth").is_dir():
            synth.write_bsds_dataset(root, name=card.name, **settings)
    elif card.format == "saco":  # the concept task's synthetic data, in the SA-Co layout
        if not (root / "annotations").is_dir():
            from sambench.datasets.synth_concepts import write_saco_dataset

            write_saco_dataset(root, name=card.name, **settings)
    elif not (root / "annotations.json").is_file():
        synth.write_dataset(root, name=card.name, **settings)
    return root


__all__ = ["FORMATS", "DatasetCard", "DatasetRef", "load_cards", "resolve", "CocoDataset",
           "SampleList", "draw", "read_sample_list", "sample_lists_by_dataset"]
