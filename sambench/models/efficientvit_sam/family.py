"""EfficientViT-SAM as a :class:`~sambench.models.family.Family`: ``efficientvit-sam:CKPT``.

Differences from SAM v1, all declared here: the image encoder (:mod:`.encoder`); the encoder
input of L0/L1/L2 is 512 px while prompts, low-res logits and the post-processing crop stay in
SAM's 1024-px frame (the reference predictor scales prompts with ``long_side_length=1024``);
pixels are scaled to [0, 1] before the ImageNet normalisation (``ToTensor`` + ``Normalize``);
the decoder's LayerNorm ε is 1e-6. Released checkpoints (``efficientvit_sam_{l0,l1,l2,xl0,xl1}.pt``)
hold a plain state dict or one under ``["state_dict"]``; every size is read off the tensors.
"""
from __future__ import annotations

from sambench.models.base import Capabilities
from sambench.models.efficientvit_sam.encoder import PRESETS, EfficientViTSamConfig, infer_config
from sambench.models.efficientvit_sam.model import PROMPT_FRAME, EfficientViTSam, RESIDUAL_NORMS
from sambench.models.family import PIXEL_MEAN, PIXEL_STD, Family, Preprocess, config_or_error, has_keys
from sambench.models.random_weights import family_random_tensor


def preprocess(config: EfficientViTSamConfig) -> Preprocess:
    return Preprocess(config.img_size, "longest-side+pad", "pil-bilinear",
                      tuple(m / 255 for m in PIXEL_MEAN), tuple(s / 255 for s in PIXEL_STD),
                      pixel_range=1, prompt_size=PROMPT_FRAME)


def capabilities(config: EfficientViTSamConfig) -> Capabilities:
    return Capabilities(multimask_outputs=3)


FAMILY = Family(
    name="efficientvit-sam",
    description="EfficientViT-SAM L0/L1/L2 (512-px input) and XL0/XL1 (1024 px), our implementation "
                "(sizes inferred from the checkpoint)",
    detect=has_keys("image_encoder.backbone.stages.0.op_list.0.conv.weight",
                    "image_encoder.neck.input_ops.0.op_list.0.conv.weight"),
    infer_config=config_or_error(infer_config, "the EfficientViT-SAM encoder layout is incomplete "
                                 "(backbone stages or neck layers missing)"),
    build=EfficientViTSam, preprocess=preprocess,
    capabilities=capabilities, presets={name: (lambda c=c: c) for name, c in PRESETS.items()},
    random_tensor=family_random_tensor(lambda name: bool(RESIDUAL_NORMS.search(name))),
)
