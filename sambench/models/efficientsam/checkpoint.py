"""Infer an EfficientSAM checkpoint's architecture from its tensors.

The released ``efficient_sam_vit{t,s}.pt`` hold ``{"model": state_dict}`` with upstream's key
names (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``), which are ours; the
family loader reads them safely (``torch.load(weights_only=True)`` or safetensors) and loads
them strictly. Sizes come from tensor shapes: encoder width, depth and MLP from the blocks,
patch size from the patch conv, the pre-training grid from ``pos_embed``, neck and decoder
widths, upscaling channels, mask tokens and IoU-head depth from their layers. Head counts
leave no trace in the tensors: the encoder's is width / 64 (ViT-Ti 3, ViT-S 6, as upstream
builds them), the decoder's 8. The input side (1024) is upstream's constant. All three are
options (``num_heads``, ``decoder_num_heads``, ``img_size``).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from sambench.errors import SambenchError
from sambench.models.base import indexes, names
from sambench.models.efficientsam.efficient_sam import EfficientSamConfig

ENC, PE, DEC = "image_encoder.", "prompt_encoder.", "mask_decoder."
# keys only EfficientSAM has: they tell the family from SAM v1's layout
SIGNATURE = (PE + "invalid_points.weight", DEC + "final_output_upscaling_layers.0.0.weight")
HEAD_DIM = 64
REQUIRED = (ENC + "pos_embed", ENC + "patch_embed.proj.weight", ENC + "blocks.0.mlp.fc1.weight",
            ENC + "neck.0.weight", DEC + "mask_tokens.weight", DEC + "transformer.layers.0.mlp.layers.0.0.weight",
            DEC + "transformer.final_attn_token_to_image.q_proj.weight",
            DEC + "iou_prediction_head.layers.0.0.weight") + SIGNATURE


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint", img_size: int = 1024,
                 num_heads: int = 0, decoder_num_heads: int = 8) -> EfficientSamConfig:
    """The :class:`EfficientSamConfig` whose module shapes match ``state``."""
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise SambenchError(f"{source} is not an EfficientSAM checkpoint: missing keys {names(missing)}")
    pos, patch = state[ENC + "pos_embed"], state[ENC + "patch_embed.proj.weight"]
    side = math.isqrt(max(pos.shape[1] - 1, 0)) if pos.ndim == 3 else 0
    if side < 1 or side * side + 1 != pos.shape[1] or patch.ndim != 4:
        raise SambenchError(f"{source}: unexpected pos_embed {tuple(pos.shape)} / patch embedding "
                            f"{tuple(patch.shape)} (EfficientSAM's [1, 1 + S², C] table expected)")
    embed_dim = patch.shape[0]
    num_heads = int(num_heads) or max(embed_dim // HEAD_DIM, 1)
    if embed_dim % num_heads:
        raise SambenchError(f"{source}: encoder width {embed_dim} is not divisible by {num_heads} heads")
    blocks = indexes(state, ENC + "blocks.")
    if blocks != list(range(len(blocks))):
        raise SambenchError(f"{source}: image encoder blocks are not numbered 0..n-1: {blocks}")
    upscaling = indexes(state, DEC + "final_output_upscaling_layers.")
    return EfficientSamConfig(
        img_size=int(img_size), patch_size=patch.shape[-1], embed_dim=embed_dim, depth=len(blocks),
        num_heads=num_heads, mlp_dim=state[ENC + "blocks.0.mlp.fc1.weight"].shape[0], pretrain_grid=side,
        neck_dim=state[ENC + "neck.0.weight"].shape[0],
        decoder_depth=len(indexes(state, DEC + "transformer.layers.")),
        decoder_mlp_dim=state[DEC + "transformer.layers.0.mlp.layers.0.0.weight"].shape[0],
        decoder_num_heads=int(decoder_num_heads),
        attention_downsample_rate=(state[ENC + "neck.0.weight"].shape[0]
                                   // state[DEC + "transformer.final_attn_token_to_image.q_proj.weight"].shape[0]),
        upscaling_dims=tuple(state[f"{DEC}final_output_upscaling_layers.{i}.0.weight"].shape[1]
                             for i in upscaling),
        num_multimask_outputs=max(state[DEC + "mask_tokens.weight"].shape[0] - 1, 1),
        iou_head_layers=len(indexes(state, DEC + "iou_prediction_head.layers.")),
        iou_head_hidden_dim=state[DEC + "iou_prediction_head.layers.0.0.weight"].shape[0],
    )
