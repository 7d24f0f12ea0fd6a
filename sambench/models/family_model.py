"""Any :class:`~sambench.models.family.Family` behind the :class:`~sambench.models.base.PromptableModel` protocol.

``embed`` runs the family's image encoder once per image (``embed_batch`` for several at once)
on the family's :class:`~sambench.models.family.Preprocess` input; ``predict`` runs the shared
prompt encoder and the family's mask decoder for all prompts of an image in one call (chunked
to bound memory) and returns masks, scores and low-res logits. SAM v1 (``sam``) is this class
with the SAM family (:class:`sambench.models.sam.model.SamModel`).

Runtime options (``load_model(NAME, checkpoint=..., **options)``; the family's own options,
``Family.options``, go to its ``infer_config`` instead):

- ``device``: ``"cpu"`` / ``"cuda"``; ``dtype``: ``"float32"`` (default, the parity path) or
  ``"bfloat16"`` / ``"float16"`` (``torch.autocast``);
- ``attention``: ``"math"`` or ``"sdpa"`` for image encoders that offer both (``set_attention``;
  same numbers in fp32); ``"auto"`` (default) is ``math`` in fp32 and ``sdpa`` otherwise;
- ``compile``: ``torch.compile`` the image encoder (:func:`sambench.models.runtime.compiled`);
- ``prompt_chunk``: prompts per decoder pass (memory vs. per-call overhead);
- ``text_encoder``: the text encoder's name for a text-path checkpoint (docs/text.md).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from sambench.errors import SambenchError
from sambench.models.base import ModelInfo, PromptBatch, batch_prompts, weights_digest
from sambench.models.runtime import autocast_for, compiled, resolve_device, resolve_dtype, warn_if_emulated
from sambench.types import Prediction

if TYPE_CHECKING:  # the family module builds this class (load_family_model)
    from sambench.models.family import Family

EXTRA_PREFIX = "extra."  # embedding-cache arrays of the encoder's extra outputs


@dataclass
class SamEmbedding:
    """An image embedding and the sizes that map prompts and masks to and from it.

    ``extras`` holds the family's further per-image encoder outputs (``Family.encoder_outputs``,
    e.g. HQ-SAM's early ViT feature), each ``(1, ...)``; they travel with the embedding and its
    cache entry and reach the mask decoder as keyword arguments.
    """

    features: torch.Tensor  # (1, C, S, S) float32
    original_size: tuple[int, int]  # (H, W) of the image given to embed
    input_size: tuple[int, int]  # (h, w) of the resized image in the prompt frame (Preprocess.frame_shape)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to_numpy(self) -> dict:
        """Plain arrays for an on-disk embedding cache."""
        arrays = {"features": self.features.float().cpu().numpy(),
                  "original_size": np.asarray(self.original_size),
                  "input_size": np.asarray(self.input_size)}
        arrays.update({EXTRA_PREFIX + k: v.float().cpu().numpy() for k, v in self.extras.items()})
        return arrays

    @classmethod
    def from_numpy(cls, data: dict, device: str = "cpu") -> "SamEmbedding":
        extras = {k[len(EXTRA_PREFIX):]: torch.from_numpy(np.asarray(v)).to(device)
                  for k, v in data.items() if k.startswith(EXTRA_PREFIX)}
        return cls(torch.from_numpy(np.asarray(data["features"])).to(device),
                   tuple(int(v) for v in data["original_size"]),
                   tuple(int(v) for v in data["input_size"]), extras)


def finish_prediction(masks: Optional[np.ndarray], scores: torch.Tensor, low_res: torch.Tensor,
                      batch: PromptBatch) -> Prediction:
    """Numpy :class:`Prediction`, without the batch axis for an unbatched call."""
    scores_np = scores.float().cpu().numpy()
    low_res_np = low_res.float().cpu().numpy()
    if not batch.batched:
        masks = None if masks is None else masks[0]
        return Prediction(masks, scores_np[0], low_res_np[0])
    return Prediction(masks, scores_np, low_res_np)


class FamilyModel:
    """A family's module (image encoder + shared prompt encoder + mask decoder) as a model."""

    runtime_options = ("attention", "compile", "prompt_chunk", "text_encoder")

    def __init__(self, net: torch.nn.Module, family: Family, *, name: Optional[str] = None,
                 checkpoint: Optional[str] = None, sha256: Optional[str] = None,
                 device: str = "cpu", dtype: str = "float32", attention: str = "auto",
                 compile: bool = False, prompt_chunk: int = 2,
                 text_encoder: Optional[str] = None) -> None:
        if prompt_chunk < 1:
            raise SambenchError(f"prompt_chunk must be >= 1, got {prompt_chunk}")
        self.family_spec = family
        self.family = family.name
        self.name = name or family.name
        self.text_encoder = text_encoder
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        warn_if_emulated(self.device, self.dtype)
        self.prompt_chunk = prompt_chunk
        self.sam = net.to(self.device).eval()
        self.config = net.config
        self.preprocess = family.preprocess(self.config)
        self.capabilities = family.capabilities(self.config)
        self.attention: Optional[str] = None
        if hasattr(self.sam.image_encoder, "set_attention"):
            self.set_attention(("math" if self.dtype == torch.float32 else "sdpa")
                               if attention == "auto" else attention)
        elif attention != "auto":
            raise SambenchError(f"model {self.name}: its image encoder has one attention path "
                                f"(attention={attention!r} is for ViT encoders)")
        self.compile = compile
        self._encoder = compiled(self.sam.image_encoder) if compile else self.sam.image_encoder

    @property
    def text_dim(self) -> int:
        """Size of the text embeddings ``predict(text=...)`` takes; 0 without a text path."""
        return int(getattr(self.config, "text_dim", 0) or 0)

    def _check_text(self, batch: PromptBatch) -> None:
        if batch.text is None:
            return
        source = self.checkpoint or "this model"
        if not self.text_dim:
            raise SambenchError(f"{source} has no text path (no prompt_encoder.text_proj): it takes "
                                "points, boxes and masks only; text prompts need a checkpoint "
                                "trained with one (docs/text.md)")
        if batch.text.shape[1] != self.text_dim:
            encoder = f" (trained with text encoder {self.text_encoder})" if self.text_encoder else ""
            raise SambenchError(f"text embeddings of size {batch.text.shape[1]} given to {source}, "
                                f"whose text path takes {self.text_dim}{encoder}")

    def set_attention(self, mode: str) -> None:
        """Switch the image encoder's attention kernel (``"math"`` / ``"sdpa"``)."""
        from sambench.models.sam.image_encoder import ATTENTION_MODES

        if mode not in ATTENTION_MODES:
            raise SambenchError(f"unknown attention {mode!r} (known: {', '.join(ATTENTION_MODES)})")
        self.sam.image_encoder.set_attention(mode)
        self.attention = mode

    def _autocast(self):
        return autocast_for(self.device, self.dtype)

    def info(self) -> ModelInfo:
        config = self.config.to_dict()
        if self.attention is not None:
            config.update(attention=self.attention)
        config.update(preprocess=self.preprocess.describe())
        if self.compile:  # compiled kernels round differently: a separate cache key
            config.update(compile=True)
        if self.text_dim:
            config.update(text_encoder=self.text_encoder)
        return ModelInfo(name=self.name, family=self.family, checkpoint=self.checkpoint,
                         sha256=self.sha256, params=self.sam.num_parameters(), config=config,
                         capabilities=self.capabilities)

    # -- embedding cache (sambench.cache) ------------------------------------------------
    def embedding_key(self) -> str:
        """What an embedding depends on: weights, architecture, dtype, attention path and
        preprocessing (the SDPA path differs from the math path by ~1e-6)."""
        info = self.info().to_json()
        blob = json.dumps({"sha256": self.sha256, "config": info["config"], "dtype": str(self.dtype)},
                          sort_keys=True)
        if self.family != "sam":  # one family's embedding is no use to another's decoder
            blob += self.family
        if self.sha256 is None:  # weights not from a file (e.g. in training): hash them
            blob += weights_digest(self.sam.image_encoder.state_dict())
        return hashlib.sha256(blob.encode()).hexdigest()

    def embedding_to_arrays(self, embedding: SamEmbedding) -> dict:
        return embedding.to_numpy()

    def embedding_from_arrays(self, arrays: dict) -> SamEmbedding:
        return SamEmbedding.from_numpy(arrays, str(self.device))

    # -- image encoder -----------------------------------------------------------------
    def embed(self, image: np.ndarray) -> SamEmbedding:
        """Encode one ``(H, W, 3)`` uint8 RGB image."""
        return self.embed_batch([image])[0]

    def embed_batch(self, images: Sequence[np.ndarray], batch_size: int = 4) -> list[SamEmbedding]:
        """Encode several images, ``batch_size`` per encoder pass."""
        out: list[SamEmbedding] = []
        extra_names = self.family_spec.encoder_outputs
        for start in range(0, len(images), batch_size):
            group = images[start:start + batch_size]
            inputs, sizes = [], []
            for image in group:
                x, input_size = self.preprocess.image(image, self.device)
                inputs.append(x)
                sizes.append((tuple(image.shape[:2]), input_size))
            with torch.inference_mode(), self._autocast():
                encoded = self._encoder(torch.cat(inputs))
                if extra_names:
                    features, *extras = encoded
                    extras = [e.float() for e in extras]
                else:
                    features, extras = encoded, []
                features = features.float()
            out += [SamEmbedding(features[i:i + 1].clone(), original, resized,
                                 {n: e[i:i + 1].clone() for n, e in zip(extra_names, extras)})
                    for i, (original, resized) in enumerate(sizes)]
        return out

    # -- prompt encoder + mask decoder -------------------------------------------------
    def prompt_tensors(self, batch: PromptBatch, original_size: tuple[int, int]):
        """Protocol prompts → input-frame tensors (coordinates scaled; the mask prompt is
        already in the model's low-res frame)."""
        points = boxes = masks = None
        if batch.points is not None:
            coords = self.preprocess.coords(batch.points, original_size)
            points = (torch.from_numpy(coords).to(self.device),
                      torch.from_numpy(batch.labels.astype(np.int32)).to(self.device))
        if batch.boxes is not None:
            boxes = torch.from_numpy(self.preprocess.boxes(batch.boxes, original_size)).to(self.device)
        if batch.mask_input is not None:
            masks = torch.from_numpy(batch.mask_input).to(self.device)
        return points, boxes, masks

    def decode(self, embedding: SamEmbedding, batch: PromptBatch, multimask: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``(B, K, h, w)`` (the model's frame) and scores ``(B, K)``."""
        self._check_text(batch)
        points, boxes, masks = self.prompt_tensors(batch, embedding.original_size)
        text = None if batch.text is None else torch.from_numpy(batch.text).to(self.device)
        features = embedding.features.to(self.device)
        extras = {k: v.to(self.device) for k, v in embedding.extras.items()}
        low_res, scores, cache = [], [], {}
        with torch.inference_mode(), self._autocast():
            dense_pe = self.sam.prompt_encoder.get_dense_pe()
            for start in range(0, batch.size, self.prompt_chunk):
                part = slice(start, start + self.prompt_chunk)
                sparse, dense = self.sam.prompt_encoder(
                    None if points is None else (points[0][part], points[1][part]),
                    None if boxes is None else boxes[part],
                    None if masks is None else masks[part],
                    None if text is None else text[part], factored=True)
                logits, iou = self.sam.mask_decoder(features, dense_pe, sparse, dense, multimask,
                                                    cache=cache, **extras)
                low_res.append(logits.float())
                scores.append(iou.float())
        return torch.cat(low_res), torch.cat(scores)

    def predict(self, embedding: SamEmbedding, points=None, labels=None, box=None,
                mask_input=None, multimask: bool = True, return_masks: bool = True,
                text=None) -> Prediction:
        """Masks for one prompt or a batch of prompts on one embedded image.

        ``text``: ℓ2-normalised text embeddings ``(D,)`` or ``(B, D)`` (text-path checkpoints
        only), one extra prompt token each. ``return_masks=False`` skips the full-resolution
        upsampling (``masks`` is None): use :meth:`upsample` on the logits of the masks you keep.
        """
        batch = batch_prompts(points, labels, box, mask_input, text, self.capabilities.low_res_shape)
        low_res, scores = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, low_res) if return_masks else None
        return finish_prediction(masks, scores, low_res, batch)

    def upsample(self, embedding: SamEmbedding, low_res_logits, threshold: Optional[float] = 0.0):
        """Low-res logits ``(..., h, w)`` (the model's frame) → masks at the original image size.

        Returns bool masks (logit > ``threshold``), or float logits with ``threshold=None``.
        """
        logits = torch.as_tensor(low_res_logits, device=self.device).float()
        lead = logits.shape[:-2]
        flat = logits.reshape(-1, 1, *logits.shape[-2:])
        with torch.inference_mode():
            if threshold is None:
                out = self.preprocess.upsample_logits(flat, embedding.input_size, embedding.original_size)
                return out.reshape(*lead, *embedding.original_size).cpu().numpy()
            masks = self.preprocess.logits_to_masks(flat, embedding.input_size, embedding.original_size,
                                                    threshold)
        return masks.reshape(*lead, *embedding.original_size)
