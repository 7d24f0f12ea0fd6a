"""SAM 3 (``sam3:CHECKPOINT``): an adapter over Meta's ``sam3`` package (:mod:`.model`)."""
from sambench.models.sam3.model import Sam3Model, build_sam3_model, write_random_sam3

__all__ = ["Sam3Model", "build_sam3_model", "write_random_sam3"]
