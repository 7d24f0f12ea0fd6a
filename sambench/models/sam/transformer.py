"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Each layer: token self-attention → tokens attend to the image → token MLP → the image attends
to the tokens, each with a residual and a post-LayerNorm; the first layer's self-attention has
no PE and no residual; a final token→image attention closes (SAM paper App. A; official
``transformer.py``). Names follow the official code so its checkpoints load.

The image side is where the cost is: B prompts × 4096 image tokens × 256 channels, against
~7 tokens per prompt. Four exact rewrites keep it small (same maths, only the rounding of fp32
sums differs, far inside the parity bounds):

- **Shared image.** Before the first image update every prompt sees the same image tokens (no
  mask prompt), so their projections are computed once, not once per prompt (the reference
  repeats the embedding B times).
- **Mask prompts kept factored.** A mask prompt's dense embedding is a 1×1 conv of 16
  channels, ``g·W₃ᵀ + b₃``, so in the first layer the image tokens are one shared image plus a
  rank-16 term per prompt (:class:`LowRankImage`). Each projection of them is the shared
  image's, computed once, plus a 16-wide product per prompt, instead of a 256-wide one.
- **Only the tokens that are read.** The final token→image attention is evaluated for the
  leading ``n_out`` tokens only (the IoU and mask tokens the decoder uses); its outputs for the
  other tokens are never read. Each row is the same computation as before.
- **Project the tokens instead of the image.** With few tokens, ``q·(W_k x + b_k)`` is
  computed as ``(W_kᵀ q)·x`` (the ``q·b_k`` term is constant along the softmax axis and drops
  out), ``Σ a (W_v x + b_v)`` as ``W_v (Σ a x) + b_v`` (weights sum to 1), and the image-side
  output projection ``W_o Σ a v`` as ``Σ a (W_o v)``. Each per-prompt image-side product then
  has heads·tokens (~56) columns instead of the projection width (128).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn

from sambench.models.sam.common import MLPBlock


@dataclass
class LowRankImage:
    """Image tokens ``shared + features·weightᵀ``, kept in that form until they must be formed:
    one image ``(1, N, C)`` shared by all prompts plus each prompt's ``(B, N, r)`` features
    through a ``(C, r)`` weight, r ≪ C (mask prompts: r = 16, see
    ``PromptEncoder._downscale_masks``)."""

    shared: Tensor
    features: Tensor
    weight: Tensor

    def dense(self) -> Tensor:
        """The ``(B, N, C)`` image tokens."""
        return torch.baddbmm(self.shared, self.features, self.weight.t().expand(len(self.features), -1, -1))

    def project(self, linear: nn.Linear, cache: Optional[dict]) -> Tensor:
        """``linear(tokens)`` ``(B, N, out)``: the shared image's projection (kept in ``cache``)
        plus an r-wide product per prompt."""
        base = cached(cache, (id(linear), "shared"), lambda: linear(self.shared))
        low = (linear.weight @ self.weight).t()
        return torch.baddbmm(base, self.features, low.expand(len(self.features), -1, -1))


Image = Union[Tensor, LowRankImage]


