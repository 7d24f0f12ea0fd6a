"""EfficientSAM as a :class:`~sambench.models.family.Family`: the ``efficientsam`` registry entry.

Its own encoder, prompt encoder and decoder (:class:`.efficient_sam.EfficientSam`), so its
own model class (:class:`.model.EfficientSamModel`); upstream's input (the [0, 1] image
stretched to 1024², bilinear without antialias, ImageNet statistics) as a :class:`Preprocess`;
no mask input, at most 6 points, a stretched 256² low-res frame.

Random-weight checkpoints in the official layout (tests, demos, benchmarks) randomise every
tensor (the scaling rules of :func:`sambench.models.family.default_random_tensor`), the label
embeddings, the class-token slot of ``pos_embed`` and the Fourier-feature matrix included. The
same seed gives the same tensors on every machine, which is what lets
``scripts/golden_efficientsam.py`` and the parity test share weights without a file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

import torch

from sambench.models.base import Capabilities
from sambench.models.efficientsam.checkpoint import SIGNATURE, infer_config
from sambench.models.efficientsam.efficient_sam import (PIXEL_MEAN, PIXEL_STD, PRESETS, EfficientSam,
                                                        EfficientSamConfig)
from sambench.models.efficientsam.model import EfficientSamModel
from sambench.models.family import Family, Preprocess, default_random_tensor, has_keys, random_checkpoint


def preprocess(config) -> Preprocess:
    return Preprocess(config.img_size, "stretch", "torch-bilinear", PIXEL_MEAN, PIXEL_STD, pixel_range=1)


def capabilities(config) -> Capabilities:
    return Capabilities(low_res_shape=(config.low_res, config.low_res), low_res_frame="stretched",
                        multimask_outputs=config.num_multimask_outputs, mask_input=False,
                        max_points=config.max_points, score="predicted_iou")


def random_tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    if ".final_output_upscaling_layers." in name and len(shape) == 4:
        return torch.randn(shape, generator=gen) * shape[0] ** -0.5  # ConvTranspose2d [in, out, k, k]
    if name.startswith("prompt_encoder.") and name.endswith(("_embeddings.weight", "invalid_points.weight")):
        return torch.randn(shape, generator=gen) * 0.5  # label embeddings, like SAM's point kinds
    return default_random_tensor(name, shape, gen)


FAMILY = Family(
    name="efficientsam",
    description="EfficientSAM ViT-Ti / ViT-S (yformer), our implementation: no mask input, at most "
                "6 points (options: attention, compile, single_mask=best|token0)",
    detect=has_keys(*SIGNATURE), infer_config=infer_config, build=EfficientSam, preprocess=preprocess,
    capabilities=capabilities, options=("img_size", "num_heads", "decoder_num_heads"), presets=PRESETS,
    random_tensor=random_tensor, model_class=EfficientSamModel,
)


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


def random_state_dict(config: EfficientSamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of ``EfficientSam(config).state_dict()`` (upstream names)."""
    return FAMILY.random_state_dict(config, seed)


def write_random_checkpoint(path: Union[str, Path], config: Union[str, EfficientSamConfig, None] = "vit_t",
                            *, seed: int = 0, **overrides) -> Path:
    """Write a random EfficientSAM checkpoint: ``{"model": state}`` like the released
    ``efficient_sam_vit{t,s}.pt`` for torch files, flat for ``.safetensors``."""
    nest = None if Path(path).suffix == ".safetensors" else "model"
    return random_checkpoint(FAMILY, path, make_config(config, **overrides), seed=seed, nest=nest)
