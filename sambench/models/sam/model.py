"""The ``sam`` model: our SAM v1 behind the :class:`~sambench.models.base.PromptableModel` protocol.

``embed`` runs the image encoder once per image (``embed_batch`` for several at once);
``predict`` runs the prompt encoder and mask decoder for all prompts of an image in one call
(chunked to bound memory) and returns masks, IoU predictions and low-res logits. Pre- and
post-processing are the official ``SamPredictor``'s (:mod:`.transforms`).

Options (``load_model("sam", checkpoint=..., **options)``):

- ``device``: ``"cpu"`` / ``"cuda"``; ``dtype``: ``"float32"`` (default, the parity path) or
  ``"bfloat16"`` / ``"float16"`` (``torch.autocast``; the neck and post-processing stay fp32);
- ``attention``: ``"math"`` or ``"sdpa"`` for the image encoder (same numbers in fp32);
  ``"auto"`` (default) is ``math`` in fp32, where it is bit-identical to the official code, and
  ``sdpa`` in bf16/fp16, where it is twice as fast and nothing is bit-identical anyway;
- ``compile``: ``torch.compile`` the image encoder;
- ``decoder_num_heads``: the decoder's head count, which checkpoints do not record (8);
- ``prompt_chunk``: prompts per decoder pass (memory vs. per-call overhead);
- ``text_encoder``: the text encoder's name for a text-path checkpoint that does not record it
  (a ``.pth`` without a ``<checkpoint>.json`` sidecar); must agree with a recorded one.

A checkpoint with the optional text path (``prompt_encoder.text_proj``) takes ``text=``
embeddings ``(D,)`` / ``(B, D)`` in ``predict``, alone or with points / a box; ``text_dim`` and
``text_encoder`` say what it expects (docs/text.md).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from sambench.errors import SambenchError
from sambench.models.base import LOW_RES, ModelInfo, PromptBatch, batch_prompts
from sambench.models.sam import transforms
from sambench.models.sam.checkpoint import TEXT_ENCODER_KEY, load_sam, read_metadata, sha256_file
from sambench.models.sam.image_encoder import ATTENTION_MODES
from sambench.models.sam.sam import Sam
from sambench.types import Prediction

log = logging.getLogger("sambench")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PREPROCESS = "resize_longest_side(pil_bilinear)+normalize+pad"


@dataclass
class SamEmbedding:
    """An image embedding and the sizes that map prompts and masks to and from it."""

    features: torch.Tensor  # (1, C, S, S) float32
    original_size: tuple[int, int]  # (H, W) of the image given to embed
    input_size: tuple[int, int]  # (h, w) after the longest-side resize

    def to_numpy(self) -> dict:
        """Plain arrays for an on-disk embedding cache."""
        return {"features": self.features.float().cpu().numpy(),
                "original_size": np.asarray(self.original_size),
                "input_size": np.asarray(self.input_size)}

    @classmethod
    def from_numpy(cls, data: dict, device: str = "cpu") -> "SamEmbedding":
        return cls(torch.from_numpy(np.asarray(data["features"])).to(device),
                   tuple(int(v) for v in data["original_size"]),
                   tuple(int(v) for v in data["input_size"]))


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SambenchError(f"bad device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SambenchError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise SambenchError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    return DTYPES[dtype]


def cpu_has_native(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies ``dtype`` matrices in hardware (AVX512-BF16 or AMX for bf16,
    AVX512-FP16 / AMX-FP16 for fp16), as oneDNN reports it.

    Without, autocast still runs but every product is emulated, which is far slower than fp32:
    on an AVX2-only AMD EPYC the point task's decoder took 28× longer in bf16 than in fp32.
    """
    if dtype == torch.float32:
        return True
    probe = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}[dtype]
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):  # a torch without the probe or without oneDNN
        return False


def warn_if_emulated(device: torch.device, dtype: torch.dtype) -> None:
    """A log line when a low-precision CPU run will be slower than fp32, not faster."""
    if device.type == "cpu" and not cpu_has_native(dtype):
        name = str(dtype).removeprefix("torch.")
        units = "AVX512-BF16 or AMX" if dtype == torch.bfloat16 else "AVX512-FP16 or AMX-FP16"
        log.warning("this CPU has no native %s matrix units (%s): %s runs emulated and is much "
                    "slower than float32 here; numbers are valid, only the speed suffers",
                    name, units, name)


