"""SAM 2 / SAM 2.1 checkpoints: the key mapping, family detection and size inference.

The released files (``sam2_hiera_{tiny,small,base_plus,large}.pt``, ``sam2.1_hiera_*.pt``) hold
``{"model": state_dict}`` of the whole video model; the family loader reads them with
``torch.load(weights_only=True)`` (or safetensors). :data:`MAPPER` renames the reference's
``sam_prompt_encoder.`` / ``sam_mask_decoder.`` to our modules (and the decoder MLPs to SAM
v1's names) and drops the video-memory modules by the explicit list :data:`VIDEO_KEYS`; any
other key the image model does not have is an error, as is a missing one. SAM 2.1's extra
keys (``no_obj_embed_spatial``, ``obj_ptr_tpos_proj``) are video-only and dropped the same way:
on images the two versions are the same architecture with different weights.

The trunk's width comes from the patch conv and its stage layout from the blocks that change
width; head counts, window sizes and global-attention blocks leave no trace in the tensors and
come from the released config with that layout (:data:`~.sam2.PRESETS`). A checkpoint with
another layout loads when its :class:`~.hiera.HieraConfig` is given: the option ``trunk``, or
recorded as JSON under the metadata key ``sam2_trunk`` (the ``<checkpoint>.json`` sidecar, read
by ``sambench.models.sam.checkpoint.read_metadata``; the random-checkpoint writer records it).
The given config is checked against the tensors.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Optional

import torch

from sambench.errors import SambenchError
from sambench.models.base import indexes
from sambench.models.family import CheckpointMapper
from sambench.models.sam.checkpoint import read_metadata
from sambench.models.sam2.hiera import HieraConfig
from sambench.models.sam2.sam2 import PRESETS, Sam2Config

TRUNK = "image_encoder.trunk."
# Video-only parameters of SAM2Base (memory attention and encoder, object pointers, temporal
# encodings): unused on images, dropped by name.
VIDEO_KEYS = ("memory_attention.", "memory_encoder.", "mask_downsample.", "obj_ptr_proj.",
              "obj_ptr_tpos_proj.", "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr",
              "no_obj_embed_spatial")
# reference names → ours: the decoder transformer's MLPs are SAM v1's MLPBlock (lin1/lin2)
RENAMES = tuple((f"sam_mask_decoder.transformer.layers.{i}.mlp.layers.{j}.",
                 f"mask_decoder.transformer.layers.{i}.mlp.lin{j + 1}.") for i in (0, 1) for j in (0, 1)) + (
    ("sam_mask_decoder.", "mask_decoder."), ("sam_prompt_encoder.", "prompt_encoder."))
MAPPER = CheckpointMapper(renames=RENAMES, ignored=VIDEO_KEYS)
TRUNK_METADATA = "sam2_trunk"  # metadata key: the HieraConfig of a non-released layout, as JSON


def detect(state: Mapping[str, torch.Tensor]) -> bool:
    """A Hiera trunk and SAM 2's decoder (mapped keys)."""
    return TRUNK + "patch_embed.proj.weight" in state and "mask_decoder.obj_score_token.weight" in state


def to_reference_name(name: str) -> str:
    """Our module key → the reference checkpoint's key (inverse of :data:`MAPPER`'s renames)."""
    for old, new in RENAMES:
        if name.startswith(new):
            return old + name[len(new):]
    return name


def trunk_to_json(trunk: HieraConfig) -> str:
    return json.dumps(asdict(trunk), sort_keys=True)


def trunk_from_metadata(checkpoint: str) -> Optional[HieraConfig]:
    """The trunk config a checkpoint's metadata records, if any."""
    if not Path(checkpoint).is_file():
        return None
    text = read_metadata(checkpoint).get(TRUNK_METADATA)
    if not text:
        return None
    try:
        fields = json.loads(text)
        return HieraConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (ValueError, TypeError) as exc:
        raise SambenchError(f"{checkpoint}: metadata {TRUNK_METADATA} is not a Hiera config: {exc}") from None


def infer_trunk(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                trunk: Optional[HieraConfig] = None) -> tuple[HieraConfig, str]:
    """The trunk config (and preset name, or ``"custom"``) matching ``state``'s tensors."""
    blocks = indexes(state, TRUNK + "blocks.")
    if not blocks or blocks != list(range(len(blocks))):
        raise SambenchError(f"{source}: Hiera blocks are missing or not numbered 0..n-1: {blocks[:10]}")
    starts = [i for i in blocks if f"{TRUNK}blocks.{i}.proj.weight" in state]
    if len(starts) != 3:
        raise SambenchError(f"{source}: expected 3 stage transitions in the Hiera trunk, found blocks {starts}")
    bounds = [0] + starts + [len(blocks)]
    stages = tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    embed_dim = state[TRUNK + "patch_embed.proj.weight"].shape[0]
    found = (embed_dim, stages, state[TRUNK + "pos_embed_window"].shape[-1],
             tuple(state[TRUNK + "pos_embed"].shape[-2:]))
    if trunk is None:
        name = next((n for n, p in PRESETS.items() if (p.embed_dim, p.stages) == (embed_dim, stages)), None)
        if name is None:
            known = ", ".join(f"{n} {p.embed_dim}/{list(p.stages)}" for n, p in PRESETS.items())
            raise SambenchError(f"{source}: Hiera width {embed_dim} with stages {list(stages)} is not a "
                                f"released SAM 2 size ({known}); record its config ({TRUNK_METADATA} "
                                "in <checkpoint>.json) or pass the option trunk")
        trunk = PRESETS[name]
    else:
        name = next((n for n, p in PRESETS.items() if p == trunk), "custom")
    wanted = (trunk.embed_dim, trunk.stages, trunk.window_spec[0], tuple(trunk.window_pos_embed_bkg_spatial_size))
    if found != wanted:
        raise SambenchError(f"{source}: trunk tensors (width, stages, window, background) {found} do "
                            f"not match the config {wanted}")
    return trunk, name


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                 trunk: Optional[HieraConfig] = None, dynamic_multimask: bool = True) -> Sam2Config:
    """The :class:`Sam2Config` of a mapped SAM 2 state dict (``source`` is the checkpoint path)."""
    if not isinstance(dynamic_multimask, bool):
        raise SambenchError(f"option dynamic_multimask takes true or false, got {dynamic_multimask!r}")
    trunk, name = infer_trunk(state, source, trunk or trunk_from_metadata(source))
    return Sam2Config(trunk=trunk, variant=name, d_model=state["image_encoder.neck.convs.0.conv.weight"].shape[0],
                      dynamic_multimask=dynamic_multimask)
