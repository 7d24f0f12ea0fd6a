"""Greedy box NMS in plain torch, equal to torchvision's ``nms`` / ``batched_nms`` on CPU.

Hand-written because torchvision is the one dependency sambench avoids: its wheels pin one
torch release each (a user's CUDA torch and torchvision must match exactly), and NMS is the only
thing AMG needs from it. "Equal" means the same kept indices in the same order, ties included
(tests/test_amg_nms.py checks against torchvision in the official venv):

- boxes are visited in descending score order, ties in index order (a stable sort, as
  torchvision's CPU kernel does);
- IoU is computed in the boxes' dtype as ``inter / (area_i + area_j - inter)`` with areas
  ``(x2 - x1) * (y2 - y1)`` (no +1), and a box is suppressed when its IoU with a kept one is
  strictly greater than the threshold, compared in double precision like the C++ kernel;
- ``batched_nms`` takes the same two routes as torchvision: for more than 4000 box coordinates
  on CPU (100 000 elsewhere) one NMS per category, then the kept indices re-sorted by
  ``Tensor.sort(descending=True)`` (not stable, so ties come out in the order torch's sort
  gives them, as in torchvision); otherwise one NMS over boxes shifted apart per category.

The greedy pass works on blocks of boxes: IoUs inside a block resolve the block sequentially,
then the block's kept boxes suppress all later boxes in one vectorised step. The kept set is
exactly the sequential algorithm's.
"""
from __future__ import annotations

import numpy as np
import torch

BLOCK = 256  # boxes per greedy block: bounds the IoU matrices at BLOCK x N


def _iou(a: torch.Tensor, area_a: torch.Tensor, b: torch.Tensor, area_b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (M, 4) with every box of ``b`` (N, 4), as the C++ kernel computes it."""
    w = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes kept by greedy NMS, in descending score order.

    ``boxes`` are ``(N, 4)`` XYXY, ``scores`` ``(N,)``; a box is dropped when its IoU with a
    higher-ranked kept box is greater than ``iou_threshold``.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    areas = (ranked[:, 2] - ranked[:, 0]) * (ranked[:, 3] - ranked[:, 1])
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        block, block_areas = ranked[start:stop], areas[start:stop]
        over = (_iou(block, block_areas, block, block_areas).double() > iou_threshold).cpu().numpy()
        block_kept = []
        for i in range(stop - start):
            if suppressed[start + i]:
                continue
            block_kept.append(i)
            suppressed[start + i + 1:stop] |= over[i, i + 1:]
        kept += [start + i for i in block_kept]
        if block_kept and stop < n:
            idx = torch.as_tensor(block_kept, device=boxes.device)
            later = _iou(block[idx], block_areas[idx], ranked[stop:], areas[stop:])
            suppressed[stop:] |= (later.double() > iou_threshold).any(0).cpu().numpy()
    return order[torch.as_tensor(kept, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each category ``idxs``; kept indices sorted by decreasing score (see module)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for category in torch.unique(idxs):
            members = torch.where(idxs == category)[0]
            keep_mask[members[nms(boxes[members], scores[members], iou_threshold)]] = True
        kept = torch.where(keep_mask)[0]
        return kept[scores[kept].sort(descending=True)[1]]
    # Shift each category's boxes past every other's so one NMS never compares across them.
    shift = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + shift[:, None], scores, iou_threshold)


__all__ = ["nms", "batched_nms"]
