"""Read SAM v1 checkpoints safely and infer their architecture from the tensors.

A checkpoint is a state dict in the official layout (``image_encoder.*``, ``prompt_encoder.*``,
``mask_decoder.*``), as ``.pth`` (read with ``torch.load(weights_only=True)``: never unpickles
arbitrary objects) or ``.safetensors``, possibly nested under ``"model"`` or ``"state_dict"``.
Every size is read off tensor shapes, so ViT-B/L/H and any SAM-v1-shaped model load without
naming a variant:

- embed dim and image grid from ``pos_embed`` ``[1, S, S, C]``; patch size from the patch conv;
- depth from the block indexes; head dim from ``rel_pos_h`` ``[2·L − 1, head_dim]``;
- global blocks are those whose rel-pos table spans the whole grid (L = S), the window size
  comes from the others (a window as large as the grid is the same computation as global);
- decoder width, depth, MLP width, attention downsampling, IoU head, number of mask tokens and
  ``mask_in_chans`` from their layers. The decoder's head count leaves no trace in the tensors
  (heads are a reshape); it is 8 in every released model and can be overridden.

Pixel mean/std are not in checkpoints (non-persistent buffers upstream) and are set here.

An optional text path (``prompt_encoder.text_proj.weight`` ``[C, text_dim]``) gives
``text_dim``. Which text encoder it was trained with is checkpoint *metadata*, not a tensor:
the ``text_encoder`` key of the safetensors header, or of a JSON sidecar ``<checkpoint>.json``
(e.g. ``model.pth.json``; ``.pth`` files have no header). :func:`read_metadata` reads both.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path
from typing import Mapping

import torch

from sambench.errors import SambenchError
from sambench.models.base import indexes, names
from sambench.models.sam.sam import SamConfig

PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
TEXT_PROJ = "prompt_encoder.text_proj.weight"
TEXT_ENCODER_KEY = "text_encoder"  # metadata: the text encoder a text path was trained with
SIDECAR_SUFFIX = ".json"  # metadata sidecar of a checkpoint: <checkpoint>.json


def sidecar_path(checkpoint: str | Path) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_metadata(checkpoint: str | Path) -> dict[str, str]:
    """String metadata of a checkpoint: its safetensors header and/or ``<checkpoint>.json``.

    A key given by both with different values is an error (which one would be meant?).
    """
    path = Path(checkpoint)
    meta: dict[str, str] = {}
    side = sidecar_path(path)
    if side.is_file():
        try:
            data = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SambenchError(f"unreadable checkpoint metadata {side}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SambenchError(f"{side}: checkpoint metadata is a JSON object of strings")
        meta.update(data)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as fh:
                header = fh.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise SambenchError(f"unreadable safetensors checkpoint {path}: {exc}") from None
        clash = sorted(k for k in header if k in meta and meta[k] != header[k])
        if clash:
            raise SambenchError(f"{path}: metadata {clash} differs between the file header and {side}")
        meta.update(header)
    return meta


def write_sidecar(checkpoint: str | Path, metadata: Mapping[str, str]) -> Path:
    """Write ``<checkpoint>.json`` (metadata for a ``.pth``, which has no header)."""
    side = sidecar_path(checkpoint)
    side.write_text(json.dumps({str(k): str(v) for k, v in metadata.items()}, indent=1, sort_keys=True))
    return side


def recorded_text_encoder(checkpoint: str | Path, given: Optional[str] = None) -> Optional[str]:
    """The text encoder a checkpoint records (metadata ``text_encoder``), checked against
    ``given``; ``given`` alone fills in for a checkpoint that records none."""
    recorded = read_metadata(checkpoint).get(TEXT_ENCODER_KEY) or None
    if given and recorded and given != recorded:
        raise SambenchError(f"{checkpoint} was trained with text encoder {recorded!r}, not {given!r}")
    return recorded or given


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt``/``.safetensors`` file, unwrapped from ``model``/``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise SambenchError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise SambenchError(f"unreadable safetensors checkpoint {path}: {exc}") from None
    else:
        data = _torch_load(path)
    return unwrap_state_dict(data, str(path))


def _torch_load(path: Path):
    """``torch.load(weights_only=True)`` with diagnoses of our own: torch's messages advise
    ``weights_only=False``, which would run whatever code the file carries, so they are
    never passed on."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # zip archive or pickle >= 2
        raise SambenchError(f"{path} is not a checkpoint (unrecognised bytes: neither a torch file "
                            "nor safetensors)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise SambenchError(f"{path} is not a checkpoint (unrecognised or corrupt pickle data)") from None
        raise SambenchError(
            f"refusing to load {path}: it references {found.group(1)}, an object other than tensors "
            "and plain containers, and checkpoints are never unpickled as code") from None
    except Exception as exc:  # torch's unpickler fails on corrupt bytes with any error
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in first:
            first = type(exc).__name__
        raise SambenchError(f"unreadable checkpoint {path} (truncated or not a torch file): {first}") from None


def unwrap_state_dict(data, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Descend ``{"model": ...}`` / ``{"state_dict": ...}`` wrappers; strip a DDP ``module.``."""
    for _ in range(3):
        if not isinstance(data, Mapping) or any(k.startswith(PREFIXES) for k in data):
            break
        inner = next((data[k] for k in ("model", "state_dict") if isinstance(data.get(k), Mapping)), None)
        if inner is None:
            break
        data = inner
    if not isinstance(data, Mapping):
        raise SambenchError(f"{source} does not hold a state dict (got {type(data).__name__})")
    if data and all(isinstance(k, str) and k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    others = sorted(k for k in data if k not in tensors)
    if others:
        raise SambenchError(f"{source}: entries that are not tensors: {names(others)}")
    return tensors


def _not_sam(state: Mapping[str, torch.Tensor], source: str, missing) -> SambenchError:
    unexpected = [k for k in state if not k.startswith(PREFIXES)]
    msg = f"{source} is not a SAM v1 checkpoint: missing keys {names(missing)}"
    if unexpected:
        msg += f"; unexpected keys {names(unexpected)}"
    return SambenchError(msg)


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                 decoder_num_heads: int = 8) -> SamConfig:
    """The :class:`SamConfig` whose module shapes match ``state``."""
    enc, pe, dec = PREFIXES
    needed = [enc + "pos_embed", enc + "patch_embed.proj.weight", enc + "blocks.0.attn.rel_pos_h",
              enc + "blocks.0.mlp.lin1.weight", enc + "neck.0.weight",
              pe + "mask_downscaling.3.weight", dec + "mask_tokens.weight",
              dec + "transformer.layers.0.mlp.lin1.weight",
              dec + "transformer.final_attn_token_to_image.q_proj.weight",
              dec + "iou_prediction_head.layers.0.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise _not_sam(state, source, missing)

    pos = state[enc + "pos_embed"]
    patch = state[enc + "patch_embed.proj.weight"]
    if pos.ndim != 4 or pos.shape[1] != pos.shape[2] or patch.ndim != 4:
        raise SambenchError(f"{source}: unexpected pos_embed {tuple(pos.shape)} / patch "
                            f"embedding {tuple(patch.shape)} (square SAM v1 layout expected)")
    grid, embed_dim, patch_size = pos.shape[1], pos.shape[3], patch.shape[-1]
    blocks = indexes(state, enc + "blocks.")
    if blocks != list(range(len(blocks))):
        raise SambenchError(f"{source}: image encoder blocks are not numbered 0..n-1: {blocks}")
    head_dim = state[enc + "blocks.0.attn.rel_pos_h"].shape[1]
    global_blocks, windows = [], set()
    for i in blocks:
        key = f"{enc}blocks.{i}.attn.rel_pos_h"
        if key not in state:
            raise _not_sam(state, source, [key])
        extent = (state[key].shape[0] + 1) // 2
        if extent == grid:
            global_blocks.append(i)
        else:
            windows.add(extent)
    if len(windows) > 1:
        raise SambenchError(f"{source}: blocks use different window sizes {sorted(windows)}")
    return SamConfig(
        img_size=grid * patch_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=len(blocks),
        num_heads=embed_dim // head_dim,
        mlp_dim=state[enc + "blocks.0.mlp.lin1.weight"].shape[0],
        window_size=windows.pop() if windows else 0,
        global_attn_indexes=tuple(global_blocks),
        qkv_bias=enc + "blocks.0.attn.qkv.bias" in state,
        text_dim=state[TEXT_PROJ].shape[1] if TEXT_PROJ in state and state[TEXT_PROJ].ndim == 2 else 0,
        **decoder_fields(state, state[enc + "neck.0.weight"].shape[0], source, decoder_num_heads),
    )


def decoder_fields(state: Mapping[str, torch.Tensor], width: int, source: str = "checkpoint",
                   decoder_num_heads: int = 8) -> dict:
    """The prompt encoder's and mask decoder's sizes (:class:`DecoderConfig` fields other than
    ``img_size`` and ``grid``), read off ``prompt_encoder.*`` / ``mask_decoder.*`` tensors.

    ``width`` (``prompt_embed_dim``) is the channel count of the embedding the image encoder
    delivers (its neck's output); a decoder of another width is then a shape error naming the
    tensor."""
    _, pe, dec = PREFIXES
    needed = [pe + "mask_downscaling.3.weight", dec + "mask_tokens.weight",
              dec + "transformer.layers.0.mlp.lin1.weight",
              dec + "transformer.final_attn_token_to_image.q_proj.weight",
              dec + "iou_prediction_head.layers.0.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise SambenchError(f"{source} lacks SAM's prompt encoder / mask decoder: missing keys {names(missing)}")
    return dict(
        prompt_embed_dim=width,
        mask_in_chans=state[pe + "mask_downscaling.3.weight"].shape[0],
        num_multimask_outputs=state[dec + "mask_tokens.weight"].shape[0] - 1,
        decoder_depth=len(indexes(state, dec + "transformer.layers.")),
        decoder_mlp_dim=state[dec + "transformer.layers.0.mlp.lin1.weight"].shape[0],
        decoder_num_heads=decoder_num_heads,
        attention_downsample_rate=width // state[dec + "transformer.final_attn_token_to_image.q_proj.weight"].shape[0],
        iou_head_depth=len(indexes(state, dec + "iou_prediction_head.layers.")),
        iou_head_hidden_dim=state[dec + "iou_prediction_head.layers.0.weight"].shape[0],
    )

