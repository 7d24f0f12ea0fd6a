"""Model registry and ``load_model``.

A registry entry is a factory ``(checkpoint, device, dtype, **options) -> PromptableModel``; a
model family is one module with its factory and one line below.
``load_model("sam:path.pth")`` is the same as ``load_model("sam", checkpoint="path.pth")``;
``load_model("sam:vit_b")`` names an official checkpoint, fetched and verified by ``sambench.hub``.
"""
from __future__ import annotations

from typing import Callable, Optional

from sambench import hub
from sambench.models.base import ModelInfo, PromptableModel
from sambench.registry import Registry, split_spec

MODELS: Registry[Callable[..., PromptableModel]] = Registry("model")
MODELS.register("sam", "sambench.models.sam:build_sam_model", "Segment Anything v1, our implementation "
                "(architecture inferred from the checkpoint; options: attention=auto|math|sdpa, compile)")
MODELS.register("sam-official", "sambench.models.official:build_official_model", "the official "
                "segment-anything 1.0 code on a SAM v1 checkpoint (cross-checking; needs segment-anything, "
                "not torchvision)")
MODELS.register("sam3", "sambench.models.sam3:build_sam3_model", "SAM 3 through Meta's sam3 package: "
                "points/boxes/masks and noun phrases (concept path); needs pip install 'sambench[sam3]'")
MODELS.register("grabcut", "sambench.models.grabcut:build_grabcut",
                "classical GrabCut seeded from the prompts (no weights)")
MODELS.register("sobel", "sambench.models.classical_edges:build_sobel",
                "classical Sobel edge magnitude (edges task only; no weights)")
MODELS.register("canny", "sambench.models.classical_edges:build_canny",
                "classical Canny edges, binary (edges task only; no weights)")


def load_model(name: str, checkpoint: Optional[str] = None, device: str = "cpu",
               dtype: str = "float32", **options) -> PromptableModel:
    """Build a registered model. ``name`` may carry the checkpoint as ``NAME:PATH``."""
    name, from_spec = split_spec(name)
    name, checkpoint = hub.resolve(name, checkpoint or from_spec)  # FAMILY:NAME -> the verified cached file
    factory = MODELS.get(name)
    return factory(checkpoint=checkpoint, device=device, dtype=dtype, **options)


def list_models() -> list[tuple[str, str]]:
    return [(name, MODELS.descriptions[name]) for name in MODELS]


__all__ = ["MODELS", "ModelInfo", "PromptableModel", "load_model", "list_models"]
