"""Model registry and ``load_model``.

A registry entry is a factory ``(checkpoint, device, dtype, **options) -> PromptableModel``.
``load_model("sam:path.pth")`` is the same as ``load_model("sam", checkpoint="path.pth")``;
``load_model("sam:vit_b")`` names an official checkpoint, fetched and verified by ``sambench.hub``.
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional

from sambench import hub
from sambench.models.base import ModelInfo, PromptableModel
from sambench.registry import Registry

MODELS: Registry[Callable[..., PromptableModel]] = Registry("model")
MODEL_DESCRIPTIONS: dict[str, str] = {}

# Modules that register models on import; optional ones may fail for a missing extra.
_MODEL_MODULES = ("sambench.models.grabcut", "sambench.models.classical_edges", "sambench.models.sam",
                  "sambench.models.official", "sambench.models.sam3")


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


def split_spec(spec: str) -> tuple[str, Optional[str]]:
    """``"sam:ckpt.pth"`` → ``("sam", "ckpt.pth")``; ``"grabcut"`` → ``("grabcut", None)``."""
    name, _, checkpoint = spec.partition(":")
    return name, (checkpoint or None)


def load_model(name: str, checkpoint: Optional[str] = None, device: str = "cpu",
               dtype: str = "float32", **options) -> PromptableModel:
    """Build a registered model. ``name`` may carry the checkpoint as ``NAME:PATH``."""
    _import_all()
    name, from_spec = split_spec(name)
    name, checkpoint = hub.resolve(name, checkpoint or from_spec)  # FAMILY:NAME -> the verified cached file
    factory = MODELS.get(name)
    return factory(checkpoint=checkpoint, device=device, dtype=dtype, **options)


def list_models() -> list[tuple[str, str]]:
    _import_all()
    return [(name, MODEL_DESCRIPTIONS.get(name, "")) for name in MODELS]


__all__ = ["MODELS", "ModelInfo", "PromptableModel", "load_model", "list_models", "register_model"]
