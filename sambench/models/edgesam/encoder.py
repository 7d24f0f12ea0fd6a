"""EdgeSAM's image encoder: a RepViT-m1 CNN, a two-stage fusion and SAM's neck.

Written from the EdgeSAM paper (Zhou et al., 2023, arXiv:2312.06660) and its reference code
(chongzhou96/EdgeSAM ``edge_sam/modeling/rep_vit.py``), with the RepViT paper (Wang et al.,
2023) for the blocks. Attribute names are the reference's, so released checkpoints
(``edge_sam.pth``, ``edge_sam_3x.pth``) load as they are.

- **Stem** (``features.0``): two stride-2 3×3 conv + batch-norm layers with a GELU between.
- **Blocks** (``features.1…``): a token mixer then a residual channel mixer (1×1 conv+BN, GELU,
  1×1 conv+BN, 2× hidden width). The token mixer is, at stride 1, ``RepVGGDW`` (3×3 and 1×1
  depthwise conv+BN plus identity) and, where the width changes, a stride-2 3×3 depthwise
  conv+BN and a 1×1 conv+BN; either is optionally followed by squeeze-excitation (timm's
  ``SqueezeExcite``: mean, 1×1 conv, ReLU, 1×1 conv, sigmoid gate).
- **Fusion**: the last block of the stride-16 stage and of the stride-32 stage are each
  projected to 256 channels by a 1×1 conv; the latter is upsampled ×2 (bicubic) and added.
- **Neck** (SAM's): 1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d → ``(B, 256, 64, 64)`` for
  the 1024-px input.

:meth:`RepViTEncoder.prepare_inference` folds every batch norm into its conv and each
``RepVGGDW`` into one 3×3 depthwise conv (as RepViT's own ``fuse``), with channels-last
activations, for inference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.conv_layers import OpSequential, fold_bn
from sambench.models.sam.common import LayerNorm2d

OUT_DIM = 256


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm, stored as ``c`` and ``bn`` (the reference's ``Conv2d_BN``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))

    def folded(self) -> nn.Conv2d:
        return fold_bn(self.c, self.bn)


class RepVGGDW(nn.Module):
    """``dw3x3(x) + dw1x1(x) + x``, each conv with its batch norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, groups=channels)
        self.conv1 = ConvBN(channels, channels, 1, groups=channels)
        self.fused: Optional[nn.Conv2d] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> None:
        """One 3×3 depthwise conv: the 1×1 kernel and the identity join the 3×3 centre tap."""
        conv = self.conv.folded()
        conv1 = self.conv1.folded()
        conv.weight[:, :, 1, 1] += conv1.weight[:, :, 0, 0] + 1.0
        conv.bias += conv1.bias
        self.fused = conv
        del self.conv, self.conv1


