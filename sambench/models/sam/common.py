"""Layers shared by SAM's encoder and decoder (the official ``modeling/common.py`` names).

Attribute names are the official ones so official state dicts load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn


class MLPBlock(nn.Module):
    """Two linear layers with an activation: the ViT MLP and the decoder's token MLP."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, H, W)`` tensor.

    Written out (mean, then mean of squared deviations) exactly as the official layer, so the
    neck rounds like the reference (the mask-downscaling path computes it as a channels-last
    ``F.layer_norm``: see ``PromptEncoder._downscale_masks``).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(1, keepdim=True)
        x = centred / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def neck(in_chans: int, out_chans: int) -> nn.Sequential:
    """SAM's encoder neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d; no biases), also
    EfficientSAM's: keys ``neck.0`` … ``neck.3``."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=1, bias=False),
        LayerNorm2d(out_chans),
        nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_chans),
    )
