"""Dataset cards: one YAML file per dataset in ``dataset_adapters/``.

A card says where the data comes from, its licence, which split and on-disk format, the
instance-extraction rule, the counts the protocol expects, and every choice the paper leaves
open written down as our decision. Code reads the ``format`` and ``layout`` keys; the rest is
documentation that also renders into the datasets table.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

from sambench.errors import SambenchError
from sambench.registry import Registry
from sambench.resources import asset_dir

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: much faster


@dataclass
class DatasetCard:
    name: str
    format: str
    aliases: list[str] = field(default_factory=list)  # other spellings a user may type (coco, ADE20K)
    title: str = ""
    domain: str = ""
    source: str = ""
    licence: str = "unconfirmed"
    split: str = ""
    dirname: str = ""  # default folder name under --data-root
    layout: dict[str, Any] = field(default_factory=dict)  # format-specific paths and options
    expected: dict[str, int] = field(default_factory=dict)  # images / masks per protocol
    # The paper's >15k-mask subsampling: None = not a Table 7 dataset (no rule), True = the
    # split has more than 15k masks (Table 7 counts are a sample), False = used whole.
    subsample: Optional[bool] = None
    layout_note: str = ""  # where the on-disk layout comes from: confirmed, or what we assumed
    extraction: str = ""
    decisions: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)  # known differences from the paper
    synthetic: Optional[dict[str, Any]] = None  # generator settings for bundled data
    path: Optional[Path] = None

    @classmethod
    def from_yaml(cls, path: Path) -> "DatasetCard":
        try:
            data = yaml.load(Path(path).read_text(), Loader=_LOADER)
        except (OSError, yaml.YAMLError) as exc:
            raise SambenchError(f"cannot read dataset card {path}: {exc}") from None
        if not isinstance(data, dict) or "name" not in data or "format" not in data:
            raise SambenchError(f"dataset card {path} needs at least 'name' and 'format'")
        known = set(cls.__dataclass_fields__) - {"path"}
        unknown = set(data) - known
        if unknown:
            raise SambenchError(f"dataset card {path}: unknown keys {sorted(unknown)}")
        return cls(**data, path=Path(path))


def load_cards(directory: Optional[Path] = None) -> Registry[DatasetCard]:
    """All cards in ``dataset_adapters/`` keyed by name, with their aliases (a fresh registry
    each call)."""
    cards: Registry[DatasetCard] = Registry("dataset")
    for path in sorted((directory or asset_dir("dataset_adapters")).glob("*.yaml")):
        card = _read_card(path, path.stat().st_mtime_ns)
        cards.add(card.name, replace(card))
    for name, card in cards.items():
        for spelling in card.aliases:
            cards.alias(spelling, name)
    return cards


@lru_cache(maxsize=512)
def _read_card(path: Path, mtime_ns: int) -> DatasetCard:
    """Parsing YAML is slow and a run resolves every dataset: parse each file once per version."""
    return DatasetCard.from_yaml(path)


def render_table(cards: Optional[Registry[DatasetCard]] = None) -> str:
    """docs/datasets.md: a summary table of every card, then each card's rules and decisions."""
    cards = cards if cards is not None else load_cards()
    out = ["# Datasets", "",
           "Generated from `dataset_adapters/*.yaml` by `sambench datasets table`; edit the cards, "
           "not this file.", "",
           "Expected counts are the images and masks the protocol evaluates (SAM Table 7 for the "
           "23-dataset suite). *Subsampled*: the split holds more than 15k masks, so a run draws "
           "random images (seeded by `--seed`) until at least 10k masks, the paper's rule.", "",
           "- `sambench datasets list --data-root DIR`: which datasets are present",
           "- `sambench datasets check NAME --root DIR`: layout, every annotation and image decoded, "
           "counts against the card (exit 0 clean, 1 problems, 2 unusable)",
           "- `sambench datasets sample NAME --root DIR --out FILE [--seed S]`: freeze the (image, mask) "
           "ids to evaluate; `sambench run --sample-list FILE` evaluates exactly those and records "
           "the file's sha256",
           "- `--dataset NAME` also takes the aliases listed per card (e.g. `coco`, `lvis`, `sa-1b`, "
           "`ADE20K`; any case), and `--dataset hf:REPO_ID[:CONFIG][@SPLIT]` or `hf:FOLDER` reads a Hugging "
           "Face dataset (Hub, `save_to_disk` folder or parquet files) with the `datasets` library. Default "
           "columns: `image`, then `segmentation` (per instance a COCO RLE or polygons), `masks` (per instance "
           "a mask image) or `label` (a label map); optional `image_id`, `annotation_ids`, `iscrowd`, "
           "`category_id`. A card with `format: hf` maps other column names and pins `hf_dataset`, `config`, "
           "`split` and `revision` in its layout (sambench/datasets/hf.py).",
           "- Faces are not blurred by sambench (SAM App. D.1 blurred them): a known deviation on every "
           "card, unless you supply pre-blurred images.", "",
           "| name | dataset | domain | split | format | images | masks | subsampled | licence |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, card in cards.items():
        sub = {None: "", True: "yes", False: "no"}[card.subsample]
        out.append(f"| `{name}` | {_cell(card.title)} | {_cell(card.domain)} | {_cell(card.split)} | "
                   f"{card.format} | {card.expected.get('images', '')} | {card.expected.get('masks', '')} | "
                   f"{sub} | {_cell(card.licence)} |")
    for name, card in cards.items():
        out += ["", f"## `{name}`: {card.title}", ""]
        out += [f"- **Source:** {_text(card.source)}", f"- **Licence:** {_text(card.licence)}",
                f"- **Folder:** `<data-root>/{card.dirname or name}`, format `{card.format}`"]
        if card.aliases:
            out.append("- **Also called:** " + ", ".join(f"`{a}`" for a in card.aliases))
        if card.layout_note:
            out.append(f"- **Layout:** {_text(card.layout_note)}")
        if card.extraction:
            out.append(f"- **Instances:** {_text(card.extraction)}")
        out += [f"- **Decision:** {_text(d)}" for d in card.decisions]
        out += [f"- **Known deviation:** {_text(d)}" for d in card.deviations]
    return "\n".join(out) + "\n"


def _text(text: str) -> str:
    """One line of markdown; ``<placeholders>`` and ``*`` globs in paths stay literal."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")
