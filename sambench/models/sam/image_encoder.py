"""SAM's image encoder: a ViTDet-style ViT with windowed and global attention.

Patch embedding + absolute position embedding, ``depth`` pre-norm blocks whose attention is
restricted to ``window_size``² windows except in the global blocks, decomposed relative
position embeddings (MViTv2) in every block, and a conv neck down to ``out_chans`` channels
(SAM paper App. A; official ``modeling/image_encoder.py``). Module and parameter names follow
the official code so its checkpoints load.

Two attention kernels give the same numbers:

- ``"math"`` (default, the parity path) computes the attention matrix, adds the relative
  position terms in place and applies softmax in place. The operations and their order are the
  official ones, so fp32 results match the reference bit for bit, but without the official's
  out-of-place broadcast adds, which cost more than the matrix products on a CPU.
- ``"sdpa"`` hands the relative position bias to ``scaled_dot_product_attention`` as an
  additive mask (fused kernel, no attention matrix kept); under bf16 autocast the global
  blocks fold it into q and k instead (:func:`rel_pos_folded_qkv`).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.sam.common import MLPBlock, neck

ATTENTION_MODES = ("math", "sdpa")
ATTN_CHUNK_ELEMS = 1 << 28  # attention scores (or mask) materialised at once: 1 GiB in fp32


class ImageEncoderViT(nn.Module):
    """``(B, 3, img_size, img_size)`` normalised pixels → ``(B, out_chans, S, S)``, S = img/patch."""

    def __init__(self, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
                 out_chans: int = 256, qkv_bias: bool = True, use_abs_pos: bool = True,
                 use_rel_pos: bool = True, window_size: int = 14,
                 global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11), eps: float = 1e-6) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed: Optional[nn.Parameter] = None
        if use_abs_pos:
            self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_dim, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                  window_size=0 if i in global_attn_indexes else window_size,
                  input_size=(grid, grid), eps=eps)
            for i in range(depth)
        )
        self.neck = neck(embed_dim, out_chans)

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block ``i`` drops its residual branches with
        probability ``rate * i / (depth - 1)`` (the usual linear rule; no effect in eval)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
        depth = len(self.blocks)
        for i, block in enumerate(self.blocks):
            block.drop_path = rate * i / max(depth - 1, 1)

    def set_attention(self, mode: str) -> None:
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
        for block in self.blocks:
            block.attn.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck_of(x)

    def neck_of(self, x: torch.Tensor) -> torch.Tensor:
        """The neck on the last block's channels-last output ``(B, h, w, C)``."""
        x = x.permute(0, 3, 1, 2)
        if torch.is_autocast_enabled(x.device.type):
            # The neck is ~1% of the FLOPs; LayerNorm2d in bf16 would cost accuracy for nothing.
            with torch.autocast(x.device.type, enabled=False):
                return self.neck(x.float())
        return self.neck(x)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` conv, returned channels-last ``(B, H, W, C)``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size == 0`` means global attention."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, qkv_bias: bool = True,
                 use_rel_pos: bool = True, window_size: int = 0,
                 input_size: tuple[int, int] = (64, 64), eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos, attn_size)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLPBlock(dim, mlp_dim, nn.GELU)
        self.window_size = window_size
        self.drop_path = 0.0  # stochastic depth, training only (ImageEncoderViT.set_drop_path)

    def _drop(self, branch: torch.Tensor) -> torch.Tensor:
        """Zero the residual branch of a random subset of samples, rescaling the rest."""
        if not self.training or self.drop_path == 0.0:
            return branch
        keep = 1.0 - self.drop_path
        mask = torch.rand((branch.shape[0],) + (1,) * (branch.ndim - 1), device=branch.device) < keep
        return branch * mask.to(branch.dtype) / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if torch.is_autocast_enabled(x.device.type):
            # qkv would cast anyway; casting first halves the window-partition copies
            x = x.to(torch.get_autocast_dtype(x.device.type))
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            x, padded = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, padded, (height, width))
        else:
            x = self.attn(x)
        if torch.is_grad_enabled():
            x = shortcut + self._drop(x.to(shortcut.dtype))
            return x + self._drop(self.mlp(self.norm2(x)).to(x.dtype))
        # Inference: accumulate into the residual stream in place (the encoder owns it). Under
        # autocast the branches are bf16 and the stream fp32, as with the reference's adds.
        x = shortcut.add_(x)
        return x.add_(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over a ``(B, H, W, C)`` grid with decomposed rel-pos terms."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, use_rel_pos: bool = True,
                 input_size: tuple[int, int] = (14, 14)) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
        self.mode = "math"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, tokens, -1).unbind(0)
        # A few images at a time: a global block's scores are heads·4096² floats per image.
        group = max(1, ATTN_CHUNK_ELEMS // (self.num_heads * tokens * tokens))
        outs = []
        for start in range(0, batch, group):
            rows = slice(start * self.num_heads, min(batch, start + group) * self.num_heads)
            outs.append(self._attend(q[rows], k[rows], v[rows], (height, width)))
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        out = out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4)
        return self.proj(out.reshape(batch, height, width, -1))

    def _attend(self, q, k, v, size: tuple[int, int]) -> torch.Tensor:
        """Attention for ``(images·heads, tokens, head_dim)`` q, k, v."""
        if self.mode == "sdpa":
            return self._sdpa(q, k, v, q.shape[0] // self.num_heads, size)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            add_decomposed_rel_pos_(attn, q, self.rel_pos_h, self.rel_pos_w, size)
        return softmax_(attn) @ v

    def _sdpa(self, q, k, v, batch: int, size: tuple[int, int]) -> torch.Tensor:
        """Fused attention with the rel-pos terms as an additive mask.

        Under autocast the kernel runs outside autocast with low-precision q/k/v (autocast
        would also cast the fp32 mask, which selects a far slower kernel), and the rel-pos terms
        are folded into q/k instead of a mask (:func:`rel_pos_folded_qkv`): for a global block
        the dense mask costs more memory traffic than the extra matrix work on bf16 units.
        """
        dtype = q.dtype
        device = q.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
        tokens, head_dim = q.shape[1], q.shape[2]
        shape = (batch, self.num_heads, tokens, -1)
        with torch.autocast(device, enabled=False):
            if not self.use_rel_pos:
                out = F.scaled_dot_product_attention(q.to(dtype).view(shape), k.to(dtype).view(shape),
                                                     v.to(dtype).view(shape), scale=self.scale)
            elif dtype != torch.float32:
                qa, ka, va = rel_pos_folded_qkv(q, k, v, self.rel_pos_h, self.rel_pos_w, size,
                                                self.scale, dtype)
                out = F.scaled_dot_product_attention(qa.view(shape), ka.view(shape), va.view(shape),
                                                     scale=1.0)[..., :head_dim]
            else:
                bias = decomposed_rel_pos_bias(q.float(), self.rel_pos_h.float(),
                                               self.rel_pos_w.float(), size)
                out = F.scaled_dot_product_attention(
                    q.to(dtype).view(shape), k.to(dtype).view(shape), v.to(dtype).view(shape),
                    attn_mask=bias.view(batch, self.num_heads, tokens, tokens), scale=self.scale)
        return out.reshape(batch * self.num_heads, tokens, head_dim)


def softmax_(attn: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, in place where that is safe (plain fp32, no autograd).

    The attention matrix of a global block is B·heads·4096² floats (805 MB for ViT-B); a second
    copy doubles the peak memory and the memory traffic for identical values.
    """
    if (attn.dtype == torch.float32 and not attn.requires_grad
            and not torch.is_autocast_enabled(attn.device.type)):
        return torch.softmax(attn, dim=-1, out=attn)
    return attn.softmax(dim=-1)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, H, W, C)`` → ``(B·nW, window, window, C)``, zero-padding H, W up to a multiple."""
    batch, height, width, channels = x.shape
    pad_h = (window - height % window) % window
    pad_w = (window - width % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window, window, padded_w // window, window, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, channels)
    return windows, (padded_h, padded_w)


def window_unpartition(windows: torch.Tensor, window: int, padded: tuple[int, int],
                       size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, dropping the padding."""
    padded_h, padded_w = padded
    height, width = size
    batch = windows.shape[0] // ((padded_h // window) * (padded_w // window))
    x = windows.view(batch, padded_h // window, padded_w // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, padded_h, padded_w, -1)
    if padded_h > height or padded_w > width:
        x = x[:, :height, :width, :].contiguous()
    return x


def rel_pos_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """``(q_size, k_size, C)`` embeddings of every query-key offset along one axis.

    The learned table holds one row per offset; it is resized linearly when the attended
    extent differs from the one it was trained for.
    """
    length = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != length:
        rel_pos = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1),
                                size=length, mode="linear")
        rel_pos = rel_pos.reshape(-1, length).permute(1, 0)
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[offsets.long()]


def _rel_pos_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                   size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query, the height term ``(B, h, w, k_h)`` and width term ``(B, h, w, k_w)``."""
    height, width = size
    table_h = rel_pos_table(height, height, rel_pos_h)
    table_w = rel_pos_table(width, width, rel_pos_w)
    grid_q = q.reshape(q.shape[0], height, width, q.shape[-1])
    rel_h = torch.einsum("bhwc,hkc->bhwk", grid_q, table_h)
    rel_w = torch.einsum("bhwc,wkc->bhwk", grid_q, table_w)
    return rel_h, rel_w


def add_decomposed_rel_pos_(attn: torch.Tensor, q: torch.Tensor, rel_pos_h: torch.Tensor,
                            rel_pos_w: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Add the MViTv2 rel-pos terms to ``attn`` ``(B, hw, hw)`` in place.

    Same additions in the same order as the reference ((attn + rel_h) + rel_w), so the values
    are identical; only the two temporary full-size tensors are gone.
    """
    height, width = size
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, size)
    grid = attn.view(attn.shape[0], height, width, height, width)
    grid.add_(rel_h[:, :, :, :, None])
    grid.add_(rel_w[:, :, :, None, :])
    return attn


def rel_pos_folded_qkv(q, k, v, rel_pos_h, rel_pos_w, size: tuple[int, int], scale: float,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v whose plain dot products include the rel-pos terms (for scale-1 attention).

    ``[q·s, rel_h(q), rel_w(q)] · [k, onehot(k_row), onehot(k_col)] = s q·k + rel_h[k_row] +
    rel_w[k_col]``; v is zero-padded to the same width because the fused kernels want equal
    head dims. Costs 3× the q·k and a·v products but no ``tokens²`` mask in memory.
    """
    height, width = size
    rel_h, rel_w = _rel_pos_terms(q.float(), rel_pos_h.float(), rel_pos_w.float(), size)
    batch, tokens, head_dim = q.shape
    rows = torch.eye(height, dtype=dtype, device=q.device).repeat_interleave(width, dim=0)
    cols = torch.eye(width, dtype=dtype, device=q.device).repeat(height, 1)
    qa = torch.cat([(q.float() * scale).to(dtype), rel_h.reshape(batch, tokens, height).to(dtype),
                    rel_w.reshape(batch, tokens, width).to(dtype)], dim=-1)
    ka = torch.cat([k.to(dtype), torch.cat([rows, cols], dim=1).expand(batch, -1, -1)], dim=-1)
    va = torch.cat([v.to(dtype), v.new_zeros(batch, tokens, height + width, dtype=dtype)], dim=-1)
    return qa, ka, va


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            size: tuple[int, int]) -> torch.Tensor:
    """The rel-pos terms as a dense ``(B, hw, hw)`` additive attention mask."""
    height, width = size
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, size)
    batch = q.shape[0]
    if rel_h.requires_grad or torch.compiler.is_compiling():
        # training (out= variants have no autograd) or torch.compile (which fuses the add)
        bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    else:
        bias = torch.empty(batch, height, width, height, width, dtype=rel_h.dtype, device=q.device)
        torch.add(rel_h[:, :, :, :, None], rel_w[:, :, :, None, :], out=bias)
    return bias.reshape(batch, height * width, height * width)

