"""EfficientSAM's image encoder: a plain ViT (global attention in every block) and SAM's neck.

Differences from SAM v1's encoder, all from the upstream ``efficient_sam_encoder.py``:
absolute position embeddings only (no relative positions, no windows), learnt at the
pre-training size (14 × 14 + a class-token slot) and resized bicubically to the 64 × 64 grid;
qkv with bias; LayerNorm ε = 1e-6. Attribute names are upstream's, so checkpoints load.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.sam.common import neck

ATTENTION_MODES = ("math", "sdpa")


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (``qkv`` in one projection)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.mode = "math"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.mode == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:  # upstream's order of operations: the fp32 parity path
            out = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ImageEncoderViT(nn.Module):
    """``(B, 3, S, S)`` normalised image → ``(B, neck_dim, S/p, S/p)`` embedding."""

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                 mlp_dim: int, neck_dim: int, pretrain_grid: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        # one slot for the pre-training class token, unused here (upstream keeps it)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pretrain_grid ** 2, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_dim) for _ in range(depth))
        self.neck = neck(embed_dim, neck_dim)

    def set_attention(self, mode: str) -> None:
        for block in self.blocks:
            block.attn.mode = mode

    def grid_pos_embed(self) -> torch.Tensor:
        """Position embeddings on the input's grid, ``(1, g, g, C)``: the pre-training table
        without its class-token slot, bicubically resized when the grids differ."""
        table = self.pos_embed[:, 1:]
        side = math.isqrt(table.shape[1])
        table = table.reshape(1, side, side, -1)
        if side == self.grid:
            return table
        resized = F.interpolate(table.permute(0, 3, 1, 2), size=(self.grid, self.grid),
                                mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        x = x + self.grid_pos_embed()
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        for block in self.blocks:
            x = block(x)
        return self.neck(x.reshape(b, h, w, c).permute(0, 3, 1, 2))
