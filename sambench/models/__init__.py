"""Model registry, model families and ``load_model``.

A registry entry is a factory ``(checkpoint, device, dtype, **options) -> PromptableModel``.
``load_model("sam:path.pth")`` is the same as ``load_model("sam", checkpoint="path.pth")``;
``load_model("sam:vit_b")`` names an official checkpoint, fetched and verified by ``sambench.hub``.

Families of checkpoint-loaded models (:class:`~sambench.models.family.Family`) are listed in
:data:`FAMILIES`, one line each, ``name -> "module:attribute"``, imported on first use; each is
loadable as ``NAME:CKPT`` and recognised from its keys, so ``load_model("path.pth")`` (a bare
checkpoint path) loads whichever family :func:`detect_family` finds.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Mapping, Optional

from sambench import hub
from sambench.errors import SambenchError
from sambench.models.base import ModelInfo, PromptableModel
from sambench.registry import Registry

MODELS: Registry[Callable[..., PromptableModel]] = Registry("model")
MODEL_DESCRIPTIONS: dict[str, str] = {}

# Modules that register models on import; optional ones may fail for a missing extra.
_MODEL_MODULES = ("sambench.models.grabcut", "sambench.models.classical_edges", "sambench.models.sam",
                  "sambench.models.official", "sambench.models.sam3")

# Models that wrap another package and are recognised by their checkpoint's key prefixes.
ADAPTER_PREFIXES: dict[str, tuple[str, ...]] = {"sam3": ("detector.", "tracker.")}

# Model families: one line per family (docs/models.md, "Adding a family").
FAMILIES: dict[str, str] = {
    "sam": "sambench.models.sam.family:FAMILY",
    "mobilesam": "sambench.models.mobilesam:FAMILY",
    "hq-sam": "sambench.models.hq_sam:FAMILY",
    "efficientvit-sam": "sambench.models.efficientvit_sam.family:FAMILY",
    "edgesam": "sambench.models.edgesam.family:FAMILY",
    "efficientsam": "sambench.models.efficientsam.family:FAMILY",
    "sam2": "sambench.models.sam2.family:FAMILY",
}


def register_model(name: str, description: str):
    def decorator(factory):
        MODELS.add(name, factory)
        MODEL_DESCRIPTIONS[name] = description
        return factory

    return decorator


def _import_all() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith(module):
                raise


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


def split_spec(spec: str) -> tuple[str, Optional[str]]:
    """``"sam:ckpt.pth"`` → ``("sam", "ckpt.pth")``; ``"grabcut"`` → ``("grabcut", None)``."""
    name, _, checkpoint = spec.partition(":")
    return name, (checkpoint or None)


def infer_family(path: str):
    """``(family, state)`` of a checkpoint file named without a family (``--model PATH``)."""
    from sambench.models.sam.checkpoint import read_state_dict

    state = read_state_dict(path)
    family = detect_family(state)
    if family is None and any(k.startswith(ADAPTER_PREFIXES["sam3"]) for k in state):
        return "sam3", state  # an adapter over its own package, not a Family
    if family is None:
        raise SambenchError(f"cannot tell the model family of {path} from its keys (known families: "
                            f"{', '.join(FAMILIES)}); name it: --model FAMILY:{path}")
    return family, state


def load_model(name: str, checkpoint: Optional[str] = None, device: str = "cpu",
               dtype: str = "float32", **options) -> PromptableModel:
    """Build a registered model. ``name`` may carry the checkpoint as ``NAME:PATH``, or be a
    checkpoint path alone, whose family is then inferred from its keys."""
    _import_all()
    name, from_spec = split_spec(name)
    name, checkpoint = hub.resolve(name, checkpoint or from_spec)  # FAMILY:NAME -> the verified cached file
    if name in MODELS:
        return MODELS.get(name)(checkpoint=checkpoint, device=device, dtype=dtype, **options)
    if name in FAMILIES:
        from sambench.models.family import load_family_model

        return load_family_model(get_family(name), checkpoint, device, dtype, **options)
    if checkpoint is None and Path(name).is_file():
        from sambench.models.family import load_family_model

        family, state = infer_family(name)
        if family in MODELS:
            return MODELS.get(family)(checkpoint=name, device=device, dtype=dtype, **options)
        return load_family_model(family, name, device, dtype, state=state, **options)
    MODELS.get(name)  # the registry's unknown-name error, with suggestions
    raise AssertionError("unreachable")


def list_models() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered model and family."""
    _import_all()
    listed = [(name, MODEL_DESCRIPTIONS.get(name, "")) for name in MODELS]
    listed += [(name, get_family(name).description) for name in FAMILIES if name not in MODELS]
    return listed


def describe(spec: str) -> dict:
    """What results.json records about a model, plus its ``variant`` (size) at the top level
    (``sambench models info``). ``spec`` is ``NAME:PATH`` or a checkpoint path alone."""
    info = load_model(spec).info().to_json()
    info["variant"] = info["config"].get("variant")
    return info


__all__ = ["FAMILIES", "MODELS", "ModelInfo", "PromptableModel", "describe", "detect_family",
           "get_family", "load_model", "list_models", "register_model"]
