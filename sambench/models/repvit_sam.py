"""RepViT-SAM (``repvit-sam``): a small RepViT CNN on SAM v1's prompt encoder and mask decoder,
at any size; the bundled demo model is one (docs/models.md, "The bundled demo model").

EdgeSAM (:mod:`sambench.models.edgesam`) is the released model of this design: a RepViT
encoder whose last two stages are fused onto SAM's embedding grid. This family keeps its
blocks (:mod:`sambench.models.edgesam.encoder`) and lets every size be chosen, so a model can
be trained from scratch on a CPU:

- **Encoder**: EdgeSAM's stem (stride 4) and RepViT blocks; the last block of the last two
  stages (strides *s* and 2*s*) are projected to the embedding width by 1×1 convs, the
  coarser one upsampled ×2, summed; SAM's neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d);
  then a learned absolute position table ``pos_embed`` ``(1, C, g, g)``. A convolution's
  weights do not record the input size; the table does (``g`` = input / *s*), as SAM's
  ``pos_embed`` does for its ViT, so every size is read off the tensors.
- **Prompt path**: SAM v1's prompt encoder and mask decoder at the encoder's width and grid
  (:func:`sambench.models.sam.sam.prompt_modules`), with the optional text path of docs/text.md.
- **Input**: SAM's (longest side + pad, PIL bilinear, ImageNet normalisation on 0-255).

A CNN brings the locality prior a small ViT trained from scratch lacks; the fusion stride sets
the embedding grid (a 256-px input fused at stride 16 gives SAM's 16×16 of a patch-16 ViT, at
stride 8 a 32×32 grid).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from sambench.errors import SambenchError
from sambench.models.edgesam.encoder import (Upsample2x, fold_repvit, infer_blocks, repvit_features, stage_ends,
                                             tapped_features)
from sambench.models.edgesam.model import RESIDUAL_NORMS
from sambench.models.family import Family, Preprocess
from sambench.models.mobilesam import capabilities
from sambench.models.random_weights import family_random_tensor
from sambench.models.sam.common import LayerNorm2d
from sambench.models.sam.sam import PIXEL_MEAN, PIXEL_STD, DecoderConfig, prompt_modules

ENC = "image_encoder."


@dataclass
class RepViTSamConfig(DecoderConfig):
    """Blocks ``(width, stride, squeeze-excite)`` after the stride-4 stem (as EdgeSAM's
    :class:`~sambench.models.edgesam.encoder.RepViTConfig`), and SAM v1's decoder fields."""

    blocks: tuple[tuple[int, int, bool], ...] = ()
    text_dim: int = 0

    @property
    def stage_ends(self) -> list[int]:
        return stage_ends(self.blocks)

    @property
    def stride(self) -> int:
        """Stride of the embedding: that of the second-to-last stage."""
        end = self.stage_ends[-2]
        return 4 * 2 ** sum(1 for _, s, _ in self.blocks[:end + 1] if s == 2)

    @property
    def variant(self) -> str:
        return next((name for name, make in PRESETS.items() if _arch(make()) == _arch(self)), "custom")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["blocks"] = [list(b) for b in self.blocks]
        data["variant"] = self.variant
        if not self.text_dim:
            del data["text_dim"]
        return data


def _arch(config: RepViTSamConfig) -> tuple:
    return tuple(v for k, v in dataclasses.asdict(config).items() if k != "text_dim")


def _stages(widths: tuple[int, ...], depths: tuple[int, ...], se_every: int = 2) -> tuple:
    """Blocks of stages ``widths`` × ``depths``: a stride-2 block opens every stage but the
    first; squeeze-excitation on every ``se_every``-th block (RepViT's alternation)."""
    blocks, index = [], 0
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        for i in range(depth):
            blocks.append((width, 2 if stage and i == 0 else 1, index % se_every == 0))
            index += 1
    return tuple(blocks)


def bundled() -> RepViTSamConfig:
    """The bundled demo model: 256-px input, stages 32/64/128/160 at strides 4/8/16/32, fused
    at stride 16 (16×16 embedding, 64×64 low-res masks), a 128-wide decoder. It learned faster
    per CPU-second than :func:`fine` and the patch-16 ViT (docs/training.md)."""
    return RepViTSamConfig(img_size=256, grid=16, blocks=_stages((32, 64, 128, 160), (2, 2, 4, 1)),
                           prompt_embed_dim=128, decoder_mlp_dim=512, iou_head_hidden_dim=128)


def fine() -> RepViTSamConfig:
    """Stages 32/64/128 at strides 4/8/16 fused at stride 8: a 32×32 embedding and 128×128
    low-res masks at 256 px (a step costs ~2.2× :func:`bundled`'s: the decoder attends over 4×
    the image tokens)."""
    return RepViTSamConfig(img_size=256, grid=32, blocks=_stages((32, 64, 128), (2, 3, 4)),
                           prompt_embed_dim=128, decoder_mlp_dim=512, iou_head_hidden_dim=128)


