"""MobileSAM (``mobilesam``): a TinyViT-5M encoder distilled from SAM's ViT-H, on SAM v1's decoder.

Everything but the image encoder is SAM v1's (prompt encoder, mask decoder, 1024-px
longest-side + pad input with PIL bilinear resizing, ImageNet normalisation, 256² padded
low-res frame, K = 3). The encoder is :class:`~sambench.models.tiny_vit.TinyViT`, every size
read off the tensors (stage widths from the projections, depths from the block indexes, heads
and window from ``attention_biases`` ``[heads, window²]``). The released ``mobile_sam.pt``
still holds TinyViT's ImageNet classifier (``image_encoder.head.*``, ``image_encoder.norm_head.*``),
which SAM never runs: those keys are dropped on purpose. Reference: the ``mobile_sam`` package
(PyPI ``mobilesam-mirror``; ChaoningZhang/MobileSAM), ``build_sam_vit_t``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from sambench.errors import SambenchError
from sambench.models.base import Capabilities, indexes
from sambench.models.family import PIXEL_MEAN, PIXEL_STD, CheckpointMapper, Family, Preprocess
from sambench.models.sam.family import HQ_PREFIXES
from sambench.models.sam.sam import DecoderConfig, prompt_modules
from sambench.models.tiny_vit import TinyViT

ENC = "image_encoder."
CLASSIFIER = (ENC + "head.", ENC + "norm_head.")  # TinyViT's ImageNet head: in mobile_sam.pt, unused


@dataclass
class TinyViTSamConfig(DecoderConfig):
    """A TinyViT encoder on SAM v1's prompt path. Defaults: MobileSAM's TinyViT-5M (``vit_t``)."""

    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (0, 4, 5, 10)  # stage 0 is convolutional: no heads
    window_sizes: tuple[int, ...] = (0, 7, 14, 7)  # and no window
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD

    @property
    def variant(self) -> str:
        return "vit_t" if _arch(self) == _arch(TinyViTSamConfig()) else "custom"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.update({k: list(v) for k, v in data.items() if isinstance(v, tuple)})
        data["variant"] = self.variant
        return data


def _arch(config) -> tuple:
    return tuple(v for k, v in dataclasses.asdict(config).items() if k not in ("pixel_mean", "pixel_std"))


def tiny_vit_encoder(c: TinyViTSamConfig, interm_stage=None) -> TinyViT:
    return TinyViT(c.img_size, c.embed_dims, c.depths, c.num_heads, c.window_sizes, c.mlp_ratio,
                   c.mbconv_expand_ratio, c.local_conv_size, c.prompt_embed_dim, interm_stage)


class MobileSam(nn.Module):
    """TinyViT image encoder + SAM v1's prompt encoder and mask decoder."""

    def __init__(self, config: TinyViTSamConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = tiny_vit_encoder(config)
        self.prompt_encoder, self.mask_decoder = prompt_modules(config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def tiny_vit_fields(state: Mapping[str, torch.Tensor], source: str) -> dict:
    """TinyViT's sizes (:class:`TinyViTSamConfig` encoder fields) read off ``image_encoder.*``."""
    stages = indexes(state, ENC + "layers.")
    if len(stages) < 2 or stages != list(range(len(stages))):
        raise SambenchError(f"{source}: TinyViT stages must be numbered 0..n-1 (n >= 2), got {stages}")
    dims, depths, heads, windows = [], [], [], []
    mlp_ratio = local_conv = None
    for i in stages:
        prefix = f"{ENC}layers.{i}.blocks."
        blocks = indexes(state, prefix)
        if not blocks or blocks != list(range(len(blocks))):
            raise SambenchError(f"{source}: TinyViT stage {i} blocks must be numbered 0..n-1, got {blocks}")
        depths.append(len(blocks))
        if i == 0:
            expand = state[prefix + "0.conv1.c.weight"]
            dims.append(expand.shape[1])
            heads.append(0)
            windows.append(0)
            mbconv_ratio = expand.shape[0] / expand.shape[1]
            continue
        dims.append(state[prefix + "0.attn.qkv.weight"].shape[1])
        biases = state[prefix + "0.attn.attention_biases"]
        window = math.isqrt(biases.shape[1])
        if window * window != biases.shape[1]:
            raise SambenchError(f"{source}: {prefix}0.attn.attention_biases {tuple(biases.shape)} is "
                                "not [heads, window²]")
        heads.append(biases.shape[0])
        windows.append(window)
        mlp_ratio = state[prefix + "0.mlp.fc1.weight"].shape[0] / dims[-1]
        local_conv = state[prefix + "0.local_conv.c.weight"].shape[-1]
    return dict(embed_dims=tuple(dims), depths=tuple(depths), num_heads=tuple(heads),
                window_sizes=tuple(windows), mlp_ratio=mlp_ratio, mbconv_expand_ratio=mbconv_ratio,
                local_conv_size=local_conv)


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                 decoder_num_heads: int = 8) -> TinyViTSamConfig:
    """The :class:`TinyViTSamConfig` of a (mapped) MobileSAM state dict.

    The input size is not in the tensors; it is MobileSAM's 1024 px, where TinyViT's
    stride-16 output is the 64² grid the reference hard-codes.
    """
    from sambench.models.sam.checkpoint import decoder_fields

    encoder = tiny_vit_fields(state, source)
    width = state[ENC + "neck.0.weight"].shape[0]
    return TinyViTSamConfig(img_size=1024, grid=64, **encoder,
                            **decoder_fields(state, width, source, decoder_num_heads))


def detect(state) -> bool:
    """TinyViT's conv stem and attention-bias tables, SAM v1's decoder without HQ-SAM's head."""
    return (ENC + "patch_embed.seq.0.c.weight" in state
            and ENC + "layers.1.blocks.0.attn.attention_biases" in state
            and not any(k.startswith(HQ_PREFIXES) for k in state))


def preprocess(config: TinyViTSamConfig) -> Preprocess:
    return Preprocess(config.img_size, "longest-side+pad", "pil-bilinear", tuple(config.pixel_mean),
                      tuple(config.pixel_std))


def capabilities(config: DecoderConfig) -> Capabilities:
    return Capabilities(low_res_shape=(config.low_res, config.low_res), low_res_frame="padded-square",
                        multimask_outputs=config.num_multimask_outputs)


def classifier_keys(config: TinyViTSamConfig) -> dict[str, tuple[int, ...]]:
    """The unused ImageNet classifier of a released checkpoint (1000 classes)."""
    last = config.embed_dims[-1]
    return {ENC + "norm_head.weight": (last,), ENC + "norm_head.bias": (last,),
            ENC + "head.weight": (1000, last), ENC + "head.bias": (1000,)}


def small() -> TinyViTSamConfig:
    """A reduced TinyViT for tests: every stage kind, windows padded (128 % 7, 64 % 14), the
    reference's 64² grid at 1024 px (its last width must be 320, 448 or 576, its neck 256
    wide), MLP ratio 1, a narrow decoder MLP."""
    return TinyViTSamConfig(embed_dims=(16, 32, 40, 320), depths=(1, 1, 2, 1), num_heads=(0, 2, 2, 4),
                            window_sizes=(0, 7, 14, 7), mlp_ratio=1.0, mask_in_chans=8,
                            decoder_mlp_dim=128, iou_head_hidden_dim=32)


FAMILY = Family(
    name="mobilesam",
    description="MobileSAM: TinyViT-5M encoder on SAM v1's decoder (mobile_sam.pt layout; "
                "sizes inferred from the checkpoint)",
    detect=detect,
    mapper=CheckpointMapper(ignored=CLASSIFIER, required=(ENC + "patch_embed.seq.", ENC + "neck.")),
    infer_config=infer_config, build=MobileSam, preprocess=preprocess, capabilities=capabilities,
    options=("decoder_num_heads",), presets={"vit_t": TinyViTSamConfig, "small": small},
    released_extras=classifier_keys,
)
