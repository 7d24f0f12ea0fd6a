"""The ``sam2`` model: our SAM 2 / 2.1 image path behind the PromptableModel protocol.

``embed`` runs the Hiera trunk and neck once per image and keeps the image embedding and the
two projected high-resolution maps (all three are cached on disk by ``sambench.cache``);
``predict`` encodes all prompts of an image and runs the mask decoder on them in one call
(chunked to bound memory), as our SAM v1 does. Pre- and post-processing are the reference
``SAM2ImagePredictor``'s (:mod:`.transforms`).

Options (``load_model("sam2", checkpoint=..., **options)``):

- ``device``, ``dtype``: as for ``sam`` (``bfloat16`` / ``float16`` run under ``torch.autocast``);
- ``dynamic_multimask``: the single-mask fallback to the best multimask token when token 0 is
  unstable (default on, as ``build_sam2``; recorded in the model config);
- ``compile``: ``torch.compile`` the image encoder;
- ``prompt_chunk``: prompts per decoder pass.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from sambench.errors import SambenchError
from sambench.models.base import Capabilities, ModelInfo, PromptBatch, batch_prompts, reject_text
from sambench.models.sam.checkpoint import sha256_file
from sambench.models.sam.model import (autocast_for, compiled, finish_prediction, resolve_device,
                                       resolve_dtype, warn_if_emulated)
from sambench.models.sam2 import transforms
from sambench.models.sam2.checkpoint import load_sam2
from sambench.models.sam2.mask_decoder import prompt_points, skip_rows
from sambench.models.sam2.sam2 import IMAGE_SIZE, Sam2
from sambench.types import Prediction

PREPROCESS = "stretch(bilinear_antialias)+normalize(imagenet)"
CAPABILITIES = Capabilities(low_res_shape=(256, 256), low_res_frame="stretched", multimask_outputs=3,
                            mask_input=True, max_points=None, score="predicted_iou")


@dataclass
class Sam2Embedding:
    """The decoder's per-image inputs and the original size prompts and masks map to."""

    image_embed: torch.Tensor  # (1, C, 64, 64), no_mem_embed added
    feat_s0: torch.Tensor  # (1, C/8, 256, 256), conv_s0 applied
    feat_s1: torch.Tensor  # (1, C/4, 128, 128), conv_s1 applied
    original_size: tuple[int, int]

    def to_numpy(self) -> dict:
        return {"image_embed": self.image_embed.float().cpu().numpy(),
                "feat_s0": self.feat_s0.float().cpu().numpy(),
                "feat_s1": self.feat_s1.float().cpu().numpy(),
                "original_size": np.asarray(self.original_size)}

    @classmethod
    def from_numpy(cls, data: dict, device: str = "cpu") -> "Sam2Embedding":
        def tensor(name):
            return torch.from_numpy(np.asarray(data[name])).to(device)

        return cls(tensor("image_embed"), tensor("feat_s0"), tensor("feat_s1"),
                   tuple(int(v) for v in data["original_size"]))


