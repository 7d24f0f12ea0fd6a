"""Random-weight EfficientSAM checkpoints in the official layout, for tests, demos, benchmarks.

Every tensor is randomised (see :mod:`sambench.models.sam.random_checkpoint` for the scaling
rules), including the label embeddings, the class-token slot of ``pos_embed`` and the
Fourier-feature matrix. The same seed gives the same tensors on every machine, which is what
lets ``scripts/golden_efficientsam.py`` and the parity test share weights without a file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

import torch

from sambench.models.efficientsam.efficient_sam import PRESETS, EfficientSam, EfficientSamConfig
from sambench.models.sam.random_checkpoint import _random_tensor


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


def _tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    if ".final_output_upscaling_layers." in name and len(shape) == 4:
        return torch.randn(shape, generator=gen) * shape[0] ** -0.5  # ConvTranspose2d [in, out, k, k]
    if name.startswith("prompt_encoder.") and name.endswith(("_embeddings.weight", "invalid_points.weight")):
        return torch.randn(shape, generator=gen) * 0.5  # label embeddings, like SAM's point kinds
    return _random_tensor(name, shape, gen)


def random_state_dict(config: EfficientSamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of ``EfficientSam(config).state_dict()`` (upstream names)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in EfficientSam(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    return {name: _tensor(name, shape, gen).contiguous() for name, shape in shapes.items()}


def write_random_checkpoint(path: Union[str, Path], config: Union[str, EfficientSamConfig, None] = "vit_t",
                            *, seed: int = 0, **overrides) -> Path:
    """Write a random EfficientSAM checkpoint: ``torch.save({"model": state})`` like the released
    ``efficient_sam_vit{t,s}.pt``, or a flat ``.safetensors``."""
    path = Path(path)
    state = random_state_dict(make_config(config, **overrides), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"model": state}, path)
    return path
