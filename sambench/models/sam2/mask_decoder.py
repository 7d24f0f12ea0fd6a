"""SAM 2's prompt encoder and mask decoder, on top of our SAM v1 layers.

The two-way transformer, the prompt encoder's Fourier features and mask downscaling, and the
hypernetwork heads are SAM v1's (``sambench.models.sam``; checkpoint names mapped in
:mod:`.checkpoint`), so SAM 2 gets the same batched, image-shared decoder. What SAM 2 changes
(reference ``sam2/modeling/sam/{prompt_encoder,mask_decoder}.py`` and
``sam2_image_predictor.py``, facebookresearch/sam2 at 2b90b9f):

- **Box as points.** A box is two corner points with labels 2 and 3 placed before the clicks,
  and the padding point (label −1) is always appended (:func:`prompt_points`).
- **Object-score token.** An extra output token precedes the IoU token; its score head is
  loaded but not used on images.
- **High-resolution skips.** ``conv_s1`` / ``conv_s0`` project the stride-8 / stride-4 neck
  maps (at embed time, as the reference predictor does) and they are added after the first
  and second transposed conv of the upscaling.
- **Sigmoid IoU.** The IoU head's outputs go through a sigmoid.
- **Dynamic multimask.** For a single-mask request the single-mask token 0 is kept only if its
  stability score (IoU of the mask at logit thresholds ±0.05) is ≥ 0.98; otherwise the
  multimask token with the highest predicted IoU replaces it (``dynamic_multimask_via_
  stability``, on in ``build_sam2``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from sambench.models.sam.mask_decoder import MLP, MaskDecoder
from sambench.models.sam.prompt_encoder import PromptEncoder
from sambench.models.sam.transformer import Image

BOX_LABELS = (2, 3)  # top-left, bottom-right corner
STABILITY_DELTA = 0.05
STABILITY_THRESH = 0.98


def prompt_points(points: Optional[tuple[Tensor, Tensor]], boxes: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """SAM 2's one sparse input: box corners ``(B, 2, 2)`` (labels 2, 3) before the clicks."""
    if boxes is None:
        return points
    corners = boxes.reshape(-1, 2, 2)
    labels = torch.tensor([BOX_LABELS], dtype=torch.int32, device=boxes.device).expand(len(corners), -1)
    if points is None:
        return corners, labels
    return torch.cat([corners, points[0]], dim=1), torch.cat([labels, points[1].to(labels.dtype)], dim=1)


class Sam2PromptEncoder(PromptEncoder):
    """SAM v1's prompt encoder where every point kind (0–3) adds its learned embedding."""

    def _embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        embedding = super()._embed_points(points, labels, pad)
        if pad:
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        labels = labels[..., None]
        for kind in BOX_LABELS:
            embedding = torch.where(labels == kind, embedding + self.point_embeddings[kind].weight, embedding)
        return embedding

    def forward(self, points, boxes=None, masks=None, text=None, factored: bool = False):
        """Points (box corners included, see :func:`prompt_points`) always get the pad point."""
        if boxes is not None:
            raise ValueError("SAM 2 encodes boxes as points: use prompt_points")
        return super().forward(points, None, masks, text, factored)


def stability_scores(logits: Tensor, delta: float = STABILITY_DELTA) -> Tensor:
    """IoU of ``logits > delta`` within ``logits > -delta`` over the last two axes (1 if empty)."""
    flat = logits.flatten(-2)
    inner = (flat > delta).sum(-1).float()
    outer = (flat > -delta).sum(-1).float()
    return torch.where(outer > 0, inner / outer, 1.0)


def skip_rows(feat_s0: Tensor, feat_s1: Tensor) -> tuple[Tensor, Tensor]:
    """The projected high-res maps ``(1, c2, 4h, 4w)``, ``(1, c1, 2h, 2w)`` in the row layout
    of ``MaskDecoder.upscale_rows``: ``(h·w, (di, dj, c1))`` and ``(h·w·4, (ei, ej, c2))``."""
    _, c1, h2, w2 = feat_s1.shape
    h, w = h2 // 2, w2 // 2
    s1 = feat_s1[0].view(c1, h, 2, w, 2).permute(1, 3, 2, 4, 0).reshape(h * w, 4 * c1)
    c2 = feat_s0.shape[1]
    s0 = feat_s0[0].view(c2, h, 2, 2, w, 2, 2).permute(1, 4, 2, 5, 3, 6, 0).reshape(4 * h * w, 4 * c2)
    return s1, s0


class Sam2MaskDecoder(MaskDecoder):
    def __init__(self, *, transformer_dim: int, transformer, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256,
                 dynamic_multimask: bool = True) -> None:
        super().__init__(transformer_dim=transformer_dim, transformer=transformer,
                         num_multimask_outputs=num_multimask_outputs, iou_head_depth=iou_head_depth,
                         iou_head_hidden_dim=iou_head_hidden_dim)
        self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)
        self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.dynamic_multimask = dynamic_multimask

    def project_high_res(self, feat_s0: Tensor, feat_s1: Tensor) -> tuple[Tensor, Tensor]:
        """The neck's stride-4 and stride-8 maps → the skip features (once per image)."""
        return self.conv_s0(feat_s0), self.conv_s1(feat_s1)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Image, multimask_output: bool, skips: tuple[Tensor, Tensor],
                cache: Optional[dict] = None) -> tuple[Tensor, Tensor, Tensor]:
        """Logits ``(B, K, 4h, 4w)``, sigmoid IoU ``(B, K)`` and the mask token each came from
        ``(B, K)`` (1–3 for multimask; 0, or 1–3 after a dynamic fallback, for a single mask).

        Arguments as :meth:`MaskDecoder.forward`, plus ``skips`` from :func:`skip_rows`.
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight,
                                   self.mask_tokens.weight], dim=0)
        dynamic = not multimask_output and self.dynamic_multimask
        token_ids = range(1 if multimask_output else 0, self.num_mask_tokens if multimask_output or dynamic else 1)
        hs, src = self.run_transformer(image_embeddings, image_pe, output_tokens, sparse_prompt_embeddings,
                                       dense_prompt_embeddings, cache, n_out=3 + token_ids[-1])
        iou = torch.sigmoid(self.iou_prediction_head(hs[:, 1, :]))[:, token_ids.start:token_ids.stop]
        hyper_in = torch.stack([self.output_hypernetworks_mlps[i](hs[:, 2 + i, :]) for i in token_ids], dim=1)
        masks = self._upscale_dot(src, hyper_in, *image_embeddings.shape[-2:], skips=skips)
        chosen = torch.tensor(list(token_ids), device=masks.device).expand(batch, -1)
        if dynamic:
            masks, iou, chosen = self._dynamic_choice(masks, iou)
        return masks, iou, chosen

    @staticmethod
    def _dynamic_choice(masks: Tensor, iou: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Token 0 where it is stable, else the multimask token with the best predicted IoU."""
        rows = torch.arange(len(masks), device=masks.device)
        best = 1 + iou[:, 1:].argmax(dim=1)
        stable = stability_scores(masks[:, 0].float()) >= STABILITY_THRESH
        chosen = torch.where(stable, 0, best)
        return masks[rows, chosen][:, None], iou[rows, chosen][:, None], chosen[:, None]
