"""Our SAM 2 / SAM 2.1 image-prompting implementation: the model family ``sam2``.

Written from the SAM 2 paper and the reference code (facebookresearch/sam2 at 2b90b9f, whose
``sam2/`` is byte-identical to the PyPI ``sam2`` 1.1.0 used as the parity reference) and checked
against it on random weights (tests/test_sam2_parity.py). One concept per module:
:mod:`.hiera` (trunk), :mod:`.image_encoder` (FPN neck), :mod:`.mask_decoder` (SAM 2's prompt
encoder and decoder on our SAM v1 layers), :mod:`.sam2` (config, sizes, container),
:mod:`.checkpoint` (key mapping, detection, size inference), :mod:`.model` (the protocol
adapter), :mod:`.family` (the family declaration), :mod:`.random_checkpoint`,
:mod:`.reference` (the reference package, run in its own venv).
"""
from sambench.models.sam2.random_checkpoint import write_random_checkpoint
from sambench.models.sam2.sam2 import PRESETS, Sam2, Sam2Config

__all__ = ["PRESETS", "Sam2", "Sam2Config", "write_random_checkpoint"]