def cached(cache: Optional[dict], key, compute):
    """``compute()``, memoised in ``cache`` (one decode call: one image, chunks of prompts)."""
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attention_downsample_rate: int = 2, norm_eps: float = 1e-5) -> None:
        """``norm_eps``: the LayerNorms' ε (1e-5 in SAM v1; EfficientViT-SAM uses 1e-6)."""
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate,
                                 skip_first_layer_pe=(i == 0), norm_eps=norm_eps)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads,
                                                   downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim, eps=norm_eps)

    def forward(self, image_embedding: Image, image_pe: Tensor, point_embedding: Tensor,
                cache: Optional[dict] = None, n_out: Optional[int] = None) -> tuple[Tensor, Tensor]:
        """Run the layers.

        ``image_embedding`` is channels-last ``(Bi, N, C)`` with Bi = 1 (shared by all prompts)
        or B, or a :class:`LowRankImage`; ``image_pe`` ``(1, N, C)``; ``point_embedding``
        ``(B, T, C)``. Returns the first ``n_out`` tokens (default all) ``(B, n_out, C)`` and the
        image tokens ``(B, N, C)`` (still ``(1, N, C)`` if depth is 0). ``cache`` (a dict per
        image) keeps the projections of the image shared by all prompts across prompt chunks.
        """
        queries, keys = point_embedding, image_embedding
        for layer in self.layers:
            # only the unchanged image is shared: the first image update depends on the prompt
            queries, keys = layer(queries, keys, point_embedding, image_pe,
                                  cache if keys is image_embedding else None)
        if isinstance(keys, LowRankImage):  # no layers
            keys = keys.dense()
        cache = cache if keys is image_embedding else None
        keys_pe = cached(cache, (id(self), "keys+pe"), lambda: keys + image_pe)
        queries, point_embedding = queries[:, :n_out], point_embedding[:, :n_out]
        attn_out = self.final_attn_token_to_image.tokens_to_image(
            queries + point_embedding, keys_pe, keys, cache)
        return self.norm_final_attn(queries + attn_out), keys


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int = 2048,
                 attention_downsample_rate: int = 2, skip_first_layer_pe: bool = False,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim, eps=norm_eps)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads,
                                                   downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim, eps=norm_eps)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim, eps=norm_eps)
        self.norm4 = nn.LayerNorm(embedding_dim, eps=norm_eps)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads,
                                                   downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Image, query_pe: Tensor, key_pe: Tensor,
                cache: Optional[dict] = None) -> tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        # the image with PE serves both cross-attentions
        if isinstance(keys, LowRankImage):  # the PE goes to the shared part
            keys_pe = LowRankImage(cached(cache, (id(self), "keys+pe"), lambda: keys.shared + key_pe),
                                   keys.features, keys.weight)
        else:
            keys_pe = cached(cache, (id(self), "keys+pe"), lambda: keys + key_pe)
        queries = self.norm2(queries + self.cross_attn_token_to_image.tokens_to_image(
            queries + query_pe, keys_pe, keys, cache))
        queries = self.norm3(queries + self.mlp(queries))

        residual = keys.dense() if isinstance(keys, LowRankImage) else keys
        keys = self.norm4(self.cross_attn_image_to_token.image_to_tokens(
            keys_pe, queries + query_pe, queries, residual=residual, cache=cache))
        return queries, keys


