"""Pieces the convolutional encoders share (EfficientViT-SAM, EdgeSAM): batch-norm folding and
the reference code's ``OpSequential`` container.

In eval mode a BatchNorm after a convolution is an affine map per output channel,
``(conv(x) − μ) / √(σ² + ε) · γ + β``, so it folds into the convolution's weights and bias:
one layer less to run per block, the same function up to fp32 rounding. Models are folded
once, after the checkpoint is loaded (the state dict keeps the official layout until then).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``Conv2d`` (with bias) computing ``bn(conv(x))`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def conv_bn_eval(conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> nn.Conv2d:
    """``conv`` itself without a norm, else the folded pair."""
    return conv if bn is None else fold_bn(conv, bn)


class OpSequential(nn.Module):
    """Modules applied in order, stored as ``op_list`` (the key layout of both references)."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x
