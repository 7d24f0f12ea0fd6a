"""EfficientSAM as a :class:`~sambench.models.family.Family`: the ``efficientsam`` registry entry.

Its own encoder, prompt encoder and decoder (:class:`.efficient_sam.EfficientSam`), so its
own model class (:class:`.model.EfficientSamModel`); upstream's input (the [0, 1] image
stretched to 1024², bilinear without antialias, ImageNet statistics) as a :class:`Preprocess`;
no mask input, at most 6 points, a stretched 256² low-res frame.
"""
from __future__ import annotations

from sambench.models.base import Capabilities
from sambench.models.efficientsam.checkpoint import infer_config, is_efficientsam
from sambench.models.efficientsam.efficient_sam import PIXEL_MEAN, PIXEL_STD, PRESETS, EfficientSam
from sambench.models.efficientsam.model import EfficientSamModel
from sambench.models.efficientsam.random_checkpoint import random_tensor
from sambench.models.family import Family, Preprocess


def preprocess(config) -> Preprocess:
    return Preprocess(config.img_size, "stretch", "torch-bilinear", PIXEL_MEAN, PIXEL_STD, pixel_range=1)


def capabilities(config) -> Capabilities:
    return Capabilities(low_res_shape=(config.low_res, config.low_res), low_res_frame="stretched",
                        multimask_outputs=config.num_multimask_outputs, mask_input=False,
                        max_points=config.max_points, score="predicted_iou")


FAMILY = Family(
    name="efficientsam",
    description="EfficientSAM ViT-Ti / ViT-S (yformer), our implementation: no mask input, at most "
                "6 points (options: attention, compile, single_mask=best|token0)",
    detect=is_efficientsam, infer_config=infer_config, build=EfficientSam, preprocess=preprocess,
    capabilities=capabilities, options=("img_size", "num_heads", "decoder_num_heads"), presets=PRESETS,
    random_tensor=random_tensor, model_class=EfficientSamModel,
)
