"""Model families: what differs between SAM v1 and the models built on its prompt path.

MobileSAM, HQ-SAM, EfficientViT-SAM, EdgeSAM and SAM v1 itself share SAM v1's prompt encoder
and mask decoder (:mod:`sambench.models.sam`) and differ in their image encoder, their
preprocessing, their checkpoint layout and (HQ-SAM) an extra decoder head. A family declares
exactly those differences as data; :class:`~sambench.models.family_model.FamilyModel` runs
any of them behind the :class:`~sambench.models.base.PromptableModel` protocol, and
:func:`load_family_model` turns a checkpoint into one. Adding a family is one module that
defines a :class:`Family` plus one line in ``sambench.models.families.FAMILIES`` (docs/models.md).

The contract a family module fulfils:

- ``build(config)`` returns an ``nn.Module`` with ``image_encoder``, ``prompt_encoder`` and
  ``mask_decoder`` attributes, the state-dict keys of the family's released checkpoints (after
  :class:`CheckpointMapper` renames), a ``config`` attribute and ``num_parameters()``. It is
  called under ``torch.device("meta")`` and then loaded with ``assign=True``: buffers that are
  not in checkpoints (pixel statistics, index tables) are made real in ``init_buffers()``,
  which the loader calls when the module defines it.
  An image encoder with ``prepare_inference()`` gets it called once the weights are loaded:
  the place for inference-only rewrites that keep the function (folding batch norms into
  convolutions), after which its state dict need not be in the released layout any more.
- ``image_encoder(x)`` maps the ``(B, 3, S, S)`` input of :class:`Preprocess` to the
  ``(B, C, h, w)`` image embedding; a family with ``encoder_outputs = ("name", ...)`` returns a
  tuple ``(embedding, name_tensor, ...)`` instead, each extra with a leading batch axis. The
  extras are kept in the embedding (and the embedding cache) and passed to the mask decoder
  as keyword arguments.
- ``mask_decoder(image_embeddings, image_pe, sparse, dense, multimask, cache=..., **extras)``
  has the signature of :class:`sambench.models.sam.mask_decoder.MaskDecoder` and returns
  low-res logits ``(B, K, 4h, 4w)`` and scores ``(B, K)``; K must agree with
  ``capabilities(config).multimask_outputs`` for a multimask call and be 1 otherwise.
- ``infer_config(state, source, **options)`` reads every size off the tensors (never from a
  variant name) and returns a config whose ``to_dict()`` is recorded in results.json (include
  the options there, e.g. HQ-SAM's ``hq_token_only``) and whose ``variant`` names a known size
  or ``"custom"``. Options it does not know raise :class:`~sambench.errors.SambenchError`.
- ``detect(state)`` says whether a (mapped) state dict is this family's. Detectors of
  different families must never both accept one checkpoint: ``--model PATH`` relies on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sambench.errors import SambenchError
from sambench.models.base import Capabilities, names, resized_shape

StateDict = Mapping[str, torch.Tensor]

PIXEL_MEAN = (123.675, 116.28, 103.53)  # ImageNet statistics on the 0-255 scale, RGB
PIXEL_STD = (58.395, 57.12, 57.375)
RESIZES = ("longest-side+pad", "stretch")
KERNELS = ("pil-bilinear", "torch-bilinear", "torch-bilinear-antialias")
@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the encoder's input, and how low-res logits map back onto it.

    - ``resize``: ``"longest-side+pad"`` (SAM: the long side becomes ``input_size``, the short
      one ``int(side·scale + 0.5)``, then zero padding at the bottom/right after normalising;
      the low-res frame is the padded square) or ``"stretch"`` (both sides become
      ``input_size``, aspect ratio not kept; the low-res frame is the whole image, stretched).
    - ``kernel``: ``"pil-bilinear"`` (PIL on the uint8 image: the official ``SamPredictor``),
      ``"torch-bilinear"`` (``F.interpolate`` on the float image, no antialias) or
      ``"torch-bilinear-antialias"`` (the same with ``antialias=True``, torchvision's default).
    - ``pixel_mean`` / ``pixel_std`` on the scale of ``pixel_range``: 255 normalises 0-255
      pixels (SAM's ``(x - mean) / std``), 1 divides by 255 first (``ToTensor`` then
      ``Normalize``: the same maths, rounded as those references round it).

    - ``prompt_size``: the side of the frame prompts, low-res logits and the post-processing
      crop live in, when it is not the encoder input's (EfficientViT-SAM L0–L2 encode 512 px
      but keep SAM's 1024-px prompt frame); longest side + pad only. The two resized shapes
      are rounded separately, as the reference predictor does.

    Prompts map into the prompt frame by scaling x and y by new/old size (float64 then
    float32, as ``ResizeLongestSide.apply_coords``).
    """

    input_size: int
    resize: str = "longest-side+pad"
    kernel: str = "pil-bilinear"
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD
    pixel_range: int = 255
    prompt_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, got {self.resize!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.pixel_range not in (1, 255):
            raise ValueError(f"pixel_range must be 1 or 255, got {self.pixel_range}")
        if self.prompt_size is not None and self.resize != "longest-side+pad":
            raise ValueError("prompt_size is for longest-side + pad inputs")

    @property
    def frame_size(self) -> int:
        """Side of the prompt / low-res frame (the padded square the decoder sees)."""
        return self.prompt_size or self.input_size

    @property
    def frame(self) -> str:
        """The low-res frame (``Capabilities.low_res_frame``): padded square or stretched image."""
        return "padded-square" if self.resize == "longest-side+pad" else "stretched"

    def describe(self) -> str:
        """The preprocessing as recorded in results.json and the embedding-cache key."""
        kernel = self.kernel.replace("-", "_")
        norm = "normalize" if self.pixel_range == 255 else "to_unit+normalize"
        if self.resize == "stretch":
            return f"resize_stretch({kernel})+{norm}"
        prompts = f"+prompts_at_{self.prompt_size}" if self.prompt_size not in (None, self.input_size) else ""
        return f"resize_longest_side({kernel})+{norm}+pad{prompts}"

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the resized image inside the encoder input."""
        if self.resize == "stretch":
            return self.input_size, self.input_size
        return resized_shape(height, width, self.input_size)

    def frame_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the image inside the prompt frame (the crop of the upsampled logits)."""
        if self.resize == "stretch":
            return self.input_size, self.input_size
        return resized_shape(height, width, self.frame_size)

    def image(self, image: np.ndarray, device) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(1, 3, S, S)`` encoder input and the (h, w) of the image in the prompt frame
        (:meth:`frame_shape`; the resized shape itself unless ``prompt_size`` is set)."""
        from sambench.models.sam import transforms

        image = transforms.check_image(image)
        mean = torch.tensor(self.pixel_mean, device=device).view(-1, 1, 1)
        std = torch.tensor(self.pixel_std, device=device).view(-1, 1, 1)
        if (self.resize == "longest-side+pad" and self.kernel == "pil-bilinear" and self.pixel_range == 255
                and self.prompt_size is None):
            return transforms.preprocess(image, self.input_size, mean, std, device)  # SAM v1
        height, width = self.input_shape(*image.shape[:2])
        if self.kernel == "pil-bilinear":
            resized = transforms.resize_to(image, height, width)
            x = torch.from_numpy(np.ascontiguousarray(resized)).to(device).permute(2, 0, 1)[None].float()
        else:
            x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
            if self.pixel_range == 1:
                x = x / 255.0
            if (height, width) != tuple(image.shape[:2]):
                x = F.interpolate(x, (height, width), mode="bilinear", align_corners=False,
                                  antialias=self.kernel == "torch-bilinear-antialias")
        if self.kernel == "pil-bilinear" and self.pixel_range == 1:
            x = x / 255.0
        x = (x - mean) / std
        x = F.pad(x, (0, self.input_size - width, 0, self.input_size - height))
        return x, self.frame_shape(*image.shape[:2])

    def coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Pixel ``(..., 2)`` ``(x, y)`` coordinates of the original image → prompt frame."""
        old_h, old_w = original_size
        new_h, new_w = self.frame_shape(old_h, old_w)
        out = np.array(coords, dtype=np.float64)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out.astype(np.float32)

    def boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """``(B, 4)`` XYXY boxes of the original image → input frame."""
        return self.coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def upsample_logits(self, low_res: torch.Tensor, input_size: tuple[int, int],
                        original_size: tuple[int, int]) -> torch.Tensor:
        """``(B, 1, l, l)`` low-res logits → ``(B, 1, H, W)`` logits at the original size."""
        from sambench.models.sam import transforms

        if self.resize == "stretch":
            return F.interpolate(low_res, original_size, mode="bilinear", align_corners=False)
        return transforms.upsample_logits(low_res, input_size, original_size, self.frame_size)

    def logits_to_masks(self, low_res: torch.Tensor, input_size: tuple[int, int],
                        original_size: tuple[int, int], threshold: float = 0.0) -> np.ndarray:
        """Bool masks ``(B, K, H, W)`` of ``(B, K, l, l)`` low-res logits (chunked)."""
        from sambench.models.sam import transforms

        if self.resize == "stretch":
            upsample = lambda x, *_: F.interpolate(x, original_size, mode="bilinear", align_corners=False)  # noqa: E731
        else:
            upsample = transforms.upsample_logits
        return transforms.logits_to_masks(low_res, input_size, original_size, self.frame_size,
                                          threshold, upsample=upsample)


@dataclass(frozen=True)
class CheckpointMapper:
    """A released checkpoint's layout → the family module's state-dict keys.

    ``renames`` (``(old_prefix, new_prefix)`` pairs, first match wins) are applied first, then
    keys under an ``ignored`` prefix are dropped: every key a family leaves unused is listed
    here on purpose (e.g. MobileSAM's ImageNet classifier ``image_encoder.head.``). Each
    ``required`` prefix must match at least one key: these are the family's signature (HQ-SAM's
    extra decoder modules), and a checkpoint without them is an error, never a model with
    random modules. Everything else is strict: the loader rejects missing and unexpected keys
    and wrong shapes against the module :attr:`Family.build` made.
    """

    renames: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def apply(self, state: StateDict) -> dict[str, torch.Tensor]:
        out = {}
        for key, tensor in state.items():
            for old, new in self.renames:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            if not (self.ignored and key.startswith(self.ignored)):
                out[key] = tensor
        return out

    def missing(self, state: StateDict) -> list[str]:
        """The ``required`` prefixes no key of ``state`` starts with."""
        return [prefix for prefix in self.required if not any(k.startswith(prefix) for k in state)]


def default_random_tensor(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    """A random value for one state-dict entry that keeps activations O(1) (tests, demos).

    Every tensor is random, those an official init leaves at zero or one included (a constant
    would hide a bug in the code that reads it): batch-norm running statistics (variance
    positive), attention-bias tables, position tables, LayerNorm/BatchNorm affine parameters;
    matrices and convolutions get fan-in scaling.
    """
    from sambench.models.sam.random_checkpoint import _random_tensor

    if name.endswith("num_batches_tracked"):
        return torch.randint(1, 1000, shape, generator=gen)
    if name.endswith("running_var"):
        return torch.rand(shape, generator=gen) * 0.5 + 0.75
    if name.endswith("running_mean"):
        return torch.randn(shape, generator=gen) * 0.1
    if name.endswith("attention_biases"):
        return torch.randn(shape, generator=gen) * 0.5
    return _random_tensor(name, shape, gen)


def has_keys(*keys: str) -> Callable[[StateDict], bool]:
    """A ``detect`` that accepts a state dict holding every one of ``keys`` (the family's
    signature tensors)."""
    return lambda state: all(key in state for key in keys)


def config_or_error(read: Callable[[StateDict], Any], problem: str) -> Callable[..., Any]:
    """An ``infer_config`` from a reader that returns None when the layout is incomplete;
    the error names the checkpoint and ``problem``."""
    def infer_config(state: StateDict, source: str = "checkpoint"):
        config = read(state)
        if config is None:
            raise SambenchError(f"{source}: {problem}")
        return config

    return infer_config


@dataclass(frozen=True)
class Family:
    """One model family, declared (see the module docstring for the contract of each part).

    ``name`` is the registry name (``--model NAME:CKPT``); ``options`` names the keyword
    options ``infer_config`` accepts (architecture choices the tensors do not record, or
    recorded behaviour such as ``hq_token_only``); the remaining keywords of ``load_model``
    go to ``model_class`` (device, dtype, ``prompt_chunk``, ...). ``presets`` maps size names
    to configs for :func:`random_checkpoint`; ``random_tensor(name, shape, generator)`` draws
    one tensor of such a checkpoint; ``released_extras(config)`` names the ``{key: shape}`` a
    released checkpoint holds beyond the module's keys (those the mapper ignores), so random
    checkpoints have the released layout.
    """

    name: str
    description: str
    detect: Callable[[StateDict], bool]
    infer_config: Callable[..., Any]
    build: Callable[[Any], nn.Module]
    preprocess: Callable[[Any], Preprocess]
    capabilities: Callable[[Any], Capabilities]
    mapper: CheckpointMapper = CheckpointMapper()
    options: tuple[str, ...] = ()
    encoder_outputs: tuple[str, ...] = ()
    presets: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    random_tensor: Callable[[str, torch.Size, torch.Generator], torch.Tensor] = default_random_tensor
    model_class: Optional[type] = None  # default: sambench.models.family_model.FamilyModel
    released_extras: Optional[Callable[[Any], Mapping[str, tuple[int, ...]]]] = None

    def state_dict(self, state: StateDict, source: str = "checkpoint") -> dict[str, torch.Tensor]:
        """Map a released checkpoint's tensors and check that they are this family's.

        A checkpoint of another family is named in the error (``sam:`` given a MobileSAM
        file says so, with the ``--model`` spelling that loads it); one lacking a ``required``
        key names the missing keys; anything else is left to ``infer_config`` and the strict
        load, which name the keys that do not fit.
        """
        mapped = self.mapper.apply(state)
        missing = self.mapper.missing(mapped)
        if missing or not self.detect(mapped):
            from sambench.models.families import detect_family

            other = detect_family(state)
            lacks = f" (it has no {', '.join(p.rstrip('.') for p in missing)})" if missing else ""
            if other is not None and other.name != self.name:
                raise SambenchError(f"{source} is a {other.name} checkpoint, not {self.name}{lacks}: "
                                    f"load it as --model {other.name}:{source}")
            if missing:
                raise SambenchError(f"{source} is not a {self.name} checkpoint{lacks}")
        # neither this family's nor another's: infer_config / the strict load name what is off
        return mapped

    def module(self, state: StateDict, source: str = "checkpoint", **options) -> nn.Module:
        """The family module for a mapped state dict, sizes inferred, weights loaded strictly."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise SambenchError(f"unknown option(s) for model {self.name}: {', '.join(unknown)}")
        config = self.infer_config(state, source, **options)
        with torch.device("meta"):  # shapes only: no time spent on a random init
            net = self.build(config)
        check_state_dict(net, state, source, self.name)
        net.load_state_dict({k: v.float().contiguous() if v.is_floating_point() else v.contiguous()
                             for k, v in state.items()}, assign=True)
        if hasattr(net, "init_buffers"):
            net.init_buffers()
        leftover = [name for name, t in list(net.named_parameters()) + list(net.named_buffers())
                    if t.is_meta]
        if leftover:
            raise RuntimeError(f"family {self.name}: tensors left on the meta device after loading "
                               f"(make them in init_buffers): {names(leftover)}")
        net.eval()
        if hasattr(net.image_encoder, "prepare_inference"):  # e.g. fold batch norms into convs
            net.image_encoder.prepare_inference()
        return net

    def random_state_dict(self, config, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random values for every entry of ``build(config).state_dict()`` and the released
        layout's extra keys (the module's key names: a family with renames maps them back)."""
        with torch.device("meta"):
            shapes = {k: (v.shape, v.dtype) for k, v in self.build(config).state_dict().items()}
        if self.released_extras is not None:
            shapes.update({k: (torch.Size(s), torch.float32) for k, s in self.released_extras(config).items()})
        gen = torch.Generator().manual_seed(seed)
        return {name: self.random_tensor(name, shape, gen).to(dtype).contiguous()
                for name, (shape, dtype) in shapes.items()}


def check_state_dict(module: nn.Module, state: StateDict, source: str, family: str) -> None:
    """Raise :class:`SambenchError` naming missing/unexpected keys and wrong shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {names(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {names(unexpected)}")
        raise SambenchError(f"{source} does not match the inferred {family} architecture: "
                            + "; ".join(parts))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise SambenchError(f"{source}: tensors of the wrong shape: {names(wrong)}")


def load_family_model(family: Family, checkpoint: Optional[str], device: str = "cpu",
                      dtype: str = "float32", *, state: Optional[StateDict] = None, **options):
    """``load_model(family.name, checkpoint, ...)``: read, map, check, build and wrap.

    ``options`` are the family's (``Family.options``, to ``infer_config``) and the model
    class's runtime options (``model_class.runtime_options``); anything else is an error.
    ``state`` passes tensors already read from ``checkpoint`` (``--model PATH`` inference).
    """
    from sambench.models.family_model import FamilyModel
    from sambench.models.sam.checkpoint import read_state_dict, recorded_text_encoder, sha256_file

    model_class = family.model_class or FamilyModel
    unknown = sorted(set(options) - set(family.options) - set(model_class.runtime_options))
    if unknown:
        raise SambenchError(f"unknown option(s) for model {family.name}: {', '.join(unknown)}")
    if checkpoint is None:
        raise SambenchError(f"model {family.name} needs a checkpoint: --model {family.name}:PATH")
    arch = {k: options.pop(k) for k in list(options) if k in family.options}
    mapped = family.state_dict(read_state_dict(checkpoint) if state is None else state, str(checkpoint))
    net = family.module(mapped, str(checkpoint), **arch)
    text_encoder = options.pop("text_encoder", None)
    if getattr(net.config, "text_dim", 0):
        options["text_encoder"] = recorded_text_encoder(checkpoint, text_encoder)
    return model_class(net, family, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint),
                       device=device, dtype=dtype, **options)


def random_checkpoint(family: Family, path: str | Path, preset: str | Any, *, seed: int = 0,
                      nest: Optional[str] = None) -> Path:
    """Write a random checkpoint of ``family`` in its module's key layout (tests, demos).

    ``preset`` is a key of ``family.presets`` or a config; the file format follows the suffix
    (``.safetensors`` or a torch file, optionally nested as ``{nest: state}``).
    """
    if isinstance(preset, str):
        if preset not in family.presets:
            raise SambenchError(f"unknown {family.name} preset {preset!r} (known: {', '.join(family.presets)})")
        preset = family.presets[preset]()
    state = family.random_state_dict(preset, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({nest: state} if nest else state, path)
    return path
