"""SAM v1 as data: :class:`SamConfig` (every size) and :class:`Sam` (the three modules).

One builder for every variant, like the official ``build_sam.py``: ViT-B/L/H differ only in
numbers, and a checkpoint's numbers are read off its tensors (:mod:`.checkpoint`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from sambench.models.sam.image_encoder import ImageEncoderViT
from sambench.models.sam.mask_decoder import MaskDecoder
from sambench.models.sam.prompt_encoder import PromptEncoder
from sambench.models.sam.transformer import TwoWayTransformer

# ImageNet statistics ×255, RGB (official ``sam.py``); not stored in checkpoints.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class SamConfig:
    """Architecture of a SAM v1 model. Defaults are ViT-B (``build_sam_vit_b``)."""

    img_size: int = 1024
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    qkv_bias: bool = True
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8  # not recoverable from tensors; 8 in every released model
    attention_downsample_rate: int = 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    # Optional text path (not in SAM v1): prompt_encoder.text_proj maps a (text_dim,) text
    # embedding to one sparse prompt token. 0 = absent, as in every released checkpoint.
    text_dim: int = 0
    pixel_mean: tuple[float, float, float] = field(default=PIXEL_MEAN)
    pixel_std: tuple[float, float, float] = field(default=PIXEL_STD)

    @property
    def grid(self) -> int:
        """Side of the image embedding (64 for the released models)."""
        return self.img_size // self.patch_size

    @property
    def low_res(self) -> int:
        """Side of the low-res mask logits / mask prompt (256 for the released models)."""
        return 4 * self.grid

    @property
    def variant(self) -> str:
        for name, preset in PRESETS.items():
            if _arch(preset()) == _arch(self):
                return name
        return "custom"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["global_attn_indexes"] = list(self.global_attn_indexes)
        data["pixel_mean"], data["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        data["variant"] = self.variant
        if not self.text_dim:  # keep results.json and cache keys of text-less models unchanged
            del data["text_dim"]
        return data


@dataclass
class DecoderConfig:
    """SAM v1's prompt encoder and mask decoder alone, for families with another image encoder.

    The field names and defaults are :class:`SamConfig`'s; ``grid`` is the side of the image
    embedding the encoder delivers for an ``img_size`` input.
    """

    img_size: int = 1024
    grid: int = 64
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    attention_downsample_rate: int = 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def low_res(self) -> int:
        return 4 * self.grid


def prompt_modules(c, decoder_class: type = MaskDecoder, **decoder_options) -> tuple[PromptEncoder, MaskDecoder]:
    """SAM v1's prompt encoder and mask decoder for a :class:`SamConfig` or :class:`DecoderConfig`
    (the modules every family shares); ``decoder_class`` a :class:`MaskDecoder` subclass that
    adds to it (HQ-SAM), with its extra constructor options."""
    prompt_encoder = PromptEncoder(
        embed_dim=c.prompt_embed_dim, image_embedding_size=(c.grid, c.grid),
        input_image_size=(c.img_size, c.img_size), mask_in_chans=c.mask_in_chans,
        text_dim=getattr(c, "text_dim", 0))
    mask_decoder = decoder_class(
        transformer_dim=c.prompt_embed_dim,
        transformer=TwoWayTransformer(depth=c.decoder_depth, embedding_dim=c.prompt_embed_dim,
                                      num_heads=c.decoder_num_heads, mlp_dim=c.decoder_mlp_dim,
                                      attention_downsample_rate=c.attention_downsample_rate),
        num_multimask_outputs=c.num_multimask_outputs, iou_head_depth=c.iou_head_depth,
        iou_head_hidden_dim=c.iou_head_hidden_dim, **decoder_options)
    return prompt_encoder, mask_decoder


def _arch(config: SamConfig) -> tuple:
    """The image/prompt/mask architecture; a text path does not change the variant name."""
    return tuple(v for k, v in asdict(config).items() if k not in ("pixel_mean", "pixel_std", "text_dim"))


def vit_b() -> SamConfig:
    return SamConfig()


def vit_l() -> SamConfig:
    return SamConfig(embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096,
                     global_attn_indexes=(5, 11, 17, 23))


def vit_h() -> SamConfig:
    return SamConfig(embed_dim=1280, depth=32, num_heads=16, mlp_dim=5120,
                     global_attn_indexes=(7, 15, 23, 31))


def tiny() -> SamConfig:
    """A small SAM-architecture model for demos and tests (256-px input, 16×16 embedding)."""
    return SamConfig(img_size=256, patch_size=16, embed_dim=64, depth=2, num_heads=2,
                     mlp_dim=256, window_size=4, global_attn_indexes=(1,))


PRESETS = {"vit_b": vit_b, "vit_l": vit_l, "vit_h": vit_h, "tiny": tiny}


class Sam(nn.Module):
    """Image encoder, prompt encoder and mask decoder of one configuration."""

    mask_threshold: float = 0.0

    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.image_encoder = ImageEncoderViT(
            img_size=c.img_size, patch_size=c.patch_size, embed_dim=c.embed_dim, depth=c.depth,
            num_heads=c.num_heads, mlp_dim=c.mlp_dim, out_chans=c.prompt_embed_dim,
            qkv_bias=c.qkv_bias, window_size=c.window_size,
            global_attn_indexes=tuple(c.global_attn_indexes))
        self.prompt_encoder, self.mask_decoder = prompt_modules(c)
        self.register_buffer("pixel_mean", torch.tensor(c.pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(c.pixel_std).view(-1, 1, 1), False)

    def init_buffers(self) -> None:
        """Pixel statistics (not in checkpoints) after a meta-device build and ``assign`` load."""
        self.pixel_mean = torch.tensor(self.config.pixel_mean).view(-1, 1, 1)
        self.pixel_std = torch.tensor(self.config.pixel_std).view(-1, 1, 1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
