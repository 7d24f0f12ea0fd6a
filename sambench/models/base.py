"""The PromptableModel protocol: what every model answering SAM's prompts provides.

Embed an image once, then predict masks for many prompts against that embedding, in batches.
A model is anything with ``embed`` / ``predict`` / ``info`` as below; tasks never look inside.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from sambench.errors import SambenchError
from sambench.types import Prediction

LOW_RES = 256  # side of SAM v1's low-res logit frame (1024-px padded input / 4)
_SHOWN = 8  # key names quoted in an error message


def names(keys) -> str:
    """Sorted key names for an error message, the first few only."""
    keys = sorted(keys)
    more = f" ... (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def weights_digest(state) -> str:
    """sha256 of every tensor's name and float32 bytes, in name order: a name for weights that
    come from no file (a cache key in training, the seeded weights of a golden file)."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def indexes(state, prefix: str) -> list[int]:
    """The sorted numbers ``i`` of the keys ``<prefix><i>.…`` of a state dict (its blocks,
    layers or stages under ``prefix``)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pattern.match(k))})


@dataclass(frozen=True)
class Capabilities:
    """What a model can answer, declared so that tasks adapt or report ``unsupported``.

    Tasks read these instead of assuming SAM v1: a protocol step a model cannot take (a mask
    fed back, a tenth click) is reported as unsupported with a reason, never run differently.
    """

    low_res_shape: tuple[int, int] = (LOW_RES, LOW_RES)  # (h, w) of low_res_logits / mask_input:
    # the model's own frame (SAM v1: 4x its image embedding), never resampled to a fixed one
    low_res_frame: str = "padded-square"  # how that frame maps to the image: or "stretched"
    multimask_outputs: int = 3  # K of a multimask call (1: the oracle equals the top-1 mask)
    mask_input: bool = True  # accepts the previous low-res logits as ``mask_input``
    max_points: Optional[int] = None  # points per prompt it accepts (None: no limit)
    score: str = "predicted_iou"  # what ``Prediction.scores`` holds

    def to_json(self) -> dict:
        return {"low_res_shape": list(self.low_res_shape), "low_res_frame": self.low_res_frame,
                "multimask_outputs": self.multimask_outputs, "mask_input": self.mask_input,
                "max_points": self.max_points, "score": self.score}


@dataclass
class ModelInfo:
    """What results.json records about a model (the README's ``model`` block)."""

    name: str
    family: str
    checkpoint: Optional[str] = None
    sha256: Optional[str] = None
    params: int = 0
    config: dict = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)

    def to_json(self) -> dict:
        return {"name": self.name, "family": self.family, "checkpoint": self.checkpoint,
                "sha256": self.sha256, "params": self.params, "config": self.config,
                "capabilities": self.capabilities.to_json()}


@runtime_checkable
class PromptableModel(Protocol):
    """Embed once, predict many.

    ``embed(image)`` takes an ``(H, W, 3)`` uint8 RGB array and returns an opaque embedding
    that remembers the original size. ``predict(embedding, points, labels, box, mask_input,
    multimask)`` takes one prompt (points ``(N, 2)``, labels ``(N,)``, box ``(4,)``, mask input
    ``(1, h, w)``) or a batch of B (``(B, N, 2)``, ``(B, N)``, ``(B, 4)``, ``(B, 1, h, w)``) and
    returns a :class:`~sambench.types.Prediction` with K masks when ``multimask`` else 1.

    K, ``(h, w)`` and the rest are declared in ``info().capabilities``
    (:class:`Capabilities`). ``low_res_logits`` come in the model's own low-res frame
    (``low_res_shape``, mapped onto the image as ``low_res_frame`` says; SAM v1: 256² over the
    padded 1024² input) and are what ``mask_input`` takes back, unchanged. Code that needs
    logits or masks at the image size calls the model's ``upsample(embedding, logits,
    threshold)``; nothing resamples low-res logits to a fixed frame.

    Text prompts are optional: a model that takes them has ``text_dim > 0`` (the embedding
    size it expects) and ``text_encoder`` (the encoder's name it was trained with, or None
    when unrecorded), and its ``predict`` accepts ``text=`` an ℓ2-normalised embedding
    ``(D,)`` or a batch ``(B, D)``, alone or with points / a box. Models without text reject
    ``text`` with :class:`SambenchError` (see :func:`reject_text`, :func:`supports_text`).
    """

    def embed(self, image: np.ndarray) -> Any: ...

    def predict(self, embedding: Any, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True) -> Prediction: ...

    def info(self) -> ModelInfo: ...


