"""Random-weight EfficientSAM checkpoints in the official layout, for tests, demos, benchmarks.

Every tensor is randomised (the scaling rules of :func:`sambench.models.family.default_random_tensor`),
including the label embeddings, the class-token slot of ``pos_embed`` and the Fourier-feature
matrix. The same seed gives the same tensors on every machine, which is what lets
``scripts/golden_efficientsam.py`` and the parity test share weights without a file.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Union

import torch

from sambench.models.efficientsam.efficient_sam import PRESETS, EfficientSamConfig
from sambench.models.family import default_random_tensor


def make_config(config: Union[str, EfficientSamConfig, None] = "vit_t", **overrides) -> EfficientSamConfig:
    """A preset name (``vit_t``, ``vit_s``, ``tiny``) or config, with field overrides."""
    if config is None or isinstance(config, str):
        name = config or "vit_t"
        if name not in PRESETS:
            raise ValueError(f"unknown EfficientSAM preset {name!r} (known: {', '.join(PRESETS)})")
        config = PRESETS[name]()
    if "upscaling_dims" in overrides:
        overrides["upscaling_dims"] = tuple(overrides["upscaling_dims"])
    return dataclasses.replace(config, **overrides)


def random_tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    if ".final_output_upscaling_layers." in name and len(shape) == 4:
        return torch.randn(shape, generator=gen) * shape[0] ** -0.5  # ConvTranspose2d [in, out, k, k]
    if name.startswith("prompt_encoder.") and name.endswith(("_embeddings.weight", "invalid_points.weight")):
        return torch.randn(shape, generator=gen) * 0.5  # label embeddings, like SAM's point kinds
    return default_random_tensor(name, shape, gen)


def random_state_dict(config: EfficientSamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of ``EfficientSam(config).state_dict()`` (upstream names)."""
    from sambench.models.efficientsam.family import FAMILY

    return FAMILY.random_state_dict(config, seed)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor's float32 bytes with its name: the golden file records the
    weights it was made with, the parity test checks the regenerated ones against it."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def write_random_checkpoint(path: Union[str, Path], config: Union[str, EfficientSamConfig, None] = "vit_t",
                            *, seed: int = 0, **overrides) -> Path:
    """Write a random EfficientSAM checkpoint: ``{"model": state}`` like the released
    ``efficient_sam_vit{t,s}.pt`` for torch files, flat for ``.safetensors``."""
    from sambench.models.efficientsam.family import FAMILY
    from sambench.models.family import random_checkpoint

    nest = None if Path(path).suffix == ".safetensors" else "model"
    return random_checkpoint(FAMILY, path, make_config(config, **overrides), seed=seed, nest=nest)
