"""Random-weight SAM checkpoints in the official layout, for tests, demos and benchmarks.

Official weights are not reachable from our machines, so parity is checked on random weights.
Every tensor is randomised, including those the official init leaves at zero (rel-pos tables,
biases, LayerNorm affine) and the Fourier-feature matrix, with fan-in scaling so activations
stay O(1) through the network and the masks are neither empty nor full: a zero tensor would
hide a bug in the code that reads it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

import torch

from sambench.models.sam.sam import PRESETS, Sam, SamConfig


def make_config(config: Union[str, SamConfig, None] = "vit_b", **overrides) -> SamConfig:
    """A preset name (``vit_b``, ``vit_l``, ``vit_h``, ``tiny``) or config, with field overrides.

    Changing ``embed_dim`` alone keeps the MLP ratio of 4.
    """
    if config is None or isinstance(config, str):
        name = config or "vit_b"
        if name not in PRESETS:
            raise ValueError(f"unknown SAM preset {name!r} (known: {', '.join(PRESETS)})")
        config = PRESETS[name]()
    fields = {f.name for f in dataclasses.fields(SamConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown SamConfig fields {unknown} (known: {sorted(fields)})")
    if "embed_dim" in overrides and "mlp_dim" not in overrides:
        overrides["mlp_dim"] = 4 * overrides["embed_dim"]
    if "global_attn_indexes" in overrides:
        overrides["global_attn_indexes"] = tuple(overrides["global_attn_indexes"])
    return dataclasses.replace(config, **overrides)


_EMBEDDINGS = ("not_a_point_embed.weight", "no_mask_embed.weight", "iou_token.weight",
               "mask_tokens.weight")


def _random_tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    def normal(std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std + mean

    if name.endswith("positional_encoding_gaussian_matrix"):
        return normal(1.0)
    if name.endswith(("rel_pos_h", "rel_pos_w")):
        return normal(shape[1] ** -0.5)  # q·R ~ N(0, 1): comparable to the content logits
    if name.endswith("pos_embed"):
        return normal(0.2)
    if name.startswith("mask_decoder.output_upscaling.") and len(shape) == 4:
        return normal(shape[0] ** -0.5)  # ConvTranspose2d [in, out, k, k], stride = kernel
    if ".point_embeddings." in name or name.endswith(_EMBEDDINGS):
        return normal(0.5)  # nn.Embedding tables: prompt kinds, output tokens, no-mask
    if len(shape) >= 2:
        return normal(shape[1:].numel() ** -0.5)  # Linear / Conv2d: fan-in scaling
    if name.endswith("weight"):
        return normal(0.1, 1.0)  # LayerNorm scale
    return normal(0.05)  # biases, LayerNorm shift


def random_state_dict(config: SamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of ``Sam(config).state_dict()`` (official key names)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Sam(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    return {name: _random_tensor(name, shape, gen).contiguous() for name, shape in shapes.items()}


def write_random_checkpoint(path: Union[str, Path], config: Union[str, SamConfig, None] = "vit_b",
                            *, seed: int = 0, nest: Optional[str] = None,
                            text_encoder: Optional[str] = None, **overrides) -> Path:
    """Write a random SAM checkpoint; the format follows the suffix (``.safetensors`` or torch).

    ``config`` is a preset name or :class:`SamConfig`; keyword overrides change single fields,
    e.g. ``write_random_checkpoint(p, "tiny", depth=3, global_attn_indexes=[2])``; ``text_dim=D``
    adds the optional text path. ``text_encoder`` records the text encoder's name as metadata
    (safetensors header, or the ``<path>.json`` sidecar of a torch file). ``nest`` wraps the
    torch state dict as ``{nest: state}`` (``"model"``, ``"state_dict"``). Saved with
    ``torch.save(state_dict)`` like the released ``sam_vit_*.pth`` files.
    """
    from sambench.models.sam.checkpoint import TEXT_ENCODER_KEY, write_sidecar

    path = Path(path)
    config = make_config(config, **overrides)
    state = random_state_dict(config, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {TEXT_ENCODER_KEY: text_encoder} if text_encoder else None
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        if nest:
            raise ValueError("safetensors files hold a flat state dict; nest is for torch files")
        save_file(state, str(path), metadata=metadata)
    else:
        torch.save({nest: state} if nest else state, path)
        if metadata:
            write_sidecar(path, metadata)
    return path
