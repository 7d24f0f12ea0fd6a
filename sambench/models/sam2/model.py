"""The ``sam2`` model: our SAM 2 / 2.1 image path behind the PromptableModel protocol.

A :class:`~sambench.models.family_model.FamilyModel` (embedding, cache, upsampling and options
are the shared ones) with SAM 2's prompt path: the embedding keeps the image embedding and the
two projected high-resolution maps (``extras``, cached on disk with it); ``decode`` encodes
boxes as corner points before the clicks, always with the padding point, and runs SAM 2's
decoder on all prompts of an image in one call (chunked to bound memory). Points are scaled to
the stretched 1024² frame in float32 as the reference predictor does (``x / W · 1024``). The
returned low-res logits are clamped to ±32, the masks made from the unclamped ones, as in
``SAM2ImagePredictor``.

Options: ``dynamic_multimask`` (the family's, recorded in the config; default on as in
``build_sam2``), ``trunk`` (a :class:`~.hiera.HieraConfig` for a non-released layout), and the
runtime ones ``device``, ``dtype``, ``compile``, ``prompt_chunk``.
"""
from __future__ import annotations

import numpy as np
import torch

from sambench.models.base import PromptBatch, batch_prompts
from sambench.models.family_model import FamilyModel, SamEmbedding, finish_prediction
from sambench.models.runtime import compiled
from sambench.models.sam2.mask_decoder import prompt_points, skip_rows
from sambench.models.sam2.sam2 import IMAGE_SIZE
from sambench.types import Prediction

LOGIT_CLAMP = 32.0


def scale_coords(coords: np.ndarray, original_size: tuple[int, int]) -> torch.Tensor:
    """Pixel ``(..., 2)`` ``(x, y)`` of the original image → the stretched 1024² frame, in the
    reference's float32 order (divide by the side, then multiply by 1024)."""
    height, width = original_size
    coords = torch.as_tensor(np.asarray(coords), dtype=torch.float32).clone()
    coords[..., 0] = coords[..., 0] / width
    coords[..., 1] = coords[..., 1] / height
    return coords * IMAGE_SIZE


class Sam2Model(FamilyModel):
    """Our SAM 2 implementation as a :class:`~sambench.models.base.PromptableModel`."""

    runtime_options = ("compile", "prompt_chunk")

    def __init__(self, net, family, *, prompt_chunk: int = 16, **options) -> None:
        super().__init__(net, family, prompt_chunk=prompt_chunk, **options)
        self._encoder = compiled(self.sam.encode) if self.compile else self.sam.encode

    def decode(self, embedding: SamEmbedding, batch: PromptBatch, multimask: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unclamped low-res logits ``(B, K, 256, 256)`` and IoU predictions ``(B, K)``."""
        logits, scores, _ = self.decode_tokens(embedding, batch, multimask)
        return logits, scores

    def decode_tokens(self, embedding: SamEmbedding, batch: PromptBatch, multimask: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`decode` plus the mask token each output came from ``(B, K)`` (1–3 for
        multimask; 0, or a fallback 1–3 with the dynamic multimask rule, for one mask)."""
        self._check_text(batch)
        points = boxes = masks = None
        if batch.points is not None:
            points = (scale_coords(batch.points, embedding.original_size).to(self.device),
                      torch.from_numpy(batch.labels.astype(np.int32)).to(self.device))
        if batch.boxes is not None:
            boxes = scale_coords(batch.boxes.reshape(-1, 2, 2), embedding.original_size).to(self.device)
        if batch.mask_input is not None:
            masks = torch.from_numpy(batch.mask_input).to(self.device)
        points = prompt_points(points, boxes)
        image = embedding.features.to(self.device)
        logits, scores, tokens, cache = [], [], [], {}
        with torch.inference_mode(), self._autocast():
            skips = skip_rows(embedding.extras["feat_s0"].to(self.device),
                              embedding.extras["feat_s1"].to(self.device))
            dense_pe = self.sam.prompt_encoder.get_dense_pe()
            for start in range(0, batch.size, self.prompt_chunk):
                part = slice(start, start + self.prompt_chunk)
                sparse, dense = self.sam.prompt_encoder((points[0][part], points[1][part]), None,
                                                        None if masks is None else masks[part], factored=True)
                low, iou, chosen = self.sam.mask_decoder(image, dense_pe, sparse, dense, multimask, skips,
                                                         cache=cache)
                logits.append(low.float())
                scores.append(iou.float())
                tokens.append(chosen)
        return torch.cat(logits), torch.cat(scores), torch.cat(tokens)

    def predict(self, embedding: SamEmbedding, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True, return_masks: bool = True, text=None) -> Prediction:
        """Masks for one prompt or a batch on one embedded image; ``low_res_logits`` clamped to
        ±32 (the reference's feedback input), ``masks`` from the unclamped logits."""
        batch = batch_prompts(points, labels, box, mask_input, text, self.capabilities.low_res_shape)
        logits, scores = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, logits) if return_masks else None
        return finish_prediction(masks, scores, logits.clamp(-LOGIT_CLAMP, LOGIT_CLAMP), batch)