def autocast_for(device: torch.device, dtype: torch.dtype):
    """No-op for fp32 (the parity path), else ``torch.autocast`` to ``dtype``."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiled(module: torch.nn.Module):
    """``module`` under ``torch.compile`` with inductor's *freezing*, for inference.

    Freezing folds the weights into the graph as constants and lets oneDNN prepack them; on a
    CPU that, more than the fused kernels, is where the speed-up is (ViT-B bf16 at 1024:
    ~1.1 s per image frozen, ~1.8 s compiled without freezing, ~2.2 s eager, on the 2-core
    machine of ``benchmarks/bench_sam.py``). Freezing is a process-wide inductor setting, so it
    is switched on only around the calls; the weights must not change afterwards. Each new
    input shape (e.g. another image batch size) compiles once more (tens of seconds).
    """
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor import config as inductor_config

    fn = torch.compile(module, dynamic=False)

    def run(*args):
        try:
            with inductor_config.patch(freezing=True):
                return fn(*args)
        except BackendCompilerFailed as exc:  # e.g. no C++ compiler on the machine
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SambenchError(f"torch.compile failed ({first[:200]}); run without compile=true") from None
    return run


def prompt_tensors(batch: PromptBatch, original_size: tuple[int, int], img_size: int,
                   native: int, device: torch.device):
    """Protocol prompts → model-frame tensors: coordinates scaled, mask prompt in native frame."""
    points = boxes = masks = None
    if batch.points is not None:
        coords = transforms.scale_coords(batch.points, original_size, img_size)
        points = (torch.from_numpy(coords).to(device),
                  torch.from_numpy(batch.labels.astype(np.int32)).to(device))
    if batch.boxes is not None:
        boxes = torch.from_numpy(transforms.scale_boxes(batch.boxes, original_size, img_size)).to(device)
    if batch.mask_input is not None:
        masks = transforms.from_protocol_frame(torch.from_numpy(batch.mask_input).to(device), native)
    return points, boxes, masks


def text_tensor(batch: PromptBatch, device: torch.device) -> Optional[torch.Tensor]:
    """Text embeddings need no frame change: the ``(B, D)`` array as a tensor."""
    return None if batch.text is None else torch.from_numpy(batch.text).to(device)


def finish_prediction(masks: Optional[np.ndarray], scores: torch.Tensor, low_res: torch.Tensor,
                      batch: PromptBatch) -> Prediction:
    """Numpy :class:`Prediction`, without the batch axis for an unbatched call."""
    scores_np = scores.float().cpu().numpy()
    low_res_np = low_res.float().cpu().numpy()
    if not batch.batched:
        masks = None if masks is None else masks[0]
        return Prediction(masks, scores_np[0], low_res_np[0])
    return Prediction(masks, scores_np, low_res_np)


class SamModel:
    """Our SAM v1 implementation as a :class:`~sambench.models.base.PromptableModel`."""

    family = "sam"

    def __init__(self, sam: Sam, *, name: str = "sam", checkpoint: Optional[str] = None,
                 sha256: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                 attention: str = "auto", compile: bool = False, prompt_chunk: int = 2,
                 text_encoder: Optional[str] = None) -> None:
        if prompt_chunk < 1:
            raise SambenchError(f"prompt_chunk must be >= 1, got {prompt_chunk}")
        self.name = name
        self.text_encoder = text_encoder
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        warn_if_emulated(self.device, self.dtype)
        self.attention = attention
        self.prompt_chunk = prompt_chunk
        self.sam = sam.to(self.device).eval()
        self.config = sam.config
        if attention == "auto":
            attention = "math" if self.dtype == torch.float32 else "sdpa"
        self.set_attention(attention)
        self.compile = compile
        self._encoder = compiled(self.sam.image_encoder) if compile else self.sam.image_encoder

    @property
    def text_dim(self) -> int:
        """Size of the text embeddings ``predict(text=...)`` takes; 0 without a text path."""
        return self.config.text_dim

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
        if mode not in ATTENTION_MODES:
            raise SambenchError(f"unknown attention {mode!r} (known: {', '.join(ATTENTION_MODES)})")
        self.sam.image_encoder.set_attention(mode)
        self.attention = mode

    def _autocast(self):
        return autocast_for(self.device, self.dtype)

    def info(self) -> ModelInfo:
        config = self.config.to_dict()
        config.update(attention=self.attention, preprocess=PREPROCESS)
        if self.compile:  # compiled kernels round differently: a separate cache key
            config.update(compile=True)
        if self.text_dim:
            config.update(text_encoder=self.text_encoder)
        return ModelInfo(name=self.name, family=self.family, checkpoint=self.checkpoint,
                         sha256=self.sha256, params=self.sam.num_parameters(), config=config)

    # -- embedding cache (sambench.cache) ------------------------------------------------
    def embedding_key(self) -> str:
        """What an embedding depends on: weights, architecture, dtype, attention path and
        preprocessing (the SDPA path differs from the math path by ~1e-6)."""
        import hashlib
        import json

        info = self.info().to_json()
        blob = json.dumps({"sha256": self.sha256, "config": info["config"], "dtype": str(self.dtype)},
                          sort_keys=True)
        if self.sha256 is None:  # weights not from a file (e.g. in training): hash them
            h = hashlib.sha256()
            for name, tensor in sorted(self.sam.image_encoder.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().float().cpu().numpy().tobytes())
            blob += h.hexdigest()
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
        for start in range(0, len(images), batch_size):
            group = images[start:start + batch_size]
            inputs, sizes = [], []
            for image in group:
                x, input_size = transforms.preprocess(image, self.config.img_size, self.sam.pixel_mean,
                                                      self.sam.pixel_std, self.device)
                inputs.append(x)
                sizes.append((tuple(image.shape[:2]), input_size))
            with torch.inference_mode(), self._autocast():
                features = self._encoder(torch.cat(inputs)).float()
            out += [SamEmbedding(features[i:i + 1].clone(), original, resized)
                    for i, (original, resized) in enumerate(sizes)]
        return out

    # -- prompt encoder + mask decoder -------------------------------------------------
    def decode(self, embedding: SamEmbedding, batch: PromptBatch, multimask: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``(B, K, 256, 256)`` (protocol frame) and IoU predictions ``(B, K)``."""
        self._check_text(batch)
        points, boxes, masks = prompt_tensors(batch, embedding.original_size, self.config.img_size,
                                              self.config.low_res, self.device)
        text = text_tensor(batch, self.device)
        features = embedding.features.to(self.device)
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
                logits, iou = self.sam.mask_decoder(features, dense_pe, sparse, dense, multimask, cache=cache)
                low_res.append(transforms.to_protocol_frame(logits.float(), LOW_RES))
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
        batch = batch_prompts(points, labels, box, mask_input, text)
        low_res, scores = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, low_res) if return_masks else None
        return finish_prediction(masks, scores, low_res, batch)

    def upsample(self, embedding: SamEmbedding, low_res_logits, threshold: Optional[float] = 0.0):
        """Low-res logits ``(..., 256, 256)`` → masks at the original image size.

        Returns bool masks (logit > ``threshold``), or float logits with ``threshold=None``.
        """
        logits = torch.as_tensor(low_res_logits, device=self.device).float()
        lead = logits.shape[:-2]
        flat = logits.reshape(-1, 1, *logits.shape[-2:])
        with torch.inference_mode():
            if threshold is None:
                out = transforms.upsample_logits(flat, embedding.input_size, embedding.original_size,
                                                 self.config.img_size)
                return out.reshape(*lead, *embedding.original_size).cpu().numpy()
            masks = transforms.logits_to_masks(flat, embedding.input_size, embedding.original_size,
                                               self.config.img_size, threshold)
        return masks.reshape(*lead, *embedding.original_size)


