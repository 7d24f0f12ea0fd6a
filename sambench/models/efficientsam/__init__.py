"""Our EfficientSAM implementation (yformer/EfficientSAM, ViT-Ti and ViT-S), family ``efficientsam``.

Written from the upstream source and checked against it on random weights through golden
outputs (scripts/golden_efficientsam.py, tests/test_efficientsam_parity.py). Modules as upstream:
:mod:`.image_encoder`, :mod:`.prompt_encoder`, :mod:`.transformer`, :mod:`.mask_decoder`,
:mod:`.efficient_sam` (config + container), :mod:`.checkpoint` (sizes from tensors),
:mod:`.model` (the protocol adapter), :mod:`.family` (the registry entry and random-weight
checkpoints). docs/models.md describes how it differs from SAM.
"""
from sambench.models.efficientsam.efficient_sam import PRESETS, EfficientSam, EfficientSamConfig
from sambench.models.efficientsam.family import FAMILY, make_config, random_state_dict, write_random_checkpoint
from sambench.models.efficientsam.model import EfficientSamModel

__all__ = ["FAMILY", "PRESETS", "EfficientSam", "EfficientSamConfig", "EfficientSamModel", "make_config",
           "random_state_dict", "write_random_checkpoint"]
