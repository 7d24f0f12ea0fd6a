"""The ``sam3`` model: an adapter over Meta's ``sam3`` package (SAM 3, image paths).

Deliberately an adapter, not a reimplementation: SAM 3 is an 848M-parameter detector with a
text tower and a SAM 2-style interactive head, and its package is the reference. The adapter
puts both image paths behind sambench's protocol:

- ``embed`` runs the vision backbone once (``Sam3Processor.set_image``: the image stretched to
  1008×1008, mean/std 0.5) and keeps the package's state, SAM 2 features included;
- ``predict`` (points, boxes, mask input; a batch of B prompts in one call) goes through the
  instance-interactive predictor (``Sam3Image.predict_inst``): 288×288 low-res logits over the
  stretched image, dynamic multimask on as in the reference, and its hole filling
  (``max_hole_area``, 256 px by default, a recorded option; on CPU it uses scikit-image);
- ``predict_concept`` (a noun phrase) goes through the detector (``set_text_prompt``): every
  instance whose score, sigmoid(logit) × sigmoid(presence), is above ``confidence_threshold``
  (0.5, the reference's), with its mask and box.

Checkpoints: ``sam3.pt`` (``{"model": ...}`` or flat; ``detector.*`` → the image model,
``tracker.*`` → its interactive predictor, as the package's own loader maps them), loaded with
``weights_only=True`` and strictly: a missing or unexpected key is an error. The SAM 3.1
release (``sam3.1_multiplex.pt``: a tri-head neck, ``tracker.model.*`` multiplex tracker) is
recognised and refused with the reason: the package version wrapped here has no classes for
it, so there is no reference to prove a mapping against. A reduced model
(tests) records its sizes as ``sam3_config`` in the checkpoint's metadata sidecar
(:mod:`sambench.models.sam3.build`). The CLIP BPE vocabulary the text tower needs is not in
the ``sam3`` wheel: option ``bpe_path``, else the copy ``open_clip`` ships. On a machine
without CUDA, ``Tensor.pin_memory`` (called unconditionally by two package functions) is made
a no-op while the package runs: pinning is a transfer optimisation and changes no value.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from sambench.errors import SambenchError
from sambench.models.base import (Capabilities, ConceptPrediction, ModelInfo, batch_prompts, reject_text,
                                  unbatch)
from sambench.models.sam3.build import IMAGE_SIZE, Sam3Config, build_sam3
from sambench.types import Prediction

LOW_RES = 288  # 1008 / 14 * 4: the interactive head's low-res logits
# Key prefixes only the SAM 3.1 release (sam3.1_multiplex.pt) has: its tracker is nested one
# level deeper (the multiplex video model) and its neck has interactive / propagation heads.
SAM31_MARKERS = ("tracker.model.", "detector.backbone.vision_backbone.propagation_convs.")
CONFIG_KEY = "sam3_config"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
INSTALL = "pip install 'sambench[sam3]' (the sam3 package, torchvision matching your torch, scikit-image, open_clip_torch)"


def import_sam3():
    """The ``sam3`` package, or one clear error saying what to install."""
    try:
        import sam3  # noqa: F401
        from sam3.model.sam3_image_processor import Sam3Processor
    except ImportError as exc:
        raise SambenchError(f"model sam3 needs the sam3 package and its image dependencies ({exc}): {INSTALL}") from None
    return Sam3Processor


def find_bpe(given: Optional[str] = None) -> str:
    """The CLIP BPE vocabulary: ``given``, the sam3 package's assets, or open_clip's copy."""
    if given:
        if not Path(given).is_file():
            raise SambenchError(f"sam3: BPE vocabulary not found: {given}")
        return str(given)
    candidates = []
    for module in ("sam3", "open_clip"):
        try:
            package = __import__(module)
        except ImportError:
            continue
        base = Path(package.__file__).parent
        candidates += [base / BPE_FILE, base.parent / "assets" / BPE_FILE, base / "assets" / BPE_FILE]
    for path in candidates:
        if path.is_file():
            return str(path)
    raise SambenchError(f"sam3: the CLIP BPE vocabulary {BPE_FILE} is not in the sam3 wheel; install open_clip_torch "
                        f"(it ships the same file) or pass --model-option bpe_path=FILE")


@contextlib.contextmanager
def cpu_safe(device: str):
    """Run package code on a machine without CUDA: ``pin_memory`` becomes the identity."""
    import torch

    if device != "cpu" or torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.pin_memory
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.pin_memory = original


def to_package_keys(state: dict) -> dict:
    """``sam3.pt`` keys → the image model's (the package's ``_load_checkpoint`` mapping)."""
    out = {}
    for key, value in state.items():
        if key.startswith("detector."):
            out[key[len("detector."):]] = value
        elif key.startswith("tracker."):
            out["inst_interactive_predictor.model." + key[len("tracker."):]] = value
        else:
            out[key] = value  # reported as unexpected by the strict load
    return out


def load_weights(model, state: dict, source: str) -> None:
    """Strict load: every parameter and buffer present, nothing left over."""
    mapped = to_package_keys(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        def names(keys):
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
        raise SambenchError(f"{source} is not a SAM 3 checkpoint of this size: "
                            + "; ".join(p for p in (missing and f"missing {names(missing)}",
                                                    unexpected and f"unexpected {names(unexpected)}") if p))
    bad = [k for k in expected if tuple(mapped[k].shape) != tuple(expected[k].shape)]
    if bad:
        raise SambenchError(f"{source}: tensor shapes differ from the model's, e.g. {bad[0]} "
                            f"{tuple(mapped[bad[0]].shape)} vs {tuple(expected[bad[0]].shape)}")
    model.load_state_dict(mapped, strict=True)


@dataclass
class Sam3Embedding:
    state: dict  # the package's inference state after set_image
    original_size: tuple[int, int]


class Sam3Model:
    """SAM 3 behind the PromptableModel protocol, with the concept path (module docstring)."""

    family = "sam3"

    def __init__(self, model, processor, *, checkpoint: Optional[str], sha256: Optional[str], config: Sam3Config,
                 device: str, max_hole_area: float, confidence_threshold: float, bpe_path: str):
        self.model, self.processor = model, processor
        self.checkpoint, self.sha256, self.config = checkpoint, sha256, config
        self.device = device
        self.max_hole_area, self.confidence_threshold, self.bpe_path = max_hole_area, confidence_threshold, bpe_path
        self._last: Optional[tuple[str, Sam3Embedding]] = None  # SA-Co pairs repeat an image back to back

    def info(self) -> ModelInfo:
        params = sum(p.numel() for p in self.model.parameters())
        return ModelInfo(
            name="sam3", family=self.family, checkpoint=self.checkpoint, sha256=self.sha256, params=params,
            config={"sizes": self.config.to_json(), "image_size": IMAGE_SIZE, "preprocess": "stretch to 1008x1008, "
                    "mean/std 0.5", "max_hole_area": self.max_hole_area,
                    "confidence_threshold": self.confidence_threshold, "dynamic_multimask_via_stability": True,
                    "concept_score": "sigmoid(logit) x sigmoid(presence)", "package": _package_version()},
            capabilities=Capabilities(low_res_shape=(LOW_RES, LOW_RES), low_res_frame="stretched",
                                      multimask_outputs=3, mask_input=True, max_points=None, score="predicted_iou"))

    def embed(self, image: np.ndarray) -> Sam3Embedding:
        from PIL import Image

        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SambenchError(f"sam3: expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        key = hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        with cpu_safe(self.device):
            state = self.processor.set_image(Image.fromarray(image))
        embedding = Sam3Embedding(state, image.shape[:2])
        self._last = (key, embedding)
        return embedding

    def predict(self, embedding: Sam3Embedding, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True, text=None) -> Prediction:
        reject_text(text, "sam3 (noun phrases go through the concept task)")
        batch = batch_prompts(points, labels, box, mask_input, low_res_shape=(LOW_RES, LOW_RES))
        with cpu_safe(self.device):
            masks, scores, low_res = self.model.predict_inst(
                embedding.state, point_coords=batch.points, point_labels=batch.labels, box=batch.boxes,
                mask_input=batch.mask_input, multimask_output=multimask)
        if batch.size == 1:  # the package squeezes a batch of one
            masks, scores, low_res = masks[None], scores[None], low_res[None]
        return unbatch(Prediction(np.asarray(masks) > 0, np.asarray(scores, np.float32),
                                  np.asarray(low_res, np.float32)), batch)

    def predict_concept(self, embedding: Sam3Embedding, phrase: str) -> ConceptPrediction:
        if not isinstance(phrase, str) or not phrase.strip():
            raise SambenchError(f"sam3: a concept prompt is a non-empty noun phrase, got {phrase!r}")
        state = dict(embedding.state)
        state["backbone_out"] = dict(state["backbone_out"])  # the text features go into a copy
        with cpu_safe(self.device):
            out = self.processor.set_text_prompt(phrase, state)
        masks = out["masks"].squeeze(1).cpu().numpy().astype(bool)
        return ConceptPrediction(masks, out["scores"].float().cpu().numpy(), out["boxes"].float().cpu().numpy())


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return f"sam3 {version('sam3')}"
    except Exception:  # noqa: BLE001 - provenance only
        return "sam3 (version unknown)"


def build_sam3_model(checkpoint: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                     bpe_path: Optional[str] = None, max_hole_area: float = 256.0,
                     confidence_threshold: float = 0.5, **options) -> Sam3Model:
    """``load_model("sam3", checkpoint=...)``: options ``bpe_path``, ``max_hole_area``,
    ``confidence_threshold``. fp32 only: SAM 3's own bf16 paths are CUDA-specific."""
    import torch

    from sambench.models.runtime import resolve_device
    from sambench.models.sam.checkpoint import read_metadata, read_state_dict, sha256_file

    if options:
        raise SambenchError(f"model sam3: unknown options {sorted(options)} "
                            "(known: bpe_path, max_hole_area, confidence_threshold)")
    if dtype != "float32":
        raise SambenchError("model sam3 runs in float32 here (the package's reduced-precision paths need CUDA)")
    if not checkpoint:
        raise SambenchError("model sam3 needs a checkpoint: --model sam3:PATH (sam3.pt from the SAM 3 release)")
    device = str(resolve_device(device))
    meta = read_metadata(checkpoint)
    try:
        config = Sam3Config.from_json(json.loads(meta[CONFIG_KEY])) if CONFIG_KEY in meta else Sam3Config()
    except json.JSONDecodeError as exc:
        raise SambenchError(f"{checkpoint}: unreadable {CONFIG_KEY} metadata: {exc}") from None
    state = read_state_dict(checkpoint)
    if not any(k.startswith(("detector.", "tracker.")) for k in state):
        raise SambenchError(f"{checkpoint} is not a SAM 3 checkpoint (no detector.* / tracker.* tensors)")
    sam31 = next((k for k in state if k.startswith(SAM31_MARKERS) or ".interactive_convs." in k), None)
    if sam31:
        raise SambenchError(f"{checkpoint} is a SAM 3.1 (Object Multiplex) checkpoint ({sam31}): its tri-head "
                            "neck and multiplex tracker are not in the sam3 package this adapter wraps (PyPI "
                            "sam3 0.1.4), so it cannot be loaded; use sam3.pt (docs/concepts.md)")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise SambenchError(f"{checkpoint}: the weights hold NaN or infinite values")
    processor_cls = import_sam3()
    bpe = find_bpe(bpe_path)
    model = build_sam3(config, bpe, max_hole_area=float(max_hole_area))
    load_weights(model, state, str(checkpoint))
    model = model.to(device)
    processor = processor_cls(model, device=device, confidence_threshold=float(confidence_threshold))
    return Sam3Model(model, processor, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint), config=config,
                     device=device, max_hole_area=float(max_hole_area),
                     confidence_threshold=float(confidence_threshold), bpe_path=bpe)


def write_random_sam3(path, config: Sam3Config, seed: int = 0, bpe_path: Optional[str] = None) -> Path:
    """A random checkpoint in the ``sam3.pt`` layout (every tensor drawn from ``seed``), with
    its sizes in the metadata sidecar: the reduced model the tests run."""
    import torch

    from sambench.models.sam.checkpoint import write_sidecar

    import_sam3()
    model = build_sam3(config, find_bpe(bpe_path))
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=generator) * 0.05
            if key.endswith("running_var"):
                value = value.abs() + 0.5
        inner = "inst_interactive_predictor.model."
        out["tracker." + key[len(inner):] if key.startswith(inner) else "detector." + key] = value
    path = Path(path)
    torch.save({"model": out}, path)
    write_sidecar(path, {CONFIG_KEY: json.dumps(config.to_json())})
    return path


__all__ = ["Sam3Model", "Sam3Embedding", "build_sam3_model", "write_random_sam3", "find_bpe", "cpu_safe", "LOW_RES"]