def build_sam_model(checkpoint: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                    attention: str = "auto", compile: bool = False, decoder_num_heads: int = 8,
                    prompt_chunk: int = 2, text_encoder: Optional[str] = None,
                    **options) -> SamModel:
    """The ``sam`` registry factory."""
    if options:
        raise SambenchError(f"unknown option(s) for model sam: {', '.join(sorted(options))}")
    if checkpoint is None:
        raise SambenchError("model sam needs a checkpoint: --model sam:PATH "
                            "(a SAM v1 .pth or .safetensors, e.g. sam_vit_b_01ec64.pth)")
    sam, _ = load_sam(checkpoint, decoder_num_heads)
    return SamModel(sam, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint), device=device,
                    dtype=dtype, attention=attention, compile=compile, prompt_chunk=prompt_chunk,
                    text_encoder=recorded_text_encoder(checkpoint, text_encoder) if sam.config.text_dim else None)


def recorded_text_encoder(checkpoint, given: Optional[str] = None) -> Optional[str]:
    """The text encoder a checkpoint records (metadata ``text_encoder``), checked against
    ``given``; ``given`` alone fills in for a checkpoint that records none."""
    recorded = read_metadata(checkpoint).get(TEXT_ENCODER_KEY) or None
    if given and recorded and given != recorded:
        raise SambenchError(f"{checkpoint} was trained with text encoder {recorded!r}, not {given!r}")
    return recorded or given


def describe(spec: str | Path, decoder_num_heads: int = 8) -> dict:
    """Inferred config, parameter count and sha256 of a checkpoint (``sambench models info``).

    ``spec`` is a checkpoint path or ``"sam:PATH"``.
    """
    checkpoint = str(spec)
    if checkpoint.startswith(("sam:", "sam-official:")):
        checkpoint = checkpoint.split(":", 1)[1]
    sam, _ = load_sam(checkpoint, decoder_num_heads)
    text_encoder = recorded_text_encoder(checkpoint) if sam.config.text_dim else None
    info = SamModel(sam, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint),
                    text_encoder=text_encoder).info()
    return info.to_json()
