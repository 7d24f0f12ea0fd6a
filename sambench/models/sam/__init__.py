"""Our SAM v1 (Segment Anything) implementation, registered as model ``sam``.

Written from the paper and checked against the official ``segment-anything`` package on random
weights (tests/test_sam_parity.py): same state-dict keys, so released checkpoints load; same
numbers (fp32 logits within 1e-4, in practice bitwise-equal image embeddings on the default
path). One concept per module, as upstream: :mod:`.image_encoder`, :mod:`.prompt_encoder`,
:mod:`.transformer`, :mod:`.mask_decoder`, :mod:`.sam` (config + container),
:mod:`.transforms` (the predictor's pre/post-processing), :mod:`.checkpoint` (safe loading and
config inference), :mod:`.family` (the family declaration and :func:`~.family.load_sam`),
:mod:`.model` (the protocol adapter), :mod:`.random_checkpoint`.
"""
from sambench.models.sam.checkpoint import infer_config, read_state_dict
from sambench.models.sam.family import load_sam
from sambench.models.sam.model import SamEmbedding, SamModel, build_sam_model, describe
from sambench.models.sam.random_checkpoint import make_config, write_random_checkpoint
from sambench.models.sam.sam import PRESETS, Sam, SamConfig

__all__ = ["PRESETS", "Sam", "SamConfig", "SamEmbedding", "SamModel", "build_sam_model", "describe",
           "infer_config", "load_sam", "make_config", "read_state_dict", "write_random_checkpoint"]
