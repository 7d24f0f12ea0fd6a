"""HQ-SAM (``hq-sam``): SAM v1 with a high-quality output token, ViT-B/L/H or Light HQ-SAM (TinyViT).

The image encoder is SAM's ViT (``vit_b``/``vit_l``/``vit_h``) or MobileSAM's TinyViT
(``vit_tiny``, Light HQ-SAM), and also returns the early feature the HQ head reads (the first
global block's output, or TinyViT's stage 1); the embedding keeps it (``extras["interm"]``, in
the embedding cache too). The decoder is :class:`~sambench.models.hq_decoder.HQMaskDecoder`:
one mask per prompt, so K = 1 and the oracle (best of K) equals the top-1 mask.
``hq_token_only`` (default false, the package's default) returns the HQ mask alone instead of
SAM's mask plus the HQ mask; it is recorded in the model config. Preprocessing, prompts and
the 256² padded low-res frame are SAM v1's.

Released checkpoints hold SAM's keys plus the HQ head; the reference loads them non-strictly
and leaves a missing head random, so here the HQ keys are required: a plain SAM checkpoint
given as ``hq-sam:`` is an error. Reference: the ``segment_anything_hq`` package (PyPI
``segment-anything-hq``; SysCV/sam-hq).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from sambench.errors import SambenchError
from sambench.models.base import Capabilities
from sambench.models.family import CheckpointMapper, Family, Preprocess
from sambench.models.hq_decoder import HQMaskDecoder
from sambench.models.mobilesam import CLASSIFIER, ENC, TinyViTSamConfig, classifier_keys, tiny_vit_encoder
from sambench.models.sam.family import HQ_PREFIXES
from sambench.models.sam.image_encoder import ImageEncoderViT
from sambench.models.sam.sam import PRESETS, SamConfig, prompt_modules


@dataclass
class HQSamConfig(SamConfig):
    """HQ-SAM on SAM's ViT: :class:`SamConfig` plus the recorded ``hq_token_only`` option."""

    hq_token_only: bool = False

    @property
    def variant(self) -> str:
        return dataclasses.replace(SamConfig(), **_sam_fields(self)).variant

    def to_dict(self) -> dict:
        data = SamConfig(**_sam_fields(self)).to_dict()
        data["hq_token_only"] = self.hq_token_only
        return data


def _sam_fields(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(SamConfig)}


@dataclass
class HQTinyConfig(TinyViTSamConfig):
    """Light HQ-SAM: MobileSAM's TinyViT plus the HQ head (``hq_token_only`` recorded)."""

    hq_token_only: bool = False

    @property
    def variant(self) -> str:
        base = TinyViTSamConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TinyViTSamConfig)})
        return "vit_tiny" if base.variant == "vit_t" else "custom"


class HQImageEncoderViT(ImageEncoderViT):
    """SAM's ViT that also returns the first global block's output ``(B, h, w, C)``."""

    def forward(self, x: torch.Tensor):
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        interm = None
        for block in self.blocks:
            x = block(x)
            if interm is None and block.window_size == 0:
                interm = x.clone()  # later blocks update the residual stream in place
        return self.neck_of(x), interm


class HQSam(nn.Module):
    """Image encoder (with its early feature) + SAM's prompt encoder + the HQ decoder."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = c = config
        if isinstance(config, HQTinyConfig):
            self.image_encoder = tiny_vit_encoder(config, interm_stage=1)
            vit_dim = config.embed_dims[2]
        else:
            self.image_encoder = HQImageEncoderViT(
                img_size=c.img_size, patch_size=c.patch_size, embed_dim=c.embed_dim, depth=c.depth,
                num_heads=c.num_heads, mlp_dim=c.mlp_dim, out_chans=c.prompt_embed_dim, qkv_bias=c.qkv_bias,
                window_size=c.window_size, global_attn_indexes=tuple(c.global_attn_indexes))
            vit_dim = config.embed_dim
        self.prompt_encoder, self.mask_decoder = prompt_modules(
            config, HQMaskDecoder, vit_dim=vit_dim, hq_token_only=config.hq_token_only)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def is_tiny(state: Mapping) -> bool:
    return ENC + "patch_embed.seq.0.c.weight" in state


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint", decoder_num_heads: int = 8,
                 hq_token_only: bool = False):
    """:class:`HQSamConfig` (ViT) or :class:`HQTinyConfig` (TinyViT) of a mapped state dict."""
    if not isinstance(hq_token_only, bool):
        raise SambenchError(f"hq_token_only must be true or false, got {hq_token_only!r}")
    if is_tiny(state):
        from sambench.models.mobilesam import infer_config as tiny_config

        base = tiny_config(state, source, decoder_num_heads)
        return HQTinyConfig(**dataclasses.asdict(base), hq_token_only=hq_token_only)
    from sambench.models.sam.checkpoint import infer_config as vit_config

    base = vit_config(state, source, decoder_num_heads)
    if not base.global_attn_indexes:
        raise SambenchError(f"{source}: HQ-SAM reads the first global block's output, and this ViT has none")
    return HQSamConfig(**dataclasses.asdict(base), hq_token_only=hq_token_only)


def detect(state) -> bool:
    return any(k.startswith(HQ_PREFIXES) for k in state)


def preprocess(config) -> Preprocess:
    return Preprocess(config.img_size, "longest-side+pad", "pil-bilinear", tuple(config.pixel_mean),
                      tuple(config.pixel_std))


def capabilities(config) -> Capabilities:
    """K = 1: one mask per prompt (multimask picks SAM's best token inside the decoder)."""
    return Capabilities(low_res_shape=(config.low_res, config.low_res), low_res_frame="padded-square",
                        multimask_outputs=1)


def released_extras(config) -> dict:
    return classifier_keys(config) if isinstance(config, HQTinyConfig) else {}


def _hq(name: str):
    return lambda: HQSamConfig(**dataclasses.asdict(PRESETS[name]()))


FAMILY = Family(
    name="hq-sam",
    description="HQ-SAM: SAM v1 (vit_b/l/h) or Light HQ-SAM (vit_tiny, TinyViT) with the HQ "
                "output token; one mask per prompt (options: hq_token_only)",
    detect=detect,
    mapper=CheckpointMapper(ignored=CLASSIFIER, required=HQ_PREFIXES),
    infer_config=infer_config, build=HQSam, preprocess=preprocess, capabilities=capabilities,
    options=("decoder_num_heads", "hq_token_only"),
    presets={**{name: _hq(name) for name in ("vit_b", "vit_l", "vit_h", "tiny")}, "vit_tiny": HQTinyConfig},
    encoder_outputs=("interm",), released_extras=released_extras,
)
