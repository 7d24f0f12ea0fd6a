"""TinyViT as SAM's image encoder: MobileSAM's (and Light HQ-SAM's) distilled backbone.

A conv stem (two stride-2 conv + batch-norm, GELU between) takes the 1024-px input to 256²;
stage 0 is MBConv blocks (inverted residual: 1×1 expand, 3×3 depthwise, 1×1 project); stages
1-3 are windowed attention blocks (LeViT-style learned bias per head and per window offset
(|Δy|, |Δx|), a depthwise 3×3 "local conv" between attention and MLP); a patch-merging step
(1×1, 3×3 depthwise stride 2, 1×1) joins consecutive stages. A conv neck maps the last stage to
the 256-channel 64×64 embedding SAM's decoder reads (MobileSAM paper; TinyViT paper; the
``mobile_sam`` package's ``tiny_vit_sam.py``). Module and parameter names follow that code so
``mobile_sam.pt`` loads.

Details that decide the numbers, as in the reference:

- a merge into a stage of width 320, 448 or 576 keeps the resolution (stride 1), so the last
  two stages both run at 64² for a 1024-px input;
- windows are zero-padded at the bottom/right *before* the attention's LayerNorm, so padded
  positions enter the attention as normalised zero vectors (keys and values), not as masks;
- the attention bias of a window is gathered from ``attention_biases`` on every call, so it
  always reflects the loaded weights (the reference caches it when switched to eval mode,
  which goes stale if weights are loaded afterwards).

:meth:`TinyViT.prepare_inference` (called once the weights are loaded) folds every batch norm
into its convolution and runs the convolutions channels-last, the layout of the attention
stages' tokens: the same function up to fp32 rounding, with fewer passes over memory and no
layout copies around each depthwise conv.
"""
from __future__ import annotations

import itertools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.conv_layers import fold_bn
from sambench.models.sam.common import LayerNorm2d

KEEP_RESOLUTION = (320, 448, 576)  # merge widths the reference gives stride 1


class Conv2dBN(nn.Sequential):
    """Conv (no bias) then batch norm: keys ``c.*`` and ``bn.*``."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))

    def folded(self) -> nn.Conv2d:
        """One conv with bias computing this pair in eval mode."""
        return fold_bn(self.c, self.bn)


class PatchEmbed(nn.Module):
    """Conv stem: ``(B, 3, S, S)`` → ``(B, dim, S/4, S/4)``."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, dim)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(y + x)


class PatchMerging(nn.Module):
    """Tokens ``(B, H·W, C)`` or a map ``(B, C, H, W)`` → tokens of the next stage."""

    def __init__(self, resolution: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.stride = 1 if out_dim in KEEP_RESOLUTION else 2
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, self.stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    @property
    def out_resolution(self) -> int:
        return (self.resolution - 1) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.view(x.shape[0], self.resolution, self.resolution, -1).permute(0, 3, 1, 2)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


def offset_index(window: int) -> torch.Tensor:
    """``(w², w²)`` index of each query-key pair's offset (|Δy|, |Δx|) in ``attention_biases``,
    offsets numbered in order of first appearance (row-major over query then key)."""
    points = list(itertools.product(range(window), range(window)))
    ids: dict[tuple[int, int], int] = {}
    index = [ids.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(ids)) for a in points for b in points]
    return torch.tensor(index).view(len(points), len(points))


class Attention(nn.Module):
    """Multi-head attention over the tokens of one window, with a learned offset bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.window = window
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self._index: Optional[torch.Tensor] = None  # offset_index(window), made on first use

    def bias(self) -> torch.Tensor:
        """``(heads, w², w²)`` bias of the current weights."""
        if self._index is None or self._index.device != self.attention_biases.device:
            self._index = offset_index(self.window).to(self.attention_biases.device)
        return self.attention_biases[:, self._index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = (self.qkv(self.norm(x)).view(batch, tokens, self.num_heads, 3 * self.key_dim)
                   .permute(0, 2, 1, 3).split(self.key_dim, dim=3))
        # explicit products: for 7×7 windows faster on a CPU than the fused kernel with a mask
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.bias().to(q.dtype)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class TinyViTBlock(nn.Module):
    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, mlp_ratio: float,
                 local_conv_size: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        side, w = self.resolution, self.window
        if side == w:
            y = self.attn(x)
        else:
            pad = (w - side % w) % w
            y = F.pad(x.view(batch, side, side, channels), (0, 0, 0, pad, 0, pad))
            n = (side + pad) // w
            y = y.view(batch, n, w, n, w, channels).transpose(2, 3).reshape(batch * n * n, w * w, channels)
            y = self.attn(y)
            y = y.view(batch, n, n, w, w, channels).transpose(2, 3).reshape(batch, side + pad, side + pad, channels)
            y = y[:, :side, :side].reshape(batch, tokens, channels)
        x = x + y
        # the tokens seen as a channels-last map: no copy in, none out after a channels-last conv
        x = self.local_conv(x.view(batch, side, side, channels).permute(0, 3, 1, 2))
        x = x.permute(0, 2, 3, 1).reshape(batch, tokens, channels)
        return x + self.mlp(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Stage(nn.Module):
    """Blocks at one resolution, then (except the last stage) the merge into the next."""

    def __init__(self, blocks: list[nn.Module], downsample: Optional[PatchMerging]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """``(B, 3, S, S)`` normalised pixels → ``(B, out_chans, S/16, S/16)``.

    ``interm_stage``: also return the output of that stage (channels-last ``(B, h, w, C)``),
    the early feature HQ-SAM's head reads; None returns the embedding alone.
    """

    def __init__(self, img_size: int, embed_dims: tuple[int, ...], depths: tuple[int, ...],
                 num_heads: tuple[int, ...], window_sizes: tuple[int, ...], mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0, local_conv_size: int = 3, out_chans: int = 256,
                 interm_stage: Optional[int] = None) -> None:
        super().__init__()
        self.img_size = img_size
        self.interm_stage = interm_stage
        self.patch_embed = PatchEmbed(3, embed_dims[0])
        resolution = img_size // 4
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            merge = (PatchMerging(resolution, dim, embed_dims[i + 1]) if i + 1 < len(embed_dims) else None)
            if i == 0:
                blocks = [MBConv(dim, mbconv_expand_ratio) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dim, resolution, num_heads[i], window_sizes[i], mlp_ratio, local_conv_size)
                          for _ in range(depth)]
            self.layers.append(Stage(blocks, merge))
            if merge is not None:
                resolution = merge.out_resolution
        self.grid = resolution
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )
        self.channels_last = False

    @torch.no_grad()
    def prepare_inference(self) -> "TinyViT":
        """Prepare for inference (after loading weights): fold batch norms into convs and keep
        the convolutions' maps channels-last."""
        for module in list(self.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, Conv2dBN):
                    setattr(module, name, child.folded())
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)
        interm = None
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.interm_stage:
                interm = x.view(x.shape[0], self.grid, self.grid, -1)
        x = x.view(x.shape[0], self.grid, self.grid, -1).permute(0, 3, 1, 2)
        x = self.neck(x).contiguous()
        return x if self.interm_stage is None else (x, interm)
