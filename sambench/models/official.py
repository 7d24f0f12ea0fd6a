"""The ``sam-official`` model: the official ``segment-anything`` code behind our protocol.

For cross-checking: the same checkpoint run through Meta's modules (``segment_anything.modeling``)
and ``SamPredictor``'s own pre/post-processing, so any difference from ``sam`` is ours.

The package is imported lazily (``import sambench.models.official`` works without it) and
without torchvision: its ``__init__`` pulls torchvision in through the predictor and the mask
generator, and only ``utils/transforms.py`` actually uses it, for two calls on the image
(``to_pil_image`` then ``resize``). :func:`import_official` therefore

- registers a bare ``segment_anything`` package object whose ``__path__`` is the installed
  directory (its ``__init__`` never runs), then imports ``segment_anything.modeling``;
- imports ``utils/transforms.py`` and ``predictor.py`` with the real torchvision if it
  imports, else with a stand-in module, present only during that import, whose two functions
  make the PIL calls torchvision makes for an HWC uint8 array and an ``(h, w)`` size:
  ``Image.fromarray(array)`` and ``img.resize((w, h), Image.BILINEAR)`` (returning the image
  unchanged when it already has that size, as torchvision does).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from functools import partial
from typing import Optional

import numpy as np
import torch

from sambench.errors import SambenchError
from sambench.models.base import LOW_RES, ModelInfo, batch_prompts, reject_text

_INSTALL_HINT = "pip install segment-anything==1.0"
_official: Optional[types.SimpleNamespace] = None


def _torchvision_works() -> bool:
    try:
        importlib.import_module("torchvision.transforms.functional")
        return True
    except Exception:  # absent, or present but built for another torch
        return False


def _pil_to_pil_image(pic, mode=None):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(pic))


def _pil_resize(img, size, interpolation=None, max_size=None, antialias=True):
    from PIL import Image

    height, width = size
    if img.size == (width, height):
        return img
    return img.resize((width, height), Image.BILINEAR)


@contextlib.contextmanager
def _torchvision_stand_in():
    """Put a minimal ``torchvision.transforms.functional`` in ``sys.modules`` for one import."""
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    added = []
    try:
        for name in names:
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        functional = sys.modules["torchvision.transforms.functional"]
        functional.resize = _pil_resize
        functional.to_pil_image = _pil_to_pil_image
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = functional
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def import_official() -> types.SimpleNamespace:
    """``modeling``, ``transforms`` (``ResizeLongestSide``) and ``SamPredictor`` of the official package.

    Raises :class:`SambenchError` if ``segment-anything`` is not installed.
    """
    global _official
    if _official is not None:
        return _official
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise SambenchError(f"model sam-official needs the segment-anything package: {_INSTALL_HINT}")
    torchvision_ok = _torchvision_works()
    if "segment_anything" not in sys.modules:
        if torchvision_ok:
            importlib.import_module("segment_anything")
        else:
            package = types.ModuleType("segment_anything")
            package.__path__ = list(spec.submodule_search_locations)
            package.__package__ = "segment_anything"
            package.__file__ = spec.origin
            sys.modules["segment_anything"] = package
    modeling = importlib.import_module("segment_anything.modeling")
    with contextlib.nullcontext() if torchvision_ok else _torchvision_stand_in():
        transforms = importlib.import_module("segment_anything.utils.transforms")
        predictor = importlib.import_module("segment_anything.predictor")
    _official = types.SimpleNamespace(modeling=modeling, transforms=transforms,
                                      SamPredictor=predictor.SamPredictor,
                                      torchvision="real" if torchvision_ok else "pil stand-in")
    return _official


def build_official_sam(state: dict, config) -> torch.nn.Module:
    """The official ``Sam`` for a :class:`~sambench.models.sam.SamConfig`, weights loaded strictly.

    The same constructor calls as ``build_sam._build_sam``, with the sizes taken from ``config``.
    """
    m = import_official().modeling
    c = config
    mlp_ratio = c.mlp_dim / c.embed_dim
    if int(c.embed_dim * mlp_ratio) != c.mlp_dim:  # official computes int(dim * ratio)
        mlp_ratio = (c.mlp_dim + 0.5) / c.embed_dim
    with torch.device("meta"):
        sam = m.Sam(
            image_encoder=m.ImageEncoderViT(
                depth=c.depth, embed_dim=c.embed_dim, img_size=c.img_size, mlp_ratio=mlp_ratio,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=c.num_heads,
                patch_size=c.patch_size, qkv_bias=c.qkv_bias, use_rel_pos=True,
                global_attn_indexes=list(c.global_attn_indexes), window_size=c.window_size,
                out_chans=c.prompt_embed_dim),
            prompt_encoder=m.PromptEncoder(
                embed_dim=c.prompt_embed_dim, image_embedding_size=(c.grid, c.grid),
                input_image_size=(c.img_size, c.img_size), mask_in_chans=c.mask_in_chans),
            mask_decoder=m.MaskDecoder(
                num_multimask_outputs=c.num_multimask_outputs,
                transformer=m.TwoWayTransformer(
                    depth=c.decoder_depth, embedding_dim=c.prompt_embed_dim, mlp_dim=c.decoder_mlp_dim,
                    num_heads=c.decoder_num_heads, attention_downsample_rate=c.attention_downsample_rate),
                transformer_dim=c.prompt_embed_dim, iou_head_depth=c.iou_head_depth,
                iou_head_hidden_dim=c.iou_head_hidden_dim),
            pixel_mean=list(c.pixel_mean), pixel_std=list(c.pixel_std))
    sam.load_state_dict({k: v.float().clone() for k, v in state.items()}, strict=True, assign=True)
    sam.pixel_mean = torch.Tensor(list(c.pixel_mean)).view(-1, 1, 1)
    sam.pixel_std = torch.Tensor(list(c.pixel_std)).view(-1, 1, 1)
    return sam.eval()


class OfficialSamModel:
    """The official modules and ``SamPredictor`` as a :class:`~sambench.models.base.PromptableModel`.

    Prompts of a batch go to one ``predict_torch`` call, as ``SamPredictor`` allows.
    """

    family = "sam"

    def __init__(self, sam: torch.nn.Module, config, *, checkpoint: Optional[str] = None,
                 sha256: Optional[str] = None, device: str = "cpu", dtype: str = "float32") -> None:
        from sambench.models.runtime import resolve_device, resolve_dtype, warn_if_emulated

        self.name = "sam-official"
        self.config = config
        self.checkpoint, self.sha256 = checkpoint, sha256
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        warn_if_emulated(self.device, self.dtype)
        self.sam = sam.to(self.device)
        self.predictor = import_official().SamPredictor(self.sam)

    def _autocast(self):
        from sambench.models.runtime import autocast_for

        return autocast_for(self.device, self.dtype)

    def info(self) -> ModelInfo:
        from sambench.models.sam.model import PREPROCESS

        from sambench.models.sam.family import capabilities

        config = self.config.to_dict()
        config.update(implementation="segment_anything", torchvision=import_official().torchvision,
                      preprocess=PREPROCESS)
        return ModelInfo(name=self.name, family=self.family, checkpoint=self.checkpoint,
                         sha256=self.sha256, params=sum(p.numel() for p in self.sam.parameters()),
                         config=config, capabilities=capabilities(self.config))

    def embed(self, image: np.ndarray):
        from sambench.models.sam.model import SamEmbedding
        from sambench.models.sam.transforms import check_image

        with torch.inference_mode(), self._autocast():
            self.predictor.set_image(check_image(image))
        emb = SamEmbedding(self.predictor.features.float().clone(),
                           tuple(self.predictor.original_size), tuple(self.predictor.input_size))
        self.predictor.reset_image()
        return emb

    def embed_batch(self, images) -> list:
        return [self.embed(image) for image in images]

    def _set(self, embedding) -> None:
        p = self.predictor
        p.reset_image()
        p.features = embedding.features.to(self.device)
        p.original_size, p.input_size = embedding.original_size, embedding.input_size
        p.is_image_set = True

    def decode(self, embedding, batch, multimask: bool = True):
        """Official ``predict_torch``: low-res logits (the model's frame) and IoU, torch."""
        self._set(embedding)
        p = self.predictor
        coords = labels = boxes = masks = None
        if batch.points is not None:
            coords = torch.as_tensor(p.transform.apply_coords(batch.points, embedding.original_size),
                                     dtype=torch.float, device=self.device)
            labels = torch.as_tensor(batch.labels, dtype=torch.int, device=self.device)
        if batch.boxes is not None:
            boxes = torch.as_tensor(p.transform.apply_boxes(batch.boxes, embedding.original_size),
                                    dtype=torch.float, device=self.device)
        if batch.mask_input is not None:
            masks = torch.as_tensor(batch.mask_input, device=self.device)
        with torch.inference_mode(), self._autocast():
            _, iou, low_res = p.predict_torch(coords, labels, boxes, masks, multimask,
                                              return_logits=True)
        return low_res.float(), iou.float()

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = True, return_masks: bool = True, text=None):
        from sambench.models.sam.model import finish_prediction

        reject_text(text, "sam-official (segment-anything 1.0 has no text path)")
        low = self.config.low_res
        batch = batch_prompts(points, labels, box, mask_input, low_res_shape=(low, low))
        low_res, iou = self.decode(embedding, batch, multimask)
        masks = self.upsample(embedding, low_res) if return_masks else None
        return finish_prediction(masks, iou, low_res, batch)

    def upsample_logits(self, embedding, low_res_logits) -> torch.Tensor:
        """Official ``Sam.postprocess_masks`` on low-res logits ``(..., h, w)``: floats."""
        logits = torch.as_tensor(low_res_logits, device=self.device).float()
        flat = logits.reshape(-1, 1, *logits.shape[-2:])
        with torch.inference_mode():
            out = self.sam.postprocess_masks(flat, embedding.input_size, embedding.original_size)
        return out.reshape(*logits.shape[:-2], *embedding.original_size)

    def upsample(self, embedding, low_res_logits, threshold: Optional[float] = 0.0):
        logits = self.upsample_logits(embedding, low_res_logits)
        if threshold is None:
            return logits.cpu().numpy()
        return (logits > threshold).cpu().numpy()


def build_official_model(checkpoint: Optional[str] = None, device: str = "cpu",
                         dtype: str = "float32", decoder_num_heads: int = 8,
                         **options) -> OfficialSamModel:
    if options:
        raise SambenchError(f"unknown option(s) for model sam-official: {', '.join(sorted(options))}")
    if checkpoint is None:
        raise SambenchError("model sam-official needs a checkpoint: --model sam-official:PATH")
    import_official()  # fail early and clearly when the package is missing
    from sambench.models.sam.checkpoint import infer_config, read_state_dict, sha256_file

    state = read_state_dict(checkpoint)
    config = infer_config(state, str(checkpoint), decoder_num_heads)
    try:
        sam = build_official_sam(state, config)
    except RuntimeError as exc:  # strict load_state_dict names missing/unexpected keys
        raise SambenchError(f"{checkpoint} does not fit the official SAM modules: "
                            f"{str(exc).splitlines()[0]}") from None
    return OfficialSamModel(sam, config, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint),
                            device=device, dtype=dtype)
