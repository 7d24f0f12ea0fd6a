"""Random-weight SAM 2 / 2.1 checkpoints in the reference layout, for tests, demos, benchmarks.

The file is what ``build_sam2`` loads strictly: ``{"model": state_dict}`` of the whole video
model, the video-memory modules included (their shapes are fixed by the released configs:
width 256, memory width 64, 4 memory-attention layers, 2 fuser blocks, 7 memory frames).
Every tensor is randomised with fan-in scaling, including those the reference init leaves at
zero or one, so a parameter the code forgot to read changes the outputs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from sambench.models.sam2.checkpoint import to_reference_name
from sambench.models.sam2.hiera import HieraConfig
from sambench.models.sam2.sam2 import PRESETS, Sam2, Sam2Config

D, MEM = 256, 64  # model and memory widths of every released config


def _video_shapes(version: str) -> dict[str, tuple[int, ...]]:
    """The video-only parameters of ``SAM2Base`` in the released configs."""
    shapes = {"maskmem_tpos_enc": (7, 1, 1, MEM), "no_mem_pos_enc": (1, 1, D), "no_obj_ptr": (1, D),
              "mask_downsample.weight": (1, 1, 4, 4), "mask_downsample.bias": (1,)}
    for i in range(4):
        layer = f"memory_attention.layers.{i}."
        for attn, kv in (("self_attn", D), ("cross_attn_image", MEM)):
            for proj, fan_in in (("q_proj", D), ("k_proj", kv), ("v_proj", kv), ("out_proj", D)):
                shapes[f"{layer}{attn}.{proj}.weight"] = (D, fan_in)
                shapes[f"{layer}{attn}.{proj}.bias"] = (D,)
        shapes.update({f"{layer}linear1.weight": (2048, D), f"{layer}linear1.bias": (2048,),
                       f"{layer}linear2.weight": (D, 2048), f"{layer}linear2.bias": (D,)})
        shapes.update({f"{layer}norm{n}.{p}": (D,) for n in (1, 2, 3) for p in ("weight", "bias")})
    shapes.update({"memory_attention.norm.weight": (D,), "memory_attention.norm.bias": (D,)})
    channels = [1, 4, 16, 64, 256]
    for j in range(4):  # MaskDownSampler: (conv, LayerNorm2d, GELU) × 4, then a 1×1 conv
        conv, norm = (f"memory_encoder.mask_downsampler.encoder.{3 * j + k}." for k in (0, 1))
        shapes.update({conv + "weight": (channels[j + 1], channels[j], 3, 3), conv + "bias": (channels[j + 1],),
                       norm + "weight": (channels[j + 1],), norm + "bias": (channels[j + 1],)})
    shapes.update({"memory_encoder.mask_downsampler.encoder.12.weight": (D, D, 1, 1),
                   "memory_encoder.mask_downsampler.encoder.12.bias": (D,),
                   "memory_encoder.pix_feat_proj.weight": (D, D, 1, 1), "memory_encoder.pix_feat_proj.bias": (D,),
                   "memory_encoder.out_proj.weight": (MEM, D, 1, 1), "memory_encoder.out_proj.bias": (MEM,)})
    for i in range(2):
        block = f"memory_encoder.fuser.layers.{i}."
        shapes.update({block + "gamma": (D,), block + "dwconv.weight": (D, 1, 7, 7), block + "dwconv.bias": (D,),
                       block + "norm.weight": (D,), block + "norm.bias": (D,),
                       block + "pwconv1.weight": (4 * D, D), block + "pwconv1.bias": (4 * D,),
                       block + "pwconv2.weight": (D, 4 * D), block + "pwconv2.bias": (D,)})
    for i in range(3):
        shapes.update({f"obj_ptr_proj.layers.{i}.weight": (D, D), f"obj_ptr_proj.layers.{i}.bias": (D,)})
    if version == "2.1":
        shapes.update({"no_obj_embed_spatial": (1, MEM), "obj_ptr_tpos_proj.weight": (MEM, D),
                       "obj_ptr_tpos_proj.bias": (MEM,)})
    return shapes


def reference_shapes(config: Sam2Config, version: str = "2.1") -> dict[str, tuple[int, ...]]:
    """Names and shapes of the reference state dict for ``config`` (image and video parts) of
    a SAM ``version`` ("2" or "2.1") checkpoint."""
    with torch.device("meta"):
        ours = Sam2(config).state_dict()
    shapes = {to_reference_name(name): tuple(tensor.shape) for name, tensor in ours.items()}
    return {**shapes, **_video_shapes(version)}


def _random_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    def normal(std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std + mean

    if name.endswith("positional_encoding_gaussian_matrix"):
        return normal(1.0)
    if name.endswith(("pos_embed", "pos_embed_window")):
        return normal(0.2)
    if "output_upscaling." in name and len(shape) == 4:
        return normal(shape[0] ** -0.5)  # ConvTranspose2d [in, out, k, k], stride = kernel
    if name.endswith(("_token.weight", "mask_tokens.weight", "point_embeddings.0.weight",
                      "point_embeddings.1.weight", "point_embeddings.2.weight", "point_embeddings.3.weight",
                      "not_a_point_embed.weight", "no_mask_embed.weight", "no_mem_embed")):
        return normal(0.5)
    if len(shape) >= 2:
        fan_in = shape[1] if len(shape) == 2 else int(torch.tensor(shape[1:]).prod())
        return normal(fan_in ** -0.5)
    if name.endswith("weight"):
        return normal(0.1, 1.0)  # norm scales
    return normal(0.05)  # biases, norm shifts, layer-scale gammas


def random_state_dict(config: Sam2Config, seed: int = 0, version: str = "2.1") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: _random_tensor(name, shape, gen).contiguous()
            for name, shape in reference_shapes(config, version).items()}


def make_config(size: Union[str, HieraConfig] = "tiny") -> Sam2Config:
    """A released size name (``tiny``, ``small``, ``base_plus``, ``large``) or a trunk config."""
    if isinstance(size, str):
        if size not in PRESETS:
            raise ValueError(f"unknown SAM 2 size {size!r} (known: {', '.join(PRESETS)})")
        return Sam2Config(trunk=PRESETS[size], variant=size)
    return Sam2Config(trunk=size, variant=next((n for n, p in PRESETS.items() if p == size), "custom"))


def write_random_checkpoint(path: Union[str, Path], size: Union[str, HieraConfig] = "tiny", *,
                            version: str = "2.1", seed: int = 0,
                            state: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write ``{"model": state_dict}`` with random weights (or ``state``) like the released
    ``sam2{,.1}_hiera_*.pt`` files (``version`` "2.1" adds its two video-only tensors). A trunk
    that is not a released size is recorded in the ``<path>.json`` sidecar (metadata
    ``sam2_trunk``), so the file loads by name alone."""
    from sambench.models.sam.checkpoint import write_sidecar
    from sambench.models.sam2.checkpoint import TRUNK_METADATA, trunk_to_json

    if version not in ("2", "2.1"):
        raise ValueError(f"version is '2' or '2.1', got {version!r}")
    config = make_config(size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state if state is not None else random_state_dict(config, seed, version)}, path)
    if config.variant == "custom":
        write_sidecar(path, {TRUNK_METADATA: trunk_to_json(config.trunk)})
    return path