def small() -> RepViTSamConfig:
    """A few-block model for tests."""
    return RepViTSamConfig(img_size=64, grid=16, blocks=_stages((16, 24), (1, 2)), prompt_embed_dim=32,
                           mask_in_chans=8, decoder_mlp_dim=64, iou_head_hidden_dim=32)


PRESETS = {"bundled": bundled, "fine": fine, "small": small}


class RepViTSamEncoder(nn.Module):
    """Image ``(B, 3, S, S)`` → embedding ``(B, C, S/s, S/s)``."""

    def __init__(self, config: RepViTSamConfig) -> None:
        super().__init__()
        self.features = repvit_features(config.blocks)
        ends = config.stage_ends
        if len(ends) < 2:
            raise SambenchError("a RepViT-SAM encoder needs at least two stages (the fusion reads the last two)")
        self.taps = (ends[-2], ends[-1])
        dim = config.prompt_embed_dim
        self.fuse_fine = nn.Conv2d(config.blocks[ends[-2]][0], dim, 1, bias=False)
        self.fuse_coarse = nn.Sequential(nn.Conv2d(config.blocks[ends[-1]][0], dim, 1, bias=False),
                                         Upsample2x("bilinear"))
        self.neck = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), LayerNorm2d(dim),
                                  nn.Conv2d(dim, dim, 3, padding=1, bias=False), LayerNorm2d(dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, config.grid, config.grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine, coarse = tapped_features(self.features, x, self.taps)
        x = self.fuse_fine(fine) + self.fuse_coarse(coarse)
        return self.neck(x) + self.pos_embed

    @torch.no_grad()
    def prepare_inference(self) -> "RepViTSamEncoder":
        """Fold batch norms into convs and each RepVGGDW into one conv (same function)."""
        fold_repvit(self)
        return self


class RepViTSam(nn.Module):
    """RepViT image encoder + SAM v1's prompt encoder and mask decoder."""

    mask_threshold: float = 0.0

    def __init__(self, config: RepViTSamConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = RepViTSamEncoder(config)
        self.prompt_encoder, self.mask_decoder = prompt_modules(config)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
        self._params = sum(p.numel() for p in self.parameters())

    def init_buffers(self) -> None:
        """Pixel statistics (training reads them) after a meta-device build and ``assign`` load."""
        self.pixel_mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)
        self.pixel_std = torch.tensor(PIXEL_STD).view(-1, 1, 1)

    def num_parameters(self) -> int:
        """Parameters of the training layout (counted before ``prepare_inference`` folds norms)."""
        return self._params


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> RepViTSamConfig:
    """The :class:`RepViTSamConfig` of a state dict: blocks as EdgeSAM's, the grid from
    ``pos_embed``, the input size from the grid and the fusion stride, the decoder's sizes
    from its tensors."""
    from sambench.models.sam.checkpoint import TEXT_PROJ, decoder_fields

    blocks = infer_blocks(state, ENC)
    pos = state.get(ENC + "pos_embed")
    if blocks is None or pos is None or pos.ndim != 4 or pos.shape[2] != pos.shape[3]:
        raise SambenchError(f"{source}: the RepViT-SAM encoder layout is incomplete (blocks or "
                            "a square image_encoder.pos_embed missing)")
    probe = RepViTSamConfig(blocks=blocks)
    if len(probe.stage_ends) < 2:
        raise SambenchError(f"{source}: a RepViT-SAM encoder needs at least two stages")
    grid = int(pos.shape[2])
    text = state.get(TEXT_PROJ)
    return RepViTSamConfig(img_size=grid * probe.stride, grid=grid, blocks=blocks,
                           text_dim=int(text.shape[1]) if text is not None and text.ndim == 2 else 0,
                           **decoder_fields(state, int(pos.shape[1]), source))


def detect(state) -> bool:
    """EdgeSAM's RepViT stem with this family's fusion and position table."""
    return all(k in state for k in (ENC + "features.0.0.c.weight", ENC + "fuse_fine.weight",
                                    ENC + "pos_embed"))


def preprocess(config: RepViTSamConfig) -> Preprocess:
    return Preprocess(config.img_size, "longest-side+pad", "pil-bilinear")



FAMILY = Family(
    name="repvit-sam",
    description="RepViT-SAM: a RepViT CNN (EdgeSAM's blocks, any size, fused at stride s) on SAM v1's "
                "decoder; the bundled demo model is one (sizes inferred from the checkpoint)",
    detect=detect, infer_config=infer_config, build=RepViTSam, preprocess=preprocess,
    capabilities=capabilities, presets=PRESETS,
    random_tensor=family_random_tensor(lambda name: bool(RESIDUAL_NORMS.search(name))),
)


def trainable_module(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> RepViTSam:
    """A checkpoint's module in training form (batch norms not folded), for ``sambench train``."""
    from sambench.models.family import check_state_dict

    config = infer_config(state, source)
    net = RepViTSam(config)
    check_state_dict(net, state, source, FAMILY.name)
    net.load_state_dict(dict(state))
    return net

