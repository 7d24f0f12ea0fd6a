"""Our EfficientSAM implementation (yformer/EfficientSAM, ViT-Ti and ViT-S), model ``efficientsam``.

Written from the upstream source and checked against it on random weights through golden
outputs (scripts/golden_efficientsam.py, tests/test_efficientsam_parity.py). Modules as upstream:
:mod:`.image_encoder`, :mod:`.prompt_encoder`, :mod:`.transformer`, :mod:`.mask_decoder`,
:mod:`.efficient_sam` (config + container), :mod:`.checkpoint`, :mod:`.model` (the protocol
adapter), :mod:`.random_checkpoint`. docs/models.md describes how it differs from SAM.
"""
from sambench.models import register_model
from sambench.models.efficientsam.checkpoint import infer_config, is_efficientsam, load_efficientsam
from sambench.models.efficientsam.efficient_sam import PRESETS, EfficientSam, EfficientSamConfig
from sambench.models.efficientsam.model import EfficientSamModel, build_efficientsam_model
from sambench.models.efficientsam.random_checkpoint import make_config, write_random_checkpoint

register_model("efficientsam", "EfficientSAM ViT-Ti / ViT-S (yformer), our implementation: no mask input, "
                               "at most 6 points (options: attention, compile, single_mask=best|token0)"
               )(build_efficientsam_model)

__all__ = ["PRESETS", "EfficientSam", "EfficientSamConfig", "EfficientSamModel", "build_efficientsam_model",
           "infer_config", "is_efficientsam", "load_efficientsam", "make_config", "write_random_checkpoint"]
