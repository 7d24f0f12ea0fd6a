"""HQ-SAM's mask decoder: SAM v1's decoder plus a high-quality output token and feature.

One more output token (``hf_token``) runs through the two-way transformer with SAM's tokens;
its MLP (``hf_mlp``) is dotted with an *HQ feature*: SAM's upscaled mask feature refined by two
3×3 convs (``embedding_maskfeature``) plus a per-image term from the image embedding
(``embedding_encoder``) and the encoder's early feature (``compress_vit_feat``, the ViT's first
global block, or Light HQ-SAM's TinyViT stage 1). HQ-SAM returns one mask per prompt: SAM's
token 0 (single mask) or its best-scored multimask token, plus the HQ mask, or the HQ mask alone
with ``hq_token_only`` (HQ-SAM paper; the ``segment_anything_hq`` package's
``mask_decoder_hq.py``). Names follow that code so its checkpoints load.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from sambench.models.sam.common import LayerNorm2d
from sambench.models.sam.mask_decoder import MLP, MaskDecoder
from sambench.models.sam.transformer import cached


class HQMaskDecoder(MaskDecoder):
    """:class:`MaskDecoder` with HQ-SAM's head; ``forward`` takes the early feature ``interm``."""

    def __init__(self, *, transformer_dim: int, vit_dim: int, hq_token_only: bool = False, **options) -> None:
        super().__init__(transformer_dim=transformer_dim, **options)
        c = transformer_dim
        self.hq_token_only = hq_token_only
        self.hf_token = nn.Embedding(1, c)
        self.hf_mlp = MLP(c, c, c // 8, 3)
        self.compress_vit_feat = nn.Sequential(
            nn.ConvTranspose2d(vit_dim, c, kernel_size=2, stride=2), LayerNorm2d(c), nn.GELU(),
            nn.ConvTranspose2d(c, c // 8, kernel_size=2, stride=2))
        self.embedding_encoder = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2), LayerNorm2d(c // 4), nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2))
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(c // 8, c // 4, 3, 1, 1), LayerNorm2d(c // 4), nn.GELU(),
            nn.Conv2d(c // 4, c // 8, 3, 1, 1))

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings, multimask_output: bool, cache: Optional[dict] = None,
                interm: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Low-res logits ``(B, 1, 4h, 4w)`` and the chosen SAM token's IoU ``(B, 1)``.

        ``interm``: the encoder's early feature, channels-last ``(1, h, w, vit_dim)``; the rest
        as :meth:`MaskDecoder.forward`. Multimask picks SAM's best of tokens 1..K by predicted
        IoU (first on ties, as ``torch.max``) instead of returning K masks.
        """
        if interm is None:
            raise ValueError("HQ-SAM's decoder needs the encoder's early feature (interm)")
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight, self.hf_token.weight])
        n_out = output_tokens.shape[0]
        hs, src = self.run_transformer(image_embeddings, image_pe, output_tokens, sparse_prompt_embeddings,
                                       dense_prompt_embeddings, cache, n_out)
        device = src.device.type
        if torch.is_autocast_enabled(device):
            # The heads work on 256² maps with large logits: in bf16 their error is tens of
            # times the reference's, so they stay fp32 (the transformer is where the time is).
            with torch.autocast(device, enabled=False):
                return self._heads(image_embeddings.float(), src.float(), hs.float(), interm.float(),
                                   multimask_output, cache)
        return self._heads(image_embeddings, src, hs, interm, multimask_output, cache)

    def _heads(self, image_embeddings: Tensor, src: Tensor, hs: Tensor, interm: Tensor, multimask_output: bool,
               cache: Optional[dict]) -> tuple[Tensor, Tensor]:
        """IoU, SAM's chosen mask and the HQ mask from the transformer's outputs."""
        n_out = hs.shape[1]
        height, width = image_embeddings.shape[-2:]
        iou = self.iou_prediction_head(hs[:, 0, :])
        if multimask_output:
            scores, token = iou[:, 1:].max(dim=1)
            token = token + 1
        else:
            scores, token = iou[:, 0], torch.zeros(len(iou), dtype=torch.long, device=iou.device)
        upscaled = self.upscale(src, height, width)
        hq_features = cached(cache, "hq features", lambda: (
            self.embedding_encoder(image_embeddings)
            + self.compress_vit_feat(interm.permute(0, 3, 1, 2))))
        hq_in = self.hf_mlp(hs[:, n_out - 1, :])
        masks = torch.einsum("bc,bchw->bhw", hq_in, self.embedding_maskfeature(upscaled) + hq_features)
        if not self.hq_token_only:
            sam_in = torch.stack([mlp(hs[:, 1 + i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
            chosen = sam_in[torch.arange(len(token), device=token.device), token]
            masks = torch.einsum("bc,bchw->bhw", chosen, upscaled) + masks
        return masks[:, None], scores[:, None]
