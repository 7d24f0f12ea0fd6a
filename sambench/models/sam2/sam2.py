"""The SAM 2 image model: configuration, the released sizes, and the module container.

Parameter names are the reference's (``image_encoder.*``, ``no_mem_embed``) except that its
``sam_prompt_encoder`` / ``sam_mask_decoder`` are ``prompt_encoder`` / ``mask_decoder`` here, as
in every family (:data:`.checkpoint.MAPPER` renames them and drops the video-memory modules).
Only the image path is built.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from sambench.models.sam.transformer import TwoWayTransformer
from sambench.models.sam2.hiera import HieraConfig
from sambench.models.sam2.image_encoder import ImageEncoder
from sambench.models.sam2.mask_decoder import Sam2MaskDecoder, Sam2PromptEncoder

IMAGE_SIZE = 1024  # every released SAM 2 / 2.1 model
BACKBONE_STRIDE = 16
PIXEL_MEAN = (0.485, 0.456, 0.406)  # ImageNet, on [0, 1] pixels
PIXEL_STD = (0.229, 0.224, 0.225)

# The released trunks (configs/sam2{,.1}/sam2{,.1}_hiera_{t,s,b+,l}.yaml; SAM 2 and 2.1 agree).
PRESETS = {
    "tiny": HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), (8, 4, 14, 7), (7, 7)),
    "small": HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), (8, 4, 14, 7), (7, 7)),
    "base_plus": HieraConfig(112, 2, (2, 3, 16, 3), (12, 16, 20), (8, 4, 14, 7), (14, 14)),
    "large": HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8), (7, 7)),
}


@dataclass(frozen=True)
class Sam2Config:
    trunk: HieraConfig = field(default_factory=lambda: PRESETS["tiny"])
    variant: str = "tiny"  # the released size, or "custom"
    d_model: int = 256
    decoder_num_heads: int = 8
    dynamic_multimask: bool = True

    def to_dict(self) -> dict:
        out = asdict(self)
        out["trunk"] = {k: list(v) if isinstance(v, tuple) else v for k, v in out["trunk"].items()}
        return out


class Sam2(nn.Module):
    def __init__(self, config: Sam2Config) -> None:
        super().__init__()
        self.config = config
        dim = config.d_model
        grid = IMAGE_SIZE // BACKBONE_STRIDE
        self.image_encoder = ImageEncoder(config.trunk, dim)
        self.prompt_encoder = Sam2PromptEncoder(dim, (grid, grid), (IMAGE_SIZE, IMAGE_SIZE), mask_in_chans=16)
        self.mask_decoder = Sam2MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=config.decoder_num_heads,
                                          mlp_dim=2048),
            dynamic_multimask=config.dynamic_multimask)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised ``(B, 3, 1024, 1024)`` → image embedding ``(B, C, 64, 64)`` (with
        ``no_mem_embed``: the reference image path adds it) and the projected high-res maps
        ``(B, C/8, 256, 256)``, ``(B, C/4, 128, 128)``."""
        feat_s0, feat_s1, embedding = self.image_encoder(x)
        feat_s0, feat_s1 = self.mask_decoder.project_high_res(feat_s0, feat_s1)
        return embedding + self.no_mem_embed.view(1, -1, 1, 1), feat_s0, feat_s1

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
