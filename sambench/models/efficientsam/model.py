"""The ``efficientsam`` model: our EfficientSAM behind the PromptableModel protocol.

Pre- and post-processing are upstream's (``EfficientSam.preprocess`` / ``predict_masks`` and
the README example): the uint8 image as [0, 1] floats, stretched to 1024 × 1024 (bilinear,
no antialias), then ImageNet-normalised; point coordinates scaled per axis to that square
(negative coordinates mean "no point"); every prompt padded to 6 points with label −1; a box
is two corner points (labels 2 and 3) placed before the clicks; the 256² low-res logits cover
the stretched square and are upsampled bicubically straight to the image size; a pixel is in
the mask when its logit is ≥ 0. There is no mask input, and more than 6 points (a box counts
2) is an error here, where upstream silently drops the extra points.

Single-mask output (``multimask=False``): upstream's decoder has a single-mask token (token 0),
but its authors advise against it (it was not trained to be used alone: yformer/EfficientSAM
issue #36) and their own code takes the most confident of the 3 multimask outputs. Option
``single_mask``: ``"best"`` (default, upstream's usage) or ``"token0"``; recorded in
``model.config``.

Runtime options: ``device``, ``dtype`` (``float32`` parity path, ``bfloat16`` / ``float16``
autocast), ``attention`` (``auto``: math in fp32, SDPA otherwise; encoder and decoder),
``compile`` (the image encoder), ``prompt_chunk``, ``single_mask``. The family's options
(``num_heads``, ``decoder_num_heads``, ``img_size``) go to :func:`.checkpoint.infer_config`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sambench.errors import SambenchError
from sambench.models.base import ModelInfo, PromptBatch, batch_prompts, reject_text, weights_digest
from sambench.models.efficientsam.efficient_sam import EfficientSam
from sambench.models.efficientsam.image_encoder import ATTENTION_MODES
from sambench.models.efficientsam.prompt_encoder import PAD_LABEL
from sambench.models.family_model import finish_prediction
from sambench.models.runtime import autocast_for, compiled, resolve_device, resolve_dtype, warn_if_emulated

POSTPROCESS = "bicubic to HxW, logit >= 0"
SINGLE_MASK = ("best", "token0")
BOX_LABELS = (2, 3)


@dataclass
class EfficientSamEmbedding:
    features: torch.Tensor  # (1, C, g, g) float32
    original_size: tuple[int, int]  # (H, W) of the image given to embed


def prompt_points(batch: PromptBatch, original_size: tuple[int, int], img_size: int, max_points: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Box corners then clicks, scaled to the input square and padded: ``(B, max_points, 2)``
    coordinates and ``(B, max_points)`` labels, as upstream's ``predict_masks`` builds them
    (float32 ``x · S / W``; a negative coordinate stays −1)."""
    coords, labels = [], []
    if batch.boxes is not None:
        coords.append(batch.boxes.reshape(-1, 2, 2))
        labels.append(np.broadcast_to(np.array(BOX_LABELS, np.int64), (batch.size, 2)))
    if batch.points is not None:
        coords.append(batch.points)
        labels.append(batch.labels)
    xy, lbl = np.concatenate(coords, 1).astype(np.float32), np.concatenate(labels, 1).astype(np.int64)
    if xy.shape[1] > max_points:
        raise SambenchError(f"EfficientSAM takes at most {max_points} points per prompt (a box counts as 2); "
                            f"got {xy.shape[1]}")
    height, width = original_size
    size = np.float32(img_size)
    xy = np.stack([np.where(xy[..., 0] >= 0, xy[..., 0] * size / np.float32(width), np.float32(-1)),
                   np.where(xy[..., 1] >= 0, xy[..., 1] * size / np.float32(height), np.float32(-1))], -1)
    pad = max_points - xy.shape[1]
    xy = np.pad(xy.astype(np.float32), ((0, 0), (0, pad), (0, 0)), constant_values=-1.0)
    lbl = np.pad(lbl, ((0, 0), (0, pad)), constant_values=PAD_LABEL)
    return xy, lbl


