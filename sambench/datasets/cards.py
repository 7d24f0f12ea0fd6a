"""Dataset cards: one YAML file per dataset in ``dataset_adapters/``.

A card says where the data comes from, its licence, which split and on-disk format, the
instance-extraction rule, the counts the protocol expects, and every choice the paper leaves
open written down as our decision. Code reads the ``format`` and ``layout`` keys; the rest is
documentation that also renders into the datasets table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from sambench.errors import SambenchError
from sambench.registry import Registry
from sambench.resources import asset_dir


@dataclass
class DatasetCard:
    name: str
    format: str
    title: str = ""
    domain: str = ""
    source: str = ""
    licence: str = "unconfirmed"
    split: str = ""
    dirname: str = ""  # default folder name under --data-root
    layout: dict[str, Any] = field(default_factory=dict)  # format-specific paths and options
    expected: dict[str, int] = field(default_factory=dict)  # images / masks per protocol
    extraction: str = ""
    decisions: list[str] = field(default_factory=list)
    synthetic: Optional[dict[str, Any]] = None  # generator settings for bundled data
    path: Optional[Path] = None

    @classmethod
    def from_yaml(cls, path: Path) -> "DatasetCard":
        try:
            data = yaml.safe_load(Path(path).read_text())
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
    """All cards in ``dataset_adapters/`` keyed by name."""
    cards: Registry[DatasetCard] = Registry("dataset")
    for path in sorted((directory or asset_dir("dataset_adapters")).glob("*.yaml")):
        card = DatasetCard.from_yaml(path)
        cards.add(card.name, card)
    return cards
