"""EfficientSAM as data: :class:`EfficientSamConfig` (every size) and :class:`EfficientSam`.

ViT-Ti and ViT-S differ only in the encoder's width and heads (upstream
``build_efficient_sam.py``); everything else is fixed by upstream's ``build_efficient_sam``,
and a checkpoint's numbers are read off its tensors (:mod:`.checkpoint`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from sambench.models.efficientsam.image_encoder import ImageEncoderViT
from sambench.models.efficientsam.mask_decoder import MaskDecoder
from sambench.models.efficientsam.prompt_encoder import PromptEncoder
from sambench.models.efficientsam.transformer import TwoWayTransformer

# ImageNet statistics on [0, 1] pixels, RGB (upstream ``EfficientSam``); not in checkpoints.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EfficientSamConfig:
    """Architecture of an EfficientSAM model. Defaults are ViT-Ti (``build_efficient_sam_vitt``)."""

    img_size: int = 1024
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3  # not in the tensors; upstream's models have 64-channel heads
    mlp_dim: int = 768
    pretrain_grid: int = 14  # position-embedding table side (224-px pre-training / 16)
    neck_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8  # not in the tensors; 8 upstream
    attention_downsample_rate: int = 2
    upscaling_dims: tuple[int, ...] = (64, 32)
    num_multimask_outputs: int = 3
    iou_head_layers: int = 2
    iou_head_hidden_dim: int = 256
    max_points: int = 6  # upstream's decoder_max_num_input_points: every prompt is padded to it

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def low_res(self) -> int:
        """Side of the low-res logits (256 for the released models)."""
        return self.grid * 2 ** len(self.upscaling_dims)

    @property
    def variant(self) -> str:
        for name, preset in PRESETS.items():
            if preset() == self:
                return name
        return "custom"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["upscaling_dims"] = list(self.upscaling_dims)
        data["variant"] = self.variant
        return data


def vit_t() -> EfficientSamConfig:
    return EfficientSamConfig()


def vit_s() -> EfficientSamConfig:
    return EfficientSamConfig(embed_dim=384, num_heads=6, mlp_dim=1536)


def tiny() -> EfficientSamConfig:
    """A small EfficientSAM-architecture model for tests (128-px input, 8 × 8 embedding)."""
    return EfficientSamConfig(img_size=128, embed_dim=32, depth=2, num_heads=2, mlp_dim=64,
                              neck_dim=32, decoder_mlp_dim=64, decoder_num_heads=4,
                              upscaling_dims=(16, 8), iou_head_hidden_dim=32)


PRESETS = {"vit_t": vit_t, "vit_s": vit_s, "tiny": tiny}


class EfficientSam(nn.Module):
    """Image encoder, prompt encoder and mask decoder of one configuration."""

    def __init__(self, config: EfficientSamConfig) -> None:
        super().__init__()
        c = self.config = config
        self.image_encoder = ImageEncoderViT(c.img_size, c.patch_size, c.embed_dim, c.depth, c.num_heads,
                                             c.mlp_dim, c.neck_dim, c.pretrain_grid)
        self.prompt_encoder = PromptEncoder(c.neck_dim, c.grid, c.img_size)
        transformer = TwoWayTransformer(c.decoder_depth, c.neck_dim, c.decoder_num_heads, c.decoder_mlp_dim,
                                        c.attention_downsample_rate)
        self.mask_decoder = MaskDecoder(c.neck_dim, transformer, c.num_multimask_outputs, c.upscaling_dims,
                                        c.iou_head_layers, c.iou_head_hidden_dim)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)

    def init_buffers(self) -> None:
        """Make the pixel statistics real after a meta-device build (they are not in checkpoints)."""
        self.pixel_mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)
        self.pixel_std = torch.tensor(PIXEL_STD).view(-1, 1, 1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
