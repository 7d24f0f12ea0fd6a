"""Read SAM 2 / SAM 2.1 checkpoints and infer the trunk size from the tensors.

The released files (``sam2_hiera_{tiny,small,base_plus,large}.pt``,
``sam2.1_hiera_*.pt``) hold ``{"model": state_dict}`` of the whole video model. They are read
with ``torch.load(weights_only=True)`` (or safetensors). The video-memory modules are dropped
by the explicit list :data:`VIDEO_KEYS`; any other key the image model does not have is an
error, as is a missing one. SAM 2.1 adds ``no_obj_embed_spatial`` and ``obj_ptr_tpos_proj``
(both video-only), which tell the versions apart.

The trunk's width comes from the patch conv and its stage layout from the blocks that change
width; head counts, window sizes and global-attention blocks leave no trace in the tensors and
come from the released config with that layout (:data:`~.sam2.PRESETS`). A checkpoint with
another layout loads when its :class:`~.hiera.HieraConfig` is given: ``load_sam2(...,
trunk=...)``, or recorded as JSON under the metadata key ``sam2_trunk`` (the ``<checkpoint>.json``
sidecar, see ``sambench.models.sam.checkpoint.read_metadata``; the random-checkpoint writer
records it). The given config is checked against the tensors.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Mapping, Optional

import torch

from sambench.errors import SambenchError
from sambench.models.sam.checkpoint import _indexes, _names, check_state_dict, read_metadata, read_state_dict
from sambench.models.sam2.hiera import HieraConfig
from sambench.models.sam2.sam2 import PIXEL_MEAN, PIXEL_STD, PRESETS, Sam2, Sam2Config

TRUNK = "image_encoder.trunk."
# Video-only parameters of SAM2Base (memory attention and encoder, object pointers, temporal
# encodings): not used on images, dropped by name.
VIDEO_PREFIXES = ("memory_attention.", "memory_encoder.", "mask_downsample.", "obj_ptr_proj.",
                  "obj_ptr_tpos_proj.")
VIDEO_PARAMS = ("maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial")
SAM21_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")
# reference decoder MLP names → ours (SAM v1's MLPBlock)
_MLP = re.compile(r"^(sam_mask_decoder\.transformer\.layers\.\d+\.mlp\.)layers\.([01])\.")
FAMILY_KEYS = (TRUNK + "patch_embed.proj.weight", "sam_mask_decoder.mask_tokens.weight")
TRUNK_METADATA = "sam2_trunk"  # metadata key: the HieraConfig of a non-released layout, as JSON


def is_video_key(key: str) -> bool:
    return key.startswith(VIDEO_PREFIXES) or key in VIDEO_PARAMS


def is_sam2_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict has SAM 2's layout (family detection)."""
    return all(k in state for k in FAMILY_KEYS)


def image_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image model's tensors under our names (video keys dropped, decoder MLPs renamed)."""
    out = {}
    for key, value in state.items():
        if is_video_key(key):
            continue
        out[_MLP.sub(lambda m: m.group(1) + ("lin1." if m.group(2) == "0" else "lin2."), key)] = value
    return out


def infer_trunk(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                trunk: Optional[HieraConfig] = None) -> tuple[HieraConfig, str]:
    """The trunk config (and preset name, or ``"custom"``) matching ``state``'s tensors."""
    blocks = _indexes(state, TRUNK + "blocks.")
    if not blocks or blocks != list(range(len(blocks))):
        raise SambenchError(f"{source}: Hiera blocks are missing or not numbered 0..n-1: {blocks[:10]}")
    starts = [i for i in blocks if f"{TRUNK}blocks.{i}.proj.weight" in state]
    if len(starts) != 3:
        raise SambenchError(f"{source}: expected 3 stage transitions in the Hiera trunk, found "
                            f"blocks {starts}")
    bounds = [0] + starts + [len(blocks)]
    stages = tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    embed_dim = state[TRUNK + "patch_embed.proj.weight"].shape[0]
    window0 = state[TRUNK + "pos_embed_window"].shape[-1]
    background = tuple(state[TRUNK + "pos_embed"].shape[-2:])
    name = "custom"
    if trunk is None:
        name, trunk = next(((n, p) for n, p in PRESETS.items()
                            if (p.embed_dim, p.stages) == (embed_dim, stages)), (None, None))
        if trunk is None:
            known = ", ".join(f"{n} {p.embed_dim}/{list(p.stages)}" for n, p in PRESETS.items())
            raise SambenchError(f"{source}: Hiera width {embed_dim} with stages {list(stages)} is not a "
                                f"released SAM 2 size ({known}); give its config (load_sam2(trunk=...))")
    found = (embed_dim, stages, window0, background)
    wanted = (trunk.embed_dim, trunk.stages, trunk.window_spec[0], tuple(trunk.window_pos_embed_bkg_spatial_size))
    if found != wanted:
        raise SambenchError(f"{source}: trunk tensors (width, stages, window, background) {found} do "
                            f"not match the config {wanted}")
    return trunk, name


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                 trunk: Optional[HieraConfig] = None, **options) -> Sam2Config:
    """The :class:`Sam2Config` of a (reference-named) SAM 2 state dict."""
    if not is_sam2_state(state):
        missing = [k for k in FAMILY_KEYS if k not in state]
        raise SambenchError(f"{source} is not a SAM 2 checkpoint: missing keys {_names(missing)}")
    trunk, name = infer_trunk(state, source, trunk)
    present = [k in state for k in SAM21_KEYS]
    if any(present) and not all(present):
        raise SambenchError(f"{source}: has only some of SAM 2.1's keys {list(SAM21_KEYS)}")
    return replace(Sam2Config(trunk=trunk, size=name, version="2.1" if all(present) else "2",
                              d_model=state["image_encoder.neck.convs.0.conv.weight"].shape[0]), **options)


def sam2_from_state_dict(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                         trunk: Optional[HieraConfig] = None, **options) -> Sam2:
    config = infer_config(state, source, trunk, **options)
    with torch.device("meta"):  # shapes only: no time spent on a random init
        model = Sam2(config)
    tensors = image_state(state)
    check_state_dict(model, tensors, source)
    model.load_state_dict({k: v.float().contiguous() for k, v in tensors.items()}, assign=True)
    model.pixel_mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)  # non-persistent: not in the state
    model.pixel_std = torch.tensor(PIXEL_STD).view(-1, 1, 1)
    return model.eval()


def trunk_to_json(trunk: HieraConfig) -> str:
    return json.dumps(asdict(trunk), sort_keys=True)


def trunk_from_metadata(checkpoint: str | Path) -> Optional[HieraConfig]:
    """The trunk config a checkpoint's metadata records, if any."""
    text = read_metadata(checkpoint).get(TRUNK_METADATA)
    if not text:
        return None
    try:
        fields = json.loads(text)
        return HieraConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (ValueError, TypeError) as exc:
        raise SambenchError(f"{checkpoint}: metadata {TRUNK_METADATA} is not a Hiera config: {exc}") from None


def load_sam2(checkpoint: str | Path, trunk: Optional[HieraConfig] = None, **options) -> Sam2:
    """Build :class:`Sam2` (eval mode) from a checkpoint file."""
    state = read_state_dict(checkpoint)
    return sam2_from_state_dict(state, str(checkpoint), trunk or trunk_from_metadata(checkpoint), **options)
