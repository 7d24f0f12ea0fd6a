"""SAM 2 / SAM 2.1 as a :class:`~sambench.models.family.Family`: the ``sam2`` registry entry.

Its own image encoder (Hiera + FPN neck, :mod:`.image_encoder`), prompt path and decoder
(:mod:`.mask_decoder`, SAM v1's layers underneath), a 1024² stretched input (torchvision's
antialiased bilinear tensor resize, ``ToTensor`` + ImageNet ``Normalize``), a 256² stretched
low-res frame, sigmoid IoU scores; checkpoint mapping and size inference in :mod:`.checkpoint`.
"""
from __future__ import annotations

from sambench.models.base import Capabilities
from sambench.models.family import Family, Preprocess
from sambench.models.sam2.checkpoint import MAPPER, detect, infer_config
from sambench.models.sam2.model import Sam2Model
from sambench.models.sam2.random_checkpoint import _random_tensor, make_config
from sambench.models.sam2.sam2 import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD, PRESETS, Sam2, Sam2Config


def preprocess(config: Sam2Config) -> Preprocess:
    return Preprocess(IMAGE_SIZE, "stretch", "torch-bilinear-antialias", PIXEL_MEAN, PIXEL_STD, pixel_range=1)


def capabilities(config: Sam2Config) -> Capabilities:
    return Capabilities(low_res_shape=(256, 256), low_res_frame="stretched", multimask_outputs=3,
                        mask_input=True, max_points=None, score="predicted_iou")


FAMILY = Family(
    name="sam2",
    description="SAM 2 / SAM 2.1 image prompting, our implementation (Hiera tiny/small/base_plus/"
                "large inferred from the checkpoint; options: dynamic_multimask, compile, prompt_chunk)",
    detect=detect, infer_config=infer_config, build=Sam2, preprocess=preprocess,
    capabilities=capabilities, mapper=MAPPER, options=("dynamic_multimask", "trunk"),
    encoder_outputs=("feat_s0", "feat_s1"),
    presets={size: (lambda size=size: make_config(size)) for size in PRESETS},
    random_tensor=_random_tensor, model_class=Sam2Model,
)


def model_from_state(state, source: str = "state", **options) -> Sam2Model:
    """A :class:`Sam2Model` from reference-layout tensors in memory (tests, benchmarks)."""
    arch = {k: options.pop(k) for k in list(options) if k in FAMILY.options}
    return Sam2Model(FAMILY.module(FAMILY.state_dict(state, source), source, **arch), FAMILY, **options)
