"""EfficientViT-SAM's image encoder: an EfficientViT-L backbone, a fusion neck and a LayerNorm.

Written from the EfficientViT-SAM paper (Zhang et al., 2024, arXiv:2402.05008) and its
reference code (mit-han-lab/efficientvit, ``efficientvit/models/efficientvit/{backbone,sam}.py``
and ``models/nn/ops.py``). Attribute names are the reference's, so its checkpoints load as they
are (``image_encoder.backbone.stages.i.op_list.j...``, ``image_encoder.neck.input_ops...``).

- **Backbone.** Stage 0: a stride-2 3×3 conv then ``depths[0]`` residual ResBlocks. Each later
  stage opens with a stride-2 block (an MBConv, or a FusedMBConv in fused stages) without
  shortcut and repeats ``depths[i]`` residual blocks of its kind; the attention stages use
  EfficientViT blocks (ReLU linear attention with multi-scale aggregated q/k/v, then an MBConv).
- **Neck.** The last three stages are each projected (1×1 conv + BN) to ``head_width`` channels,
  resized bicubically to 64×64 and summed; residual FusedMBConvs, a 1×1 conv to 256 channels,
  then a channel LayerNorm. L0–L2 take a 512-px input (their stride-8 stage is 64×64 there),
  XL0/XL1 a 1024-px one (stride 16).
- Activations are tanh-approximated GELU; every BatchNorm and LayerNorm uses ε = 1e-6 (the
  reference sets that on the whole model when it builds it, ``set_norm_eps``).

:meth:`EfficientViTSamEncoder.prepare_inference` folds every BatchNorm into its convolution and
switches to channels-last activations for inference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sambench.models.conv_layers import OpSequential, conv_bn_eval

NORM_EPS = 1e-6
NECK_GRID = 64  # the neck resizes every input to the SAM embedding grid
ATTENTION_EPS = 1e-15  # LiteMLA's guard on the linear-attention normaliser


def gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


class ConvLayer(nn.Module):
    """Conv (same padding) → optional BatchNorm → optional GELU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 bias: bool = False, norm: bool = True, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(out_ch, eps=NORM_EPS) if norm else None
        self.act = gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)

    def fuse(self) -> None:
        self.conv, self.norm = conv_bn_eval(self.conv, self.norm), None


class ResBlock(nn.Module):
    """Two 3×3 convs (the first one strided)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        self.conv1 = ConvLayer(in_ch, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm)
        self.conv2 = ConvLayer(mid, out_ch, 3, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """A 3×3 expanding conv (strided) then a 1×1 projection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        self.spatial_conv = ConvLayer(in_ch, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm)
        self.point_conv = ConvLayer(mid, out_ch, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1×1 expansion, 3×3 depthwise (strided), 1×1 projection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_ch * expand)
        self.inverted_conv = ConvLayer(in_ch, mid, 1, bias=fewer_norm, norm=not fewer_norm)
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=not fewer_norm)
        self.point_conv = ConvLayer(mid, out_ch, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


LOCAL_BLOCKS = {"res": ResBlock, "fmb": FusedMBConv, "mb": MBConv}
FIRST_CONV = {"res": "conv1", "fmb": "spatial_conv", "mb": "inverted_conv"}  # names the block kind


class LiteMLA(nn.Module):
    """Multi-scale ReLU linear attention over all pixels.

    q, k, v come from a 1×1 conv, plus for every aggregation scale a depthwise k×k conv and a
    grouped 1×1 conv of them; each head of ``dim`` channels attends with
    ``out = (v·kᵀ)·q / (1ᵀ·kᵀ·q)`` (ReLU kernels), costing O(N·dim²) instead of O(N²).
    """

    def __init__(self, channels: int, dim: int, scales: tuple[int, ...]) -> None:
        super().__init__()
        heads = channels // dim
        total = heads * dim
        self.dim = dim
        self.qkv = ConvLayer(channels, 3 * total, 1, norm=False, act=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
                          nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False))
            for s in scales)
        self.proj = ConvLayer(total * (1 + len(scales)), channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv] + [op(qkv) for op in self.aggreg], dim=1)
        batch, _, height, width = qkv.shape
        qkv = qkv.reshape(batch, -1, 3 * self.dim, height * width)
        q, k, v = qkv.split(self.dim, dim=2)
        q, k = F.relu(q), F.relu(k)
        v = F.pad(v, (0, 0, 0, 1), value=1.0)  # a row of ones: the normaliser comes out of the same product
        out = (v @ k.transpose(-1, -2)) @ q
        out = out[:, :, :-1] / (out[:, :, -1:] + ATTENTION_EPS)
        return self.proj(out.reshape(batch, -1, height, width))