@dataclass
class PromptBatch:
    """Prompts normalised to a batch: every field has a leading B axis (or is None)."""

    points: Optional[np.ndarray]  # (B, N, 2) float32
    labels: Optional[np.ndarray]  # (B, N) int64
    boxes: Optional[np.ndarray]  # (B, 4) float32
    mask_input: Optional[np.ndarray]  # (B, 1, h, w) float32, the model's low-res frame
    batched: bool
    size: int
    text: Optional[np.ndarray] = None  # (B, D) float32 text embeddings


@dataclass
class ConceptPrediction:
    """Every instance a model found for one noun phrase (the concept path, e.g. SAM 3):
    ``masks`` ``(N, H, W)`` bool at the original size, ``scores`` ``(N,)`` in [0, 1],
    ``boxes`` ``(N, 4)`` XYXY pixels. N may be 0."""

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray


def supports_concepts(model) -> bool:
    """Whether the model answers a noun phrase with all its instances (``predict_concept(
    embedding, phrase) -> ConceptPrediction``), the protocol's other optional part."""
    return callable(getattr(model, "predict_concept", None))


def supports_text(model) -> bool:
    """Whether ``model.predict`` takes ``text=`` embeddings (the protocol's optional part)."""
    return int(getattr(model, "text_dim", 0) or 0) > 0


def reject_text(text, model_name: str) -> None:
    """The clear error of a model without a text path that was given a text prompt."""
    if text is not None:
        raise SambenchError(f"model {model_name} takes no text prompts (points, boxes and masks "
                            "only); score a text-conditioned detector's boxes with it instead "
                            "(--text-detections, docs/text.md)")


def batch_prompts(points=None, labels=None, box=None, mask_input=None, text=None,
                  low_res_shape: tuple[int, int] = (LOW_RES, LOW_RES)) -> PromptBatch:
    """Check prompt shapes and add the batch axis to an unbatched prompt.

    A prompt is points, a box or text (an embedding), alone or together, plus an optional mask
    input in the model's low-res frame ``low_res_shape`` (its ``Capabilities.low_res_shape``).
    It is batched when points are 3-D, a box or text 2-D; every given field must then agree on
    B. Shape mistakes raise :class:`SambenchError` with the offending shapes.
    """
    pts = None if points is None else np.asarray(points, np.float32)
    lbl = None if labels is None else np.asarray(labels, np.int64)
    bxs = None if box is None else np.asarray(box, np.float32)
    msk = None if mask_input is None else np.asarray(mask_input, np.float32)
    txt = None if text is None else np.asarray(text, np.float32)
    if (pts is None) != (lbl is None):
        raise SambenchError("points and labels must be given together")
    if pts is None and bxs is None and txt is None:
        raise SambenchError("a prompt needs points, a box or text")
    batched = ((pts is not None and pts.ndim == 3) or (bxs is not None and bxs.ndim == 2)
               or (txt is not None and txt.ndim == 2))
    if not batched:
        pts = None if pts is None else pts[None]
        lbl = None if lbl is None else lbl[None]
        bxs = None if bxs is None else bxs[None]
        msk = None if msk is None else msk[None]
        txt = None if txt is None else txt[None]
    sizes = {name: a.shape[0] for name, a in
             (("points", pts), ("labels", lbl), ("box", bxs), ("mask_input", msk), ("text", txt))
             if a is not None}
    if len(set(sizes.values())) != 1:
        raise SambenchError(f"prompt batch sizes disagree: {sizes}")
    if pts is not None and (pts.ndim != 3 or pts.shape[-1] != 2 or lbl.shape != pts.shape[:2]):
        raise SambenchError(f"points must be (B, N, 2) with labels (B, N); got {pts.shape}, {lbl.shape}")
    if bxs is not None and bxs.shape[1:] != (4,):
        raise SambenchError(f"boxes must be (B, 4) XYXY; got {bxs.shape}")
    if msk is not None and msk.shape[1:] != (1, *low_res_shape):
        raise SambenchError(f"mask_input must be (B, 1, {low_res_shape[0]}, {low_res_shape[1]}) "
                            f"(this model's low-res frame); got {msk.shape}")
    if txt is not None and (txt.ndim != 2 or txt.shape[1] < 1 or not np.isfinite(txt).all()):
        raise SambenchError(f"text must be finite embeddings (D,) or (B, D); got {txt.shape}")
    return PromptBatch(pts, lbl, bxs, msk, batched, next(iter(sizes.values())), txt)


def unbatch(pred: Prediction, batch: PromptBatch) -> Prediction:
    """Drop the batch axis again for an unbatched call."""
    if batch.batched:
        return pred
    return Prediction(pred.masks[0], pred.scores[0], pred.low_res_logits[0])


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """SAM's ``ResizeLongestSide.get_preprocess_shape``: ``int(side * scale + 0.5)``."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)
