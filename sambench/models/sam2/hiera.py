"""Hiera, SAM 2's image trunk: a hierarchical ViT with four stages (Ryali et al., 2023).

A 7×7 stride-4 patch conv, then blocks of windowed (or, in a few named blocks, global)
multi-head attention and a GELU MLP, channels-last ``(B, H, W, C)``. The first block of
stages 2–4 doubles the width and the heads and halves the grid by 2×2 max-pooling its queries
and its (projected) shortcut. The position embedding is a background table bicubically
resized to the grid plus a window-sized table tiled over it (Bolya et al., "Window attention
is bugged", 2023). Returns the output of each stage (strides 4, 8, 16, 32).

Written from the SAM 2 paper and the reference ``sam2/modeling/backbones/hieradet.py``
(facebookresearch/sam2 at 2b90b9f); module and parameter names are the reference's, so its
checkpoints load unchanged. Attention is ``F.scaled_dot_product_attention``, as there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class HieraConfig:
    """A Hiera trunk. Head counts, window sizes and global blocks leave no trace in the
    tensors: they come from the released configs (``sam2.checkpoint.PRESETS``)."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)

    @property
    def depth(self) -> int:
        return sum(self.stages)

    @property
    def stage_ends(self) -> list[int]:
        return [sum(self.stages[:i + 1]) - 1 for i in range(len(self.stages))]

    @property
    def channels(self) -> list[int]:
        """Width of each stage's output, stride 4 first."""
        return [self.embed_dim * 2 ** i for i in range(len(self.stages))]


class MLP(nn.Module):
    """Linear layers with an activation between them (reference ``sam2_utils.MLP`` names)."""

    def __init__(self, dims: list[int], act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """``(B, H, W, C)`` → ``(B·nw, window, window, C)`` windows, zero-padding bottom/right."""
    batch, height, width, channels = x.shape
    pad_h, pad_w = -height % window, -width % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window, window, wp // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels), (hp, wp)


def window_unpartition(windows: Tensor, window: int, padded: tuple[int, int],
                       size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`, cropping the padding."""
    hp, wp = padded
    batch = windows.shape[0] // (hp * wp // window // window)
    x = windows.reshape(batch, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
    return x[:, :size[0], :size[1], :] if (hp, wp) != tuple(size) else x


def pool(x: Tensor, stride: int) -> Tensor:
    """2-D max pooling of a channels-last ``(B, H, W, C)`` tensor."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), stride, stride).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int = 0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1)
        q, k, v = torch.unbind(qkv, 2)
        if self.q_stride:  # pooled queries: the output has the coarser grid
            q = pool(q.reshape(batch, height, width, -1), self.q_stride)
            height, width = q.shape[1:3]
            q = q.reshape(batch, height * width, self.num_heads, -1)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(batch, height, width, -1))


class MultiScaleBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int = 0,
                 window_size: int = 0, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP([dim_out, int(dim_out * mlp_ratio), dim_out])
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_stride:
                shortcut = pool(shortcut, self.q_stride)
        window = self.window_size
        if window:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window:
            if self.q_stride:  # the windows shrank with the pooled queries
                window //= self.q_stride
                padded = tuple(s + (-s % window) for s in shortcut.shape[1:3])
            x = window_unpartition(x, window, padded, shortcut.shape[1:3])
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    def __init__(self, config: HieraConfig, q_stride: int = 2) -> None:
        super().__init__()
        self.config = config
        dim, heads = config.embed_dim, config.num_heads
        self.patch_embed = PatchEmbed(dim)
        window0 = config.window_spec[0]
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *config.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, window0, window0))
        ends = config.stage_ends
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(config.depth):
            dim_out = dim
            # the first block of a stage still uses the previous stage's window size
            window = 0 if i in config.global_att_blocks else config.window_spec[stage]
            first_of_stage = i - 1 in ends[:-1]
            if first_of_stage:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, q_stride if first_of_stage else 0, window))
            dim = dim_out

    def _pos_embed(self, height: int, width: int) -> Tensor:
        pos = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic")
        window = self.pos_embed_window
        pos = pos + window.tile([1, 1, height // window.shape[2], width // window.shape[3]])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, S, S)`` → each stage's output ``(B, C_i, S/2^(i+2), S/2^(i+2))``."""
        x = self.patch_embed(x)
        x = x + self._pos_embed(*x.shape[1:3])
        ends = set(self.config.stage_ends)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
