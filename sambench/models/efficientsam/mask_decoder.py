"""EfficientSAM's mask decoder (upstream ``efficient_sam_decoder.py``, ``MaskDecoder``).

SAM v1's design without a dense prompt: an IoU token and K + 1 mask tokens join the prompt
tokens, the two-way transformer runs against the image embedding, and each mask token's MLP
output is dotted with the upscaled image to give a mask. The upscaling is transposed convs
(×2 each) with GroupNorm(1) after all but the last and GELU after every one; the MLPs use GELU.
Token 0 is the single-mask output, tokens 1..K the multimask outputs. The IoU head's output is
used as is (no sigmoid).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sambench.models.efficientsam.transformer import MLPBlock, TwoWayTransformer


class MaskDecoder(nn.Module):
    def __init__(self, dim: int, transformer: TwoWayTransformer, num_multimask_outputs: int,
                 upscaling_dims: tuple[int, ...], iou_head_layers: int, iou_head_hidden_dim: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1 if num_multimask_outputs > 1 else 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        layers, channels = [], dim
        for i, out in enumerate(upscaling_dims):
            last = i == len(upscaling_dims) - 1
            layers.append(nn.Sequential(nn.ConvTranspose2d(channels, out, kernel_size=2, stride=2),
                                        nn.Identity() if last else nn.GroupNorm(1, out), nn.GELU()))
            channels = out
        self.final_output_upscaling_layers = nn.ModuleList(layers)
        self.output_hypernetworks_mlps = nn.ModuleList(MLPBlock(dim, dim, channels, 2)
                                                       for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLPBlock(dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_layers)

    def forward(self, image: Tensor, image_pe: Tensor, prompt_tokens: Tensor, multimask: bool
                ) -> tuple[Tensor, Tensor]:
        """``image`` ``(1 or B, C, h, w)``, ``prompt_tokens`` ``(B, N, C)`` → logits
        ``(B, K, 4^u·h, 4^u·w)`` and IoU predictions ``(B, K)``; K = 3 for ``multimask``, else 1."""
        b = prompt_tokens.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight]).expand(b, -1, -1)
        tokens = torch.cat([output_tokens, prompt_tokens], dim=1)
        image = image.expand(b, -1, -1, -1)
        hs, src = self.transformer(image, image_pe.expand(b, -1, -1, -1), tokens)
        _, c, h, w = image.shape
        upscaled = src.transpose(1, 2).reshape(b, c, h, w)
        for layer in self.final_output_upscaling_layers:
            upscaled = layer(upscaled)
        mask_tokens = hs[:, 1:1 + self.num_mask_tokens]
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        _, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        iou = self.iou_prediction_head(hs[:, 0])
        if multimask and self.num_multimask_outputs > 1:
            return masks[:, 1:], iou[:, 1:]
        return masks[:, :1], iou[:, :1]