class Sam2Model:
    """Our SAM 2 implementation as a :class:`~sambench.models.base.PromptableModel`."""

    family = "sam2"

    def __init__(self, sam2: Sam2, *, name: str = "sam2", checkpoint: Optional[str] = None,
                 sha256: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                 compile: bool = False, prompt_chunk: int = 16) -> None:
        if prompt_chunk < 1:
            raise SambenchError(f"prompt_chunk must be >= 1, got {prompt_chunk}")
        self.name = name
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        warn_if_emulated(self.device, self.dtype)
        self.prompt_chunk = prompt_chunk
        self.sam2 = sam2.to(self.device).eval()
        self.config = sam2.config
        self.compile = compile
        self._encode = compiled(self.sam2.encode) if compile else self.sam2.encode

    def info(self) -> ModelInfo:
        config = self.config.to_dict()
        config.update(preprocess=PREPROCESS)
        if self.compile:
            config.update(compile=True)
        return ModelInfo(name=self.name, family=self.family, checkpoint=self.checkpoint,
                         sha256=self.sha256, params=self.sam2.num_parameters(), config=config,
                         capabilities=CAPABILITIES)

    # -- embedding cache (sambench.cache) ------------------------------------------------
    def embedding_key(self) -> str:
        """Weights, architecture, dtype and preprocessing (decoder-only options excluded)."""
        config = {k: v for k, v in self.info().config.items() if k != "dynamic_multimask"}
        blob = json.dumps({"family": self.family, "sha256": self.sha256, "config": config,
                           "dtype": str(self.dtype)}, sort_keys=True)
        if self.sha256 is None:  # weights not from a file: hash what the embedding depends on
            h = hashlib.sha256()
            for name, tensor in sorted(self.sam2.state_dict().items()):
                if not name.startswith("sam_prompt_encoder."):
                    h.update(name.encode())
                    h.update(tensor.detach().float().cpu().numpy().tobytes())
            blob += h.hexdigest()
        return hashlib.sha256(blob.encode()).hexdigest()

    def embedding_to_arrays(self, embedding: Sam2Embedding) -> dict:
        return embedding.to_numpy()

    def embedding_from_arrays(self, arrays: dict) -> Sam2Embedding:
        return Sam2Embedding.from_numpy(arrays, str(self.device))

    # -- image encoder -------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> Sam2Embedding:
        """Encode one ``(H, W, 3)`` uint8 RGB image."""
        return self.embed_batch([image])[0]

    def embed_batch(self, images: Sequence[np.ndarray], batch_size: int = 4) -> list[Sam2Embedding]:
        out: list[Sam2Embedding] = []
        for start in range(0, len(images), batch_size):
            group = images[start:start + batch_size]
            x = torch.cat([transforms.preprocess(image, IMAGE_SIZE, self.sam2.pixel_mean,
                                                 self.sam2.pixel_std, self.device) for image in group])
            with torch.inference_mode(), autocast_for(self.device, self.dtype):
                embed, s0, s1 = (t.float() for t in self._encode(x))
            out += [Sam2Embedding(embed[i:i + 1].clone(), s0[i:i + 1].clone(), s1[i:i + 1].clone(),
                                  tuple(image.shape[:2])) for i, image in enumerate(group)]
        return out

    # -- prompt encoder + mask decoder -----------------------------------------------------
    def _prompts(self, batch: PromptBatch, original_size: tuple[int, int]):
        points = boxes = masks = None
        if batch.points is not None:
            points = (transforms.scale_coords(batch.points, original_size, IMAGE_SIZE).to(self.device),
                      torch.from_numpy(batch.labels.astype(np.int32)).to(self.device))
        if batch.boxes is not None:
            boxes = transforms.scale_coords(batch.boxes.reshape(-1, 2, 2), original_size, IMAGE_SIZE)
            boxes = boxes.to(self.device)
        if batch.mask_input is not None:
            masks = torch.from_numpy(batch.mask_input).to(self.device)
        return prompt_points(points, boxes), masks

    def decode(self, embedding: Sam2Embedding, batch: PromptBatch, multimask: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unclamped low-res logits ``(B, K, 256, 256)``, IoU predictions ``(B, K)`` and the
        mask token each output came from ``(B, K)``."""
        reject_text(batch.text, self.name)
        points, masks = self._prompts(batch, embedding.original_size)
        decoder, prompt_encoder = self.sam2.sam_mask_decoder, self.sam2.sam_prompt_encoder
        image = embedding.image_embed.to(self.device)
        logits, scores, tokens, cache = [], [], [], {}
        with torch.inference_mode(), autocast_for(self.device, self.dtype):
            skips = skip_rows(embedding.feat_s0.to(self.device), embedding.feat_s1.to(self.device))
            dense_pe = prompt_encoder.get_dense_pe()
            for start in range(0, batch.size, self.prompt_chunk):
                part = slice(start, start + self.prompt_chunk)
                sparse, dense = prompt_encoder((points[0][part], points[1][part]), None,
                                               None if masks is None else masks[part], factored=True)
                low, iou, chosen = decoder(image, dense_pe, sparse, dense, multimask, skips, cache=cache)
                logits.append(low.float())
                scores.append(iou.float())
                tokens.append(chosen)
        return torch.cat(logits), torch.cat(scores), torch.cat(tokens)

    def predict(self, embedding: Sam2Embedding, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True, return_masks: bool = True, text=None) -> Prediction:
        """Masks for one prompt or a batch of prompts on one embedded image.

        ``low_res_logits`` are clamped to ±32 (the reference's feedback input); ``masks`` come
        from the unclamped logits. ``return_masks=False`` skips the upsampling.
        """
        batch = batch_prompts(points, labels, box, mask_input, text)
        logits, scores, _ = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, logits) if return_masks else None
        return finish_prediction(masks, scores, logits.clamp(-transforms.LOGIT_CLAMP, transforms.LOGIT_CLAMP), batch)

    def upsample(self, embedding: Sam2Embedding, low_res_logits, threshold: Optional[float] = 0.0):
        """Low-res logits ``(..., 256, 256)`` → bool masks (logit > ``threshold``) at the
        original size, or float logits with ``threshold=None``."""
        logits = torch.as_tensor(low_res_logits, device=self.device).float()
        lead = logits.shape[:-2]
        flat = logits.reshape(-1, 1, *logits.shape[-2:])
        rows = max(1, 2 ** 26 // max(1, embedding.original_size[0] * embedding.original_size[1]))
        with torch.inference_mode():
            parts = []
            for start in range(0, len(flat), rows):
                up = transforms.upsample_logits(flat[start:start + rows], embedding.original_size)
                parts.append((up if threshold is None else up > threshold).cpu())
        out = torch.cat(parts).reshape(*lead, *embedding.original_size)
        return out.numpy()


def build_sam2_model(checkpoint: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                     compile: bool = False, prompt_chunk: int = 16, dynamic_multimask: bool = True,
                     **options) -> Sam2Model:
    """The ``sam2`` registry factory."""
    if options:
        raise SambenchError(f"unknown option(s) for model sam2: {', '.join(sorted(options))}")
    if checkpoint is None:
        raise SambenchError("model sam2 needs a checkpoint: --model sam2:PATH (a SAM 2 / 2.1 .pt, "
                            "e.g. sam2.1_hiera_large.pt)")
    sam2 = load_sam2(checkpoint, dynamic_multimask=_flag(dynamic_multimask, "dynamic_multimask"))
    return Sam2Model(sam2, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint), device=device,
                     dtype=dtype, compile=_flag(compile, "compile"), prompt_chunk=int(prompt_chunk))



def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise SambenchError(f"option {name} takes true or false, got {value!r}")
    return value