class Residual(nn.Module):
    """``main(x) + x``, or ``main(x)`` alone for a block that changes the shape."""

    def __init__(self, main: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class EfficientViTBlock(nn.Module):
    """Attention (context) then an MBConv (local), each residual."""

    def __init__(self, channels: int, dim: int, expand: float, scales: tuple[int, ...]) -> None:
        super().__init__()
        self.context_module = Residual(LiteMLA(channels, dim, scales), True)
        self.local_module = Residual(MBConv(channels, channels, 1, expand, fewer_norm=True), True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


@dataclass(frozen=True)
class EfficientViTSamConfig:
    """Architecture of an EfficientViT-SAM image encoder (the reference's builder arguments).

    Per backbone stage: output width, number of blocks after the opening one, block kind
    (``res``, ``fmb``, ``mb``, ``att`` or ``att@3`` = attention with 3×3 aggregation), expansion
    ratio, and whether its blocks drop the first norms ("fewer norm": conv biases instead).
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    blocks: tuple[str, ...]
    expands: tuple[float, ...]
    fewer_norm: tuple[bool, ...]
    qkv_dim: int = 32
    head_width: int = 256
    head_depth: int = 4
    head_expand: float = 1.0
    head_block: str = "fmb"
    out_dim: int = 256

    @property
    def img_size(self) -> int:
        """Input side: the shallowest stage the neck reads must be 64×64 (stage i has stride 2^(i+1))."""
        return NECK_GRID * 2 ** (len(self.widths) - 3 + 1)

    @property
    def variant(self) -> str:
        return next((name for name, preset in PRESETS.items() if preset == self), "custom")

    def to_dict(self) -> dict:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        data.update(variant=self.variant, img_size=self.img_size)
        return data


_L = dict(widths=(32, 64, 128, 256, 512), blocks=("res", "fmb", "fmb", "mb", "att"),
          expands=(1, 4, 4, 4, 6), fewer_norm=(False, False, False, True, True))
_XL = dict(widths=(32, 64, 128, 256, 512, 1024), blocks=("res", "fmb", "fmb", "fmb", "att@3", "att@3"),
           expands=(1, 4, 4, 4, 4, 6), fewer_norm=(False, False, False, False, True, True))
PRESETS = {  # mit-han-lab/efficientvit efficientvit/models/efficientvit/sam.py
    "l0": EfficientViTSamConfig(depths=(1, 1, 1, 4, 4), head_depth=4, **_L),
    "l1": EfficientViTSamConfig(depths=(1, 1, 1, 6, 6), head_depth=8, **_L),
    "l2": EfficientViTSamConfig(depths=(1, 2, 2, 8, 8), head_depth=12, **_L),
    "xl0": EfficientViTSamConfig(depths=(0, 1, 1, 2, 3, 3), head_depth=6, head_expand=4, **_XL),
    "xl1": EfficientViTSamConfig(depths=(1, 2, 2, 4, 6, 6), head_depth=12, head_expand=4, **_XL),
}


def _local(kind: str, in_ch: int, out_ch: int, stride: int, expand: float, fewer_norm: bool) -> nn.Module:
    return LOCAL_BLOCKS[kind](in_ch, out_ch, stride, expand, fewer_norm)


class Backbone(nn.Module):
    """EfficientViT-L: ``stages[i]`` has stride 2^(i+1); all stage outputs are returned."""

    def __init__(self, c: EfficientViTSamConfig) -> None:
        super().__init__()
        stem = [ConvLayer(3, c.widths[0], 3, 2)]
        stem += [Residual(_local(c.blocks[0], c.widths[0], c.widths[0], 1, c.expands[0], c.fewer_norm[0]), True)
                 for _ in range(c.depths[0])]
        stages = [OpSequential(stem)]
        for i in range(1, len(c.widths)):
            width, kind = c.widths[i], c.blocks[i]
            down = kind if kind in ("mb", "fmb") else "mb"
            ops = [Residual(_local(down, c.widths[i - 1], width, 2, c.expands[i] * 4, c.fewer_norm[i]), False)]
            for _ in range(c.depths[i]):
                if kind.startswith("att"):
                    ops.append(EfficientViTBlock(width, c.qkv_dim, c.expands[i], (3,) if kind == "att@3" else (5,)))
                else:
                    ops.append(Residual(_local(kind, width, width, 1, c.expands[i], c.fewer_norm[i]), True))
            stages.append(OpSequential(ops))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class Neck(nn.Module):
    """Fuse the last three stages at 64×64, refine, project to ``out_dim`` channels."""

    def __init__(self, c: EfficientViTSamConfig) -> None:
        super().__init__()
        self.input_ops = nn.ModuleList(OpSequential([ConvLayer(width, c.head_width, 1, act=False)])
                                       for width in reversed(c.widths[-3:]))
        self.middle = OpSequential([Residual(_local(c.head_block, c.head_width, c.head_width, 1, c.head_expand, False), True)
                           for _ in range(c.head_depth)])
        self.output_ops = nn.ModuleList([OpSequential([ConvLayer(c.head_width, c.out_dim, 1, bias=True, norm=False, act=False)])])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = []
        for op, x in zip(self.input_ops, reversed(features[-3:])):  # deepest stage first
            x = op(x)
            if x.shape[-2:] != (NECK_GRID, NECK_GRID):
                x = F.interpolate(x, (NECK_GRID, NECK_GRID), mode="bicubic", align_corners=False)
            inputs.append(x)
        fused = inputs[0] + (inputs[1] + inputs[2])  # the reference's summation order
        return self.output_ops[0](self.middle(fused))


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of ``(B, C, H, W)``, written as the reference computes it."""

    def __init__(self, channels: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x - x.mean(dim=1, keepdim=True)
        out = out / torch.sqrt(out.square().mean(dim=1, keepdim=True) + self.eps)
        return out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class EfficientViTSamEncoder(nn.Module):
    """Image ``(B, 3, S, S)`` (S = ``config.img_size``) → embedding ``(B, out_dim, 64, 64)``."""

    def __init__(self, config: EfficientViTSamConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        self.backbone = Backbone(config)
        self.neck = Neck(config)
        self.norm = LayerNorm2d(config.out_dim)

        self.channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.norm(self.neck(self.backbone(x))).contiguous()

    def prepare_inference(self) -> "EfficientViTSamEncoder":
        """Prepare for inference (after loading weights): fold every BatchNorm into its conv and
        keep activations channels-last, which oneDNN's CPU convolutions run faster."""
        for module in self.modules():
            if isinstance(module, ConvLayer):
                module.fuse()
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)


def infer_config(state: dict[str, torch.Tensor], prefix: str = "image_encoder.") -> Optional[EfficientViTSamConfig]:
    """The config whose modules have the shapes of ``state`` (None when keys are missing).

    Widths from the convs' output channels, depths from the op counts, block kinds from which
    layers exist, expansion ratios from the hidden widths, "fewer norm" from whether the first
    conv of a block has a BatchNorm; the neck likewise.
    """
    back = prefix + "backbone.stages."
    n_stages = len({k[len(back):].split(".")[0] for k in state if k.startswith(back)})
    if n_stages < 3:
        return None

    def ops(stage: int) -> int:
        head = f"{back}{stage}.op_list."
        return len({k[len(head):].split(".")[0] for k in state if k.startswith(head)})

    def kind(p: str) -> Optional[str]:
        if p + "context_module.main.qkv.conv.weight" in state:
            k = state[p + "context_module.main.aggreg.0.0.weight"].shape[-1]
            return "att@3" if k == 3 else "att"
        for name, first in FIRST_CONV.items():
            if f"{p}main.{first}.conv.weight" in state:
                return name
        return None

    def first_conv(p: str, name: str) -> str:
        return f"{p}main.{FIRST_CONV[name]}."

    widths, depths, blocks, expands, fewer = [], [], [], [], []
    qkv_dim = 32
    for i in range(n_stages):
        n = ops(i)
        if n == 0:
            return None
        p0 = f"{back}{i}.op_list.0."
        if i == 0:
            if p0 + "conv.weight" not in state:
                return None
            width = state[p0 + "conv.weight"].shape[0]
        else:
            down = kind(p0)
            if down not in ("mb", "fmb"):
                return None
            width = state[f"{p0}main.point_conv.conv.weight"].shape[0]
        p1 = f"{back}{i}.op_list.1."
        block = kind(p1) if n > 1 else (kind(p0) if i else "res")
        if block is None:
            return None
        if block.startswith("att"):
            local = p1 + "local_module.main.inverted_conv.conv."
            expand = state[local + "weight"].shape[0] / width
            qkv_dim = state[p1 + "context_module.main.aggreg.0.1.weight"].shape[1]
            fewer_norm = True
        elif n > 1:
            conv = first_conv(p1, block)
            expand = state[conv + "conv.weight"].shape[0] / state[conv + "conv.weight"].shape[1]
            fewer_norm = conv + "norm.weight" not in state
        elif i:
            conv = first_conv(p0, block)
            expand = state[conv + "conv.weight"].shape[0] / state[conv + "conv.weight"].shape[1] / 4
            fewer_norm = conv + "norm.weight" not in state
        else:
            expand, fewer_norm = 1, False
        if i and n > 1:  # the opening block's own norms decide for it
            down_conv = first_conv(p0, kind(p0))
            fewer_norm = down_conv + "norm.weight" not in state
        widths.append(int(width))
        depths.append(n - 1)
        blocks.append(block)
        expands.append(float(expand) if expand != int(expand) else int(expand))
        fewer.append(bool(fewer_norm))

    neck = prefix + "neck."
    middle = neck + "middle.op_list."
    head_depth = len({k[len(middle):].split(".")[0] for k in state if k.startswith(middle)})
    head_in = neck + "input_ops.0.op_list.0.conv.weight"
    out = neck + "output_ops.0.op_list.0.conv.weight"
    if head_in not in state or out not in state:
        return None
    head_width = state[head_in].shape[0]
    head_block, head_expand = "fmb", 1
    if head_depth:
        head_block = kind(middle + "0.")
        if head_block is None or head_block.startswith("att"):
            return None
        conv = first_conv(middle + "0.", head_block)
        head_expand = state[conv + "conv.weight"].shape[0] / head_width
        head_expand = int(head_expand) if head_expand == int(head_expand) else float(head_expand)
    return EfficientViTSamConfig(
        widths=tuple(widths), depths=tuple(depths), blocks=tuple(blocks), expands=tuple(expands),
        fewer_norm=tuple(fewer), qkv_dim=int(qkv_dim), head_width=int(head_width),
        head_depth=head_depth, head_expand=head_expand, head_block=head_block,
        out_dim=int(state[out].shape[0]))
