"""SAM v1 as a :class:`~sambench.models.family.Family`: the ``sam`` registry entry.

Every other family reuses SAM v1's prompt encoder and mask decoder; this one also keeps its
ViT image encoder (:mod:`.image_encoder`), its 1024-px longest-side + pad input with PIL
bilinear resizing and ImageNet normalisation on the 0-255 scale, and its checkpoint layout,
sizes read off the tensors (:func:`.checkpoint.infer_config`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from sambench.models.base import Capabilities
from sambench.models.family import Family, Preprocess
from sambench.models.family_model import FamilyModel
from sambench.models.sam.checkpoint import infer_config, read_state_dict
from sambench.models.sam.random_checkpoint import _random_tensor
from sambench.models.sam.sam import PRESETS, Sam, SamConfig

# HQ-SAM's extra decoder modules in a checkpoint: their keys tell it from SAM v1 and MobileSAM.
HQ_PREFIXES = tuple(f"mask_decoder.{name}." for name in ("hf_token", "hf_mlp", "compress_vit_feat",
                                                         "embedding_encoder", "embedding_maskfeature"))


def detect(state) -> bool:
    """A ViT encoder with rel-pos tables and SAM v1's decoder, without HQ-SAM's extra head."""
    return ("image_encoder.pos_embed" in state and "image_encoder.blocks.0.attn.rel_pos_h" in state
            and not any(k.startswith(HQ_PREFIXES) for k in state))


def preprocess(config: SamConfig) -> Preprocess:
    return Preprocess(config.img_size, "longest-side+pad", "pil-bilinear",
                      tuple(config.pixel_mean), tuple(config.pixel_std))


def capabilities(config: SamConfig) -> Capabilities:
    """Low-res frame 4× the embedding (256² for the released 1024-px models), padded square."""
    return Capabilities(low_res_shape=(config.low_res, config.low_res), low_res_frame="padded-square",
                        multimask_outputs=config.num_multimask_outputs)


class SamModel(FamilyModel):
    """Our SAM v1 implementation as a :class:`~sambench.models.base.PromptableModel`."""

    def __init__(self, sam: Sam, family: Family | None = None, *, name: str = "sam", **options) -> None:
        super().__init__(sam, family or FAMILY, name=name, **options)


FAMILY = Family(
    name="sam",
    description="Segment Anything v1, our implementation (ViT-B/L/H and any SAM-v1-shaped "
                "model, sizes inferred from the checkpoint; options: attention=auto|math|sdpa, compile)",
    detect=detect, infer_config=infer_config, build=Sam, preprocess=preprocess,
    capabilities=capabilities, options=("decoder_num_heads",), presets=PRESETS,
    random_tensor=_random_tensor, model_class=SamModel,
)


def load_sam(checkpoint: str | Path, decoder_num_heads: int = 8) -> tuple[Sam, dict[str, torch.Tensor]]:
    """:class:`Sam` built from a checkpoint file (sizes inferred, weights loaded strictly, eval
    mode) and the file's tensors."""
    state = read_state_dict(checkpoint)
    return FAMILY.module(state, str(checkpoint), decoder_num_heads=decoder_num_heads), state
