"""SAM 3 (``sam3:CHECKPOINT``): an adapter over Meta's ``sam3`` package (:mod:`.model`)."""
from sambench.models import register_model
from sambench.models.sam3.model import Sam3Model, build_sam3_model, write_random_sam3

register_model("sam3", "SAM 3 through Meta's sam3 package: points/boxes/masks and noun phrases "
                       "(concept path); needs pip install 'sambench[sam3]'")(build_sam3_model)

__all__ = ["Sam3Model", "build_sam3_model", "write_random_sam3"]
