"""EdgeSAM as a :class:`~sambench.models.family.Family`: ``edgesam:CKPT``.

Only the image encoder differs from SAM v1 (:mod:`.encoder`, RepViT-m1): the input is SAM's
(1024 px, longest side + pad, PIL bilinear, ImageNet normalisation on the 0-255 scale), the
prompt encoder and mask decoder are SAM ViT-B's. The released ``edge_sam.pth`` /
``edge_sam_3x.pth`` are plain state dicts; block widths, strides and squeeze-excitation are
read off the tensors. Scores are the decoder's predicted IoU, which the reference
``SamPredictor.predict`` returns by default (its mobile exports can rank by stability instead;
EdgeSAM did not distil the IoU head).
"""
from __future__ import annotations

from sambench.models.base import Capabilities
from sambench.models.edgesam.encoder import PRESETS, RepViTConfig, infer_config
from sambench.models.edgesam.model import RESIDUAL_NORMS, EdgeSam
from sambench.models.family import Family, Preprocess, config_or_error, has_keys
from sambench.models.random_weights import family_random_tensor


def preprocess(config: RepViTConfig) -> Preprocess:
    return Preprocess(1024, "longest-side+pad", "pil-bilinear")


def capabilities(config: RepViTConfig) -> Capabilities:
    return Capabilities(multimask_outputs=3)


FAMILY = Family(
    name="edgesam",
    description="EdgeSAM (RepViT-m1 encoder distilled from SAM), our implementation",
    detect=has_keys("image_encoder.features.0.0.c.weight", "image_encoder.fuse_stage2.weight"),
    infer_config=config_or_error(infer_config, "the EdgeSAM RepViT layout is incomplete (blocks missing, "
                                 "or its last two stages are not at strides 16 and 32)"),
    build=EdgeSam, preprocess=preprocess,
    capabilities=capabilities, presets={name: (lambda c=c: c) for name, c in PRESETS.items()},
    random_tensor=family_random_tensor(lambda name: bool(RESIDUAL_NORMS.search(name))),
)