class SqueezeExcite(nn.Module):
    """Channel gate ``x · σ(fc2(relu(fc1(mean(x)))))`` (timm's ``SEModule``, ratio 1/4)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ChannelMixer(nn.Module):
    """Residual 1×1 MLP: ``x + bn(conv(gelu(bn(conv(x)))))``, stored as ``m`` (the reference's ``Residual``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.m = nn.Sequential(ConvBN(channels, hidden), nn.GELU(), ConvBN(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class RepViTBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, se: bool, expand: int = 2) -> None:
        super().__init__()
        gate = SqueezeExcite(in_ch, se_width(in_ch)) if se else nn.Identity()
        if stride == 2:
            self.token_mixer = nn.Sequential(ConvBN(in_ch, in_ch, 3, 2, groups=in_ch), gate, ConvBN(in_ch, out_ch))
        else:
            if in_ch != out_ch:
                raise ValueError(f"a stride-1 RepViT block keeps its width ({in_ch} -> {out_ch})")
            self.token_mixer = nn.Sequential(RepVGGDW(in_ch), gate)
        self.channel_mixer = ChannelMixer(out_ch, expand * out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


def stage_ends(blocks: tuple[tuple[int, int, bool], ...]) -> list[int]:
    """Index of each stage's last block (a stage = consecutive blocks of one width)."""
    widths = [w for w, _, _ in blocks]
    return [i for i in range(len(widths)) if i + 1 == len(widths) or widths[i + 1] != widths[i]]


def se_width(channels: int) -> int:
    """timm's ``make_divisible(channels / 4, 8)``: the squeeze width."""
    return max(8, int(channels / 4 + 4) // 8 * 8)


@dataclass(frozen=True)
class RepViTConfig:
    """A RepViT encoder: per block ``(width, stride, squeeze-excite)``; the stem ends at
    ``blocks[0]``'s width. The fusion reads the last block of the last two widths."""

    blocks: tuple[tuple[int, int, bool], ...]
    upsample_mode: str = "bicubic"  # the fusion's ×2 upsampling (bilinear in the CoreML export)

    @property
    def stage_ends(self) -> list[int]:
        return stage_ends(self.blocks)

    def stride_at(self, index: int) -> int:
        """Total stride after block ``index`` (the stem has stride 4)."""
        return 4 * 2 ** sum(1 for _, stride, _ in self.blocks[:index + 1] if stride == 2)

    @property
    def variant(self) -> str:
        return next((name for name, preset in PRESETS.items() if preset == self), "custom")

    def to_dict(self) -> dict:
        return {"blocks": [list(b) for b in self.blocks], "upsample_mode": self.upsample_mode,
                "variant": self.variant, "img_size": 1024}


def _m1() -> RepViTConfig:
    """RepViT-m1 as EdgeSAM uses it (``m1_cfgs`` upstream: widths 48/96/192/384)."""
    se = "100" + "0100" + "0101010101010100" + "010"
    widths = [48] * 3 + [96] * 4 + [192] * 16 + [384] * 3
    strides = [2 if i and widths[i] != widths[i - 1] else 1 for i in range(len(widths))]
    return RepViTConfig(tuple((w, s, flag == "1") for w, s, flag in zip(widths, strides, se)))


PRESETS = {"m1": _m1()}



def repvit_features(blocks: tuple[tuple[int, int, bool], ...]) -> nn.ModuleList:
    """The stem (two stride-2 conv + BN, GELU between) and the blocks, as ``features.*``."""
    first = blocks[0][0]
    layers: list[nn.Module] = [nn.Sequential(ConvBN(3, first // 2, 3, 2), nn.GELU(), ConvBN(first // 2, first, 3, 2))]
    width = first
    for out, stride, se in blocks:
        layers.append(RepViTBlock(width, out, stride, se))
        width = out
    return nn.ModuleList(layers)


def tapped_features(features: nn.ModuleList, x: torch.Tensor, taps: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the stem and blocks; the outputs of blocks ``taps`` (indexes after the stem)."""
    x = features[0](x)
    tapped = {}
    for i, block in enumerate(features[1:]):
        x = block(x)
        if i in taps:
            tapped[i] = x
    return tapped[taps[0]], tapped[taps[1]]


@torch.no_grad()
def fold_repvit(module: nn.Module) -> None:
    """Fold every batch norm into its conv and each RepVGGDW into one 3×3 depthwise conv
    (RepViT's own ``fuse``): the same function, for inference."""
    for sub in list(module.modules()):
        if isinstance(sub, RepVGGDW):
            sub.fuse()
        for name, child in list(sub.named_children()):
            if isinstance(child, ConvBN):
                setattr(sub, name, child.folded())

class Upsample2x(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False)


class RepViTEncoder(nn.Module):
    """Image ``(B, 3, 1024, 1024)`` → embedding ``(B, 256, 64, 64)``."""

    img_size = 1024

    def __init__(self, config: RepViTConfig) -> None:
        super().__init__()
        self.config = config
        self.features = repvit_features(config.blocks)
        ends = config.stage_ends
        if len(ends) < 2:
            raise ValueError("the fusion needs two stages")
        self.taps = (ends[-2], ends[-1])
        self.fuse_stage2 = nn.Conv2d(config.blocks[ends[-2]][0], OUT_DIM, 1, bias=False)
        self.fuse_stage3 = OpSequential([nn.Conv2d(config.blocks[ends[-1]][0], OUT_DIM, 1, bias=False),
                                         Upsample2x(config.upsample_mode)])
        self.neck = nn.Sequential(nn.Conv2d(OUT_DIM, OUT_DIM, 1, bias=False), LayerNorm2d(OUT_DIM),
                                  nn.Conv2d(OUT_DIM, OUT_DIM, 3, padding=1, bias=False), LayerNorm2d(OUT_DIM))
        self.channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fine, coarse = tapped_features(self.features, x, self.taps)
        x = self.fuse_stage2(fine) + self.fuse_stage3(coarse)
        return self.neck(x).contiguous()

    @torch.no_grad()
    def prepare_inference(self) -> "RepViTEncoder":
        """Prepare for inference (after loading weights): fold batch norms into convs and each
        RepVGGDW into one conv, and keep activations channels-last (faster oneDNN convolutions)."""
        fold_repvit(self)
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)


_BLOCK = re.compile(r"features\.(\d+)\.")


def infer_blocks(state: dict[str, torch.Tensor], prefix: str = "image_encoder.") -> Optional[tuple]:
    """The RepViT blocks ``(width, stride, squeeze-excite)`` whose modules have the shapes of
    ``state``; None without RepViT keys.

    Per block: the width is the channel mixer's, the stride 2 where the token mixer is a plain
    conv+BN (``token_mixer.0.c``) instead of ``RepVGGDW``, squeeze-excite where ``fc1`` exists.
    """
    head = prefix + "features."
    indexes = sorted({int(m.group(1)) for k in state if k.startswith(head)
                      and (m := _BLOCK.match(k[len(prefix):]))})
    if not indexes or indexes != list(range(len(indexes))) or len(indexes) < 3:
        return None
    blocks = []
    for i in indexes[1:]:
        p = f"{head}{i}."
        mixer = p + "channel_mixer.m.0.c.weight"
        if mixer not in state:
            return None
        stride = 2 if p + "token_mixer.0.c.weight" in state else 1
        blocks.append((int(state[mixer].shape[1]), stride, p + "token_mixer.1.fc1.weight" in state))
    return tuple(blocks)


def infer_config(state: dict[str, torch.Tensor], prefix: str = "image_encoder.",
                 upsample_mode: str = "bicubic") -> Optional[RepViTConfig]:
    """EdgeSAM's config for ``state`` (:func:`infer_blocks`); None without RepViT keys or when
    its last two stages are not at strides 16 and 32."""
    blocks = infer_blocks(state, prefix)
    if blocks is None:
        return None
    config = RepViTConfig(blocks, upsample_mode)
    ends = config.stage_ends
    if len(ends) < 2 or config.stride_at(ends[-2]) != 16 or config.stride_at(ends[-1]) != 32:
        return None  # the fusion must land on the 64×64 grid of a 1024-px input
    return config
