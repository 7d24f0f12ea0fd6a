"""Random SAM checkpoints and images on which AMG has something to do (tests, benchmarks).

A plain random checkpoint gives AMG nothing to compare: predicted IoUs sit far below 0.88,
logits are small (stability near 0) and every mask is the same image-wide texture, so the
default generator returns no mask at all and NMS never runs. :func:`amg_checkpoint` keeps the
random weights in the official layout but changes a few tensors so that masks follow the image
content, are crisp, and about half pass the default filters:

- the image encoder's absolute and relative position tables are zeroed, the mask decoder's
  upscaling kernels made uniform with zero biases, the image-to-token attention output and the
  no-mask embedding zeroed: the mask logits become a projection of the image features, so
  masks trace regions of the image and differ between points and outputs;
- the hypernetworks' last layers are scaled by 1000: logits of tens, stability scores spread
  around 0.95;
- the prompt encoder's Fourier matrix is scaled by 8: the point's position matters more;
- the IoU head's last bias is shifted so that the median predicted IoU of a 16x16 grid on a
  probe image is 0.9.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch

from sambench.models.sam.random_checkpoint import make_config, random_state_dict

PROBE_SIZE = (150, 200)


def shapes_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A plain background with five filled ellipses of random colours (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(5):
        cy, cx = rng.uniform(0.15, 0.85, 2) * (height, width)
        ry, rx = rng.uniform(0.08, 0.3, 2) * (height, width)
        image[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1] = rng.integers(0, 255, 3)
    return image


def _structured(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state)
    for name in list(state):
        if name.endswith(("rel_pos_h", "rel_pos_w")) or "cross_attn_image_to_token.out_proj" in name:
            state[name] = torch.zeros_like(state[name])
        elif name.startswith("mask_decoder.output_hypernetworks_mlps.") and ".layers.2." in name:
            state[name] = state[name] * 1000
    state["image_encoder.pos_embed"] = torch.zeros_like(state["image_encoder.pos_embed"])
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros_like(state["prompt_encoder.no_mask_embed.weight"])
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] *= 8
    up = "mask_decoder.output_upscaling"
    for layer in ("0", "3"):
        kernel = state[f"{up}.{layer}.weight"]
        state[f"{up}.{layer}.weight"] = kernel.mean(dim=(2, 3), keepdim=True).expand_as(kernel).contiguous()
    for name in ("0.bias", "1.bias", "3.bias"):
        state[f"{up}.{name}"] = torch.zeros_like(state[f"{up}.{name}"])
    return state


def amg_checkpoint(path: Union[str, Path], config: str = "tiny", seed: int = 0, **overrides) -> Path:
    """Write a random checkpoint (official layout, ``torch.save``) tuned as the module says."""
    from sambench.amg.generator import AutomaticMaskGenerator
    from sambench.models.sam.model import SamModel
    from sambench.models.sam.sam import Sam

    path = Path(path)
    cfg = make_config(config, **overrides)
    state = _structured(random_state_dict(cfg, seed))
    sam = Sam(cfg)
    sam.load_state_dict(state)
    probe = AutomaticMaskGenerator(SamModel(sam), points_per_side=16, pred_iou_thresh=0.0,
                                   stability_score_thresh=0.0, box_nms_thresh=1.0)
    scores = probe.generate_data(shapes_image(*PROBE_SIZE, seed))["iou_preds"]
    state["mask_decoder.iou_prediction_head.layers.2.bias"] += 0.9 - float(np.median(scores))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def compare_records(reference: list[dict], ours: list[dict]) -> dict:
    """How far two AMG outputs (``coco_rle`` records) are apart: counts, then each reference
    mask matched to the unmatched one of ours with the highest mask IoU (greedy, in the
    reference's order): the lowest matched IoU, the largest predicted-IoU and stability
    differences, and how many matched pairs differ in box, area, point or crop box."""
    from pycocotools import mask as mask_utils

    def rle(record):
        seg = record["segmentation"]
        counts = seg["counts"]
        return {"size": seg["size"], "counts": counts.encode() if isinstance(counts, str) else counts}

    out = {"n_reference": len(reference), "n_ours": len(ours), "min_iou": 1.0, "max_score_diff": 0.0,
           "max_stability_diff": 0.0, "field_mismatches": 0, "same_order": True}
    if not reference or not ours:
        out["min_iou"] = 1.0 if len(reference) == len(ours) else 0.0
        return out
    ious = np.asarray(mask_utils.iou([rle(r) for r in reference], [rle(o) for o in ours],
                                     [0] * len(ours))).reshape(len(reference), len(ours))
    free = np.ones(len(ours), bool)
    for i, ref in enumerate(reference):
        if not free.any():
            out["min_iou"] = 0.0
            break
        j = int(np.argmax(np.where(free, ious[i], -1)))
        free[j] = False
        mine = ours[j]
        out["same_order"] &= i == j
        out["min_iou"] = min(out["min_iou"], float(ious[i, j]))
        out["max_score_diff"] = max(out["max_score_diff"], abs(ref["predicted_iou"] - mine["predicted_iou"]))
        out["max_stability_diff"] = max(out["max_stability_diff"],
                                        abs(ref["stability_score"] - mine["stability_score"]))
        out["field_mismatches"] += any(not np.allclose(ref[k], mine[k]) for k in
                                       ("bbox", "area", "point_coords", "crop_box"))
    return out


__all__ = ["amg_checkpoint", "shapes_image", "compare_records"]
