"""The model families (:class:`~sambench.models.family.Family`): one line each,
``name -> "module:attribute"``, imported on first use (docs/models.md, "Adding a family").

Kept apart from ``sambench.models`` so that a family module can find another family (a
checkpoint given to the wrong one is named) without importing the model registry.
"""
from __future__ import annotations

import importlib
from typing import Mapping

from sambench.errors import SambenchError

# Model families: one line per family (docs/models.md, "Adding a family").
FAMILIES: dict[str, str] = {
    "sam": "sambench.models.sam.family:FAMILY",
    "mobilesam": "sambench.models.mobilesam:FAMILY",
    "hq-sam": "sambench.models.hq_sam:FAMILY",
    "efficientvit-sam": "sambench.models.efficientvit_sam.family:FAMILY",
    "edgesam": "sambench.models.edgesam.family:FAMILY",
    "repvit-sam": "sambench.models.repvit_sam:FAMILY",
    "efficientsam": "sambench.models.efficientsam.family:FAMILY",
    "sam2": "sambench.models.sam2.family:FAMILY",
}


def get_family(name: str):
    """The :class:`~sambench.models.family.Family` registered as ``name`` (imported lazily)."""
    if name not in FAMILIES:
        raise SambenchError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
    module, _, attribute = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def detect_family(state: Mapping):
    """The family whose ``detect`` accepts a checkpoint's tensors (raw, before any family's
    renames), or None. Two families accepting one checkpoint is a bug in their detectors."""
    found = [family for family in map(get_family, FAMILIES)
             if family.detect(family.mapper.apply(state))]
    if len(found) > 1:
        raise RuntimeError(f"families {[f.name for f in found]} all claim one checkpoint")
    return found[0] if found else None