class EfficientSamModel:
    """Our EfficientSAM as a :class:`~sambench.models.base.PromptableModel`."""

    runtime_options = ("attention", "compile", "prompt_chunk", "single_mask")

    def __init__(self, net: EfficientSam, family, *, name: Optional[str] = None,
                 checkpoint: Optional[str] = None, sha256: Optional[str] = None, device: str = "cpu",
                 dtype: str = "float32", attention: str = "auto", compile: bool = False,
                 prompt_chunk: int = 16, single_mask: str = "best") -> None:
        if int(prompt_chunk) < 1:
            raise SambenchError(f"prompt_chunk must be >= 1, got {prompt_chunk}")
        if single_mask not in SINGLE_MASK:
            raise SambenchError(f"unknown single_mask {single_mask!r} (known: {', '.join(SINGLE_MASK)})")
        self.family = family.name
        self.name, self.checkpoint, self.sha256 = name or family.name, checkpoint, sha256
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        warn_if_emulated(self.device, self.dtype)
        self.model = net.to(self.device).eval()
        self.config = net.config
        self.preprocess = family.preprocess(self.config)
        self.capabilities = family.capabilities(self.config)
        self.prompt_chunk = int(prompt_chunk)
        self.single_mask = single_mask
        if attention == "auto":
            attention = "math" if self.dtype == torch.float32 else "sdpa"
        if attention not in ATTENTION_MODES:
            raise SambenchError(f"unknown attention {attention!r} (known: {', '.join(ATTENTION_MODES)})")
        self.attention = attention
        self.model.image_encoder.set_attention(attention)
        self.model.mask_decoder.transformer.set_attention(attention)
        self.compile = bool(compile)
        self._encoder = compiled(self.model.image_encoder) if self.compile else self.model.image_encoder

    def info(self) -> ModelInfo:
        config = self.config.to_dict()
        config.update(attention=self.attention, preprocess=self.preprocess.describe(), postprocess=POSTPROCESS,
                      single_mask=self.single_mask)
        if self.compile:
            config.update(compile=True)
        return ModelInfo(name=self.name, family=self.family, checkpoint=self.checkpoint, sha256=self.sha256,
                         params=self.model.num_parameters(), config=config, capabilities=self.capabilities)

    # -- embedding cache (sambench.cache) ------------------------------------------------
    def embedding_key(self) -> str:
        """What an embedding depends on: weights, architecture, dtype, attention path, compile
        and preprocessing (not the decoder-only options)."""
        config = self.config.to_dict()
        config.update(attention=self.attention, preprocess=self.preprocess.describe(), compile=self.compile)
        blob = json.dumps({"family": self.family, "sha256": self.sha256, "config": config,
                           "dtype": str(self.dtype)}, sort_keys=True)
        if self.sha256 is None:  # weights not from a file: hash the encoder's
            blob += weights_digest(self.model.image_encoder.state_dict())
        return hashlib.sha256(blob.encode()).hexdigest()

    def embedding_to_arrays(self, embedding: EfficientSamEmbedding) -> dict:
        return {"features": embedding.features.float().cpu().numpy(),
                "original_size": np.asarray(embedding.original_size)}

    def embedding_from_arrays(self, arrays: dict) -> EfficientSamEmbedding:
        return EfficientSamEmbedding(torch.from_numpy(np.asarray(arrays["features"])).to(self.device),
                                     tuple(int(v) for v in arrays["original_size"]))

    # -- image encoder -----------------------------------------------------------------
    def embed(self, image: np.ndarray) -> EfficientSamEmbedding:
        """Encode one ``(H, W, 3)`` uint8 RGB image."""
        return self.embed_batch([image])[0]

    def embed_batch(self, images: Sequence[np.ndarray], batch_size: int = 4) -> list[EfficientSamEmbedding]:
        out = []
        for start in range(0, len(images), batch_size):
            group = images[start:start + batch_size]
            x = torch.cat([self.preprocess.image(image, self.device)[0] for image in group])
            with torch.inference_mode(), autocast_for(self.device, self.dtype):
                features = self._encoder(x).float()
            out += [EfficientSamEmbedding(features[i:i + 1].clone(), tuple(image.shape[:2]))
                    for i, image in enumerate(group)]
        return out

    # -- prompt encoder + mask decoder -------------------------------------------------
    def decode(self, embedding: EfficientSamEmbedding, batch: PromptBatch, multimask: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``(B, K, 256, 256)`` over the stretched square and scores ``(B, K)``."""
        reject_text(batch.text, self.name)
        if batch.mask_input is not None:
            raise SambenchError("EfficientSAM takes no mask input (its decoder has no dense prompt); "
                                "prompt it with points and/or a box")
        xy, lbl = prompt_points(batch, embedding.original_size, self.config.img_size, self.config.max_points)
        coords, labels = torch.from_numpy(xy).to(self.device), torch.from_numpy(lbl).to(self.device)
        features = embedding.features.to(self.device)
        best_of_multimask = not multimask and self.single_mask == "best"
        low_res, scores = [], []
        with torch.inference_mode(), autocast_for(self.device, self.dtype):
            dense_pe = self.model.prompt_encoder.get_dense_pe()
            for start in range(0, batch.size, self.prompt_chunk):
                part = slice(start, start + self.prompt_chunk)
                tokens = self.model.prompt_encoder(coords[part], labels[part])
                logits, iou = self.model.mask_decoder(features, dense_pe, tokens, multimask or best_of_multimask)
                low_res.append(logits.float())
                scores.append(iou.float())
        low_res, scores = torch.cat(low_res), torch.cat(scores)
        if best_of_multimask:
            best = scores.argmax(1, keepdim=True)
            low_res = low_res.gather(1, best[..., None, None].expand(-1, -1, *low_res.shape[-2:]))
            scores = scores.gather(1, best)
        return low_res, scores

    def predict(self, embedding: EfficientSamEmbedding, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True, return_masks: bool = True, text=None):
        """Masks for one prompt or a batch of prompts on one embedded image (module docstring)."""
        batch = batch_prompts(points, labels, box, mask_input, text, self.capabilities.low_res_shape)
        low_res, scores = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, low_res) if return_masks else None
        return finish_prediction(masks, scores, low_res, batch)

    def upsample(self, embedding: EfficientSamEmbedding, low_res_logits, threshold: Optional[float] = 0.0):
        """Low-res logits ``(..., h, w)`` → bool masks (logit ≥ ``threshold``) at the image size,
        or the float logits with ``threshold=None``."""
        logits = torch.as_tensor(low_res_logits, device=self.device).float()
        lead = logits.shape[:-2]
        with torch.inference_mode():
            out = F.interpolate(logits.reshape(1, -1, *logits.shape[-2:]), embedding.original_size, mode="bicubic")
            out = out.reshape(*lead, *embedding.original_size)
            if threshold is None:
                return out.cpu().numpy()
            return (out >= threshold).cpu().numpy()
