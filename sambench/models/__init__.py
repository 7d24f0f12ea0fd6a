"""Model registry, model families and ``load_model``.

A registry entry is a factory ``(checkpoint, device, dtype, **options) -> PromptableModel``; a
model family is one module with its factory and one line below.
``load_model("sam:path.pth")`` is the same as ``load_model("sam", checkpoint="path.pth")``;
``load_model("sam:vit_b")`` names an official checkpoint, fetched and verified by ``sambench.hub``.

Families of checkpoint-loaded models (:class:`~sambench.models.family.Family`) are listed in
:data:`FAMILIES`, one line each, ``name -> "module:attribute"``, imported on first use; each is
loadable as ``NAME:CKPT`` and recognised from its keys, so ``load_model("path.pth")`` (a bare
checkpoint path) loads whichever family :func:`detect_family` finds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional

from sambench import hub
from sambench.errors import SambenchError
from sambench.models.base import ModelInfo, PromptableModel
from sambench.models.families import FAMILIES, detect_family, get_family
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

# Models that wrap another package and are recognised by their checkpoint's key prefixes.
ADAPTER_PREFIXES: dict[str, tuple[str, ...]] = {"sam3": ("detector.", "tracker.")}

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
    listed = [(name, MODELS.descriptions[name]) for name in MODELS]
    listed += [(name, get_family(name).description) for name in FAMILIES if name not in MODELS]
    return listed


def describe(spec: str) -> dict:
    """What results.json records about a model, plus its ``variant`` (size) at the top level
    (``sambench models info``). ``spec`` is ``NAME:PATH`` or a checkpoint path alone."""
    info = load_model(spec).info().to_json()
    info["variant"] = info["config"].get("variant")
    return info


__all__ = ["FAMILIES", "MODELS", "ModelInfo", "PromptableModel", "describe", "detect_family",
           "get_family", "load_model", "list_models"]