class Attention(nn.Module):
    """Multi-head attention whose q/k/v projections may narrow the width (``downsample_rate``)."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide width {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    @property
    def head_dim(self) -> int:
        return self.internal_dim // self.num_heads

    def _heads(self, x: Tensor) -> Tensor:
        batch, n, _ = x.shape
        return x.reshape(batch, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Plain attention (the reference computation); batch axes broadcast."""
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        out = torch.softmax(attn, dim=-1) @ v
        out = out.transpose(1, 2).flatten(2)
        return self.out_proj(out)

    def tokens_to_image(self, q: Tensor, k: Image, v: Image, cache: Optional[dict] = None) -> Tensor:
        """Tokens ``q`` ``(B, T, C)`` attend to image tokens ``k``, ``v`` ``(Bi, N, C)``."""
        batch, n_tok, _ = q.shape
        heads, head_dim = self.num_heads, self.head_dim
        kh = self._project_shared(self.k_proj, k, batch, cache)
        if kh is not None:
            return self._attend_projected(q, kh, self._project_shared(self.v_proj, v, batch, cache))
        if heads * n_tok >= self.internal_dim:
            return self.forward(q, k, v)
        # Per-prompt image: fold W_k into the queries and W_v after the weighted sum.
        qh = self.q_proj(q).view(batch, n_tok, heads, head_dim)
        w_k = self.k_proj.weight.view(heads, head_dim, -1)
        w_v = self.v_proj.weight.view(heads, head_dim, -1)
        r = torch.einsum("bthd,hdc->bhtc", qh / math.sqrt(head_dim), w_k)
        attn = torch.softmax(r.reshape(batch, heads * n_tok, -1) @ k.transpose(1, 2), dim=-1)
        z = (attn @ v).view(batch, heads, n_tok, -1)
        out = torch.einsum("bhtc,hdc->bthd", z, w_v).reshape(batch, n_tok, -1) + self.v_proj.bias
        return self.out_proj(out)

    @staticmethod
    def _project_shared(linear: nn.Linear, image: Image, batch: int, cache: Optional[dict]) -> Optional[Tensor]:
        """``linear(image)`` ``(Bi, N, out)`` where the image is shared by all prompts, once (kept
        in ``cache``), plus for a :class:`LowRankImage` its per-prompt term; None for a dense
        per-prompt image, whose projection is not worth forming."""
        if isinstance(image, LowRankImage):
            return image.project(linear, cache)
        if image.shape[0] == 1 and batch > 1:
            return cached(cache, (id(linear), "shared"), lambda: linear(image))
        return None

    def _attend_projected(self, q: Tensor, kh: Tensor, vh: Tensor) -> Tensor:
        """Tokens ``q`` ``(B, T, C)`` attend to image tokens already projected, ``kh``, ``vh``
        ``(Bi, N, internal)``. With Bi = 1 every prompt's queries go into one product per head."""
        batch, n_tok, _ = q.shape
        n_img = kh.shape[1]
        heads, head_dim = self.num_heads, self.head_dim
        qh = self.q_proj(q).view(batch, n_tok, heads, head_dim)
        shared = kh.shape[0] == 1
        if shared:  # (heads, B·T, d) against (heads, d, N)
            kh = kh[0].view(n_img, heads, head_dim).permute(1, 2, 0)
            vh = vh[0].view(n_img, heads, head_dim).transpose(0, 1)
            qh = qh.view(batch * n_tok, heads, head_dim).transpose(0, 1)
        else:  # (B, heads, T, d) against (B, heads, d, N)
            kh = kh.view(batch, n_img, heads, head_dim).permute(0, 2, 3, 1)
            vh = vh.view(batch, n_img, heads, head_dim).transpose(1, 2)
            qh = qh.transpose(1, 2)
        out = torch.softmax((qh @ kh) / math.sqrt(head_dim), dim=-1) @ vh
        if shared:
            out = out.view(heads, batch, n_tok, head_dim).permute(1, 2, 0, 3)
        else:
            out = out.transpose(1, 2)
        return self.out_proj(out.reshape(batch, n_tok, self.internal_dim))

    def image_to_tokens(self, q: Image, k: Tensor, v: Tensor, residual: Tensor,
                        cache: Optional[dict] = None) -> Tensor:
        """``residual`` + image tokens ``q`` ``(Bi, N, C)`` attending to tokens ``k``, ``v`` ``(B, T, C)``.

        Returns ``(B, N, C)``. The residual is added inside the final product, saving a pass
        over the B·N·C image tokens.
        """
        batch, n_tok, _ = k.shape
        heads, head_dim = self.num_heads, self.head_dim
        qh = self._project_shared(self.q_proj, q, batch, cache)
        if qh is None and heads * n_tok >= self.internal_dim:
            return residual + self.forward(q, k, v)
        n_img = residual.shape[1]
        kh = self.k_proj(k).view(batch, n_tok, heads, head_dim)
        vh = self.v_proj(v).view(batch, n_tok, heads, head_dim)
        kk = kh / math.sqrt(head_dim)
        if qh is None:
            # Fold W_q into the keys; its bias gives a per-key offset that does not cancel.
            w_q = self.q_proj.weight.view(heads, head_dim, -1)
            r = torch.einsum("bthd,hdc->bhtc", kk, w_q).reshape(batch, heads * n_tok, -1)
            offset = torch.einsum("bthd,hd->bht", kk, self.q_proj.bias.view(heads, head_dim))
            logits = torch.baddbmm(offset.reshape(batch, heads * n_tok, 1), r, q.transpose(1, 2))
            attn = torch.softmax(logits.view(batch, heads, n_tok, n_img), dim=2)
            attn = attn.view(batch, heads * n_tok, n_img)
        elif qh.shape[0] == 1:
            # One product per head covers every prompt's keys.
            qh = qh[0].view(n_img, heads, head_dim).permute(1, 2, 0)
            kk = kk.permute(2, 0, 1, 3).reshape(heads, batch * n_tok, head_dim)
            logits = (kk @ qh).view(heads, batch, n_tok, n_img)
            attn = torch.softmax(logits, dim=2).transpose(0, 1).reshape(batch, heads * n_tok, n_img)
        else:  # each prompt's own projected image
            qh = qh.view(batch, n_img, heads, head_dim).permute(0, 2, 3, 1)
            attn = torch.softmax(kk.transpose(1, 2) @ qh, dim=2).view(batch, heads * n_tok, n_img)
        # W_o applied to each token's values before the weighted sum over tokens and heads; the
        # weights of each head sum to 1, so b_o / heads per row adds exactly b_o.
        w_o = self.out_proj.weight.view(-1, heads, head_dim)
        u = torch.einsum("bthd,chd->bhtc", vh, w_o).reshape(batch, heads * n_tok, -1)
        u = u + self.out_proj.bias / heads
        return torch.baddbmm(residual, attn.transpose(1, 2), u)
