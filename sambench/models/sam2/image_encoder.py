"""SAM 2's image encoder: the Hiera trunk and its FPN neck, image-only outputs.

The neck projects each trunk stage to ``d_model`` channels by a 1×1 conv; the two coarsest
levels are fused top-down (the stride-32 level, nearest-upsampled ×2, is added to the stride-16
one), the stride-8 and stride-4 levels are lateral only, and the stride-32 level is then
dropped (``scalp = 1``). That gives the three maps the image path uses: the 64×64 image
embedding (stride 16) and the two high-resolution maps (strides 8 and 4) that the mask
decoder's skip connections read. The neck's sine position encodings feed only the video
memory, so they are not computed here.

Written from the reference ``sam2/modeling/backbones/image_encoder.py`` (facebookresearch/sam2
at 2b90b9f, the configs of every released model: ``fpn_top_down_levels [2, 3]``, nearest
interpolation, sum fusion); parameter names are the reference's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sambench.models.sam2.hiera import Hiera, HieraConfig

TOP_DOWN_LEVELS = (2, 3)  # levels (0 = stride 4) that receive the coarser level's features


class FpnNeck(nn.Module):
    def __init__(self, d_model: int, backbone_channel_list: list[int]) -> None:
        """``backbone_channel_list`` is coarsest first, as in the reference (``convs[0]`` reads
        the stride-32 stage)."""
        super().__init__()
        self.d_model = d_model
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            layer = nn.Sequential()
            layer.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(layer)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        """Trunk outputs (stride 4 first) → fused maps, stride 4 first."""
        n = len(self.convs) - 1
        out: list[Tensor] = [None] * len(xs)
        previous = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in TOP_DOWN_LEVELS and previous is not None:
                top_down = F.interpolate(previous.to(torch.float32), scale_factor=2.0, mode="nearest")
                previous = lateral + top_down
            else:
                previous = lateral
            out[i] = previous
        return out


class ImageEncoder(nn.Module):
    def __init__(self, trunk_config: HieraConfig, d_model: int = 256, scalp: int = 1) -> None:
        super().__init__()
        self.trunk = Hiera(trunk_config)
        self.neck = FpnNeck(d_model, trunk_config.channels[::-1])
        self.scalp = scalp

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, S, S)`` normalised images → ``[stride 4, stride 8, stride 16]`` maps of
        ``d_model`` channels."""
        features = self.neck(self.trunk(x))
        return features[:len(features) - self.scalp]
