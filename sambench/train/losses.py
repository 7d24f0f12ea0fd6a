"""The paper's losses (App. A; docs/training.md).

Mask loss = 20 · focal + dice (DETR/MaskFormer's pair, focal α = 0.25, γ = 2 as there; the
paper gives the ratio, not α/γ); IoU head = MSE against the IoU of its own predicted mask
(weight 1); with several outputs only the lowest-loss mask is backpropagated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = FOCAL_ALPHA,
               gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels; ``logits``/``target`` ``(..., H, W)`` → ``(...)``."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice with +1 smoothing on numerator and denominator → ``(...)``."""
    prob = logits.sigmoid().flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (prob * t).sum(-1) + eps) / (prob.sum(-1) + t.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks (no gradient) → ``(...)``; empty ∪ empty counts 1."""
    pred = logits.detach() > 0
    t = target > 0.5
    inter = (pred & t).flatten(-2).sum(-1).float()
    union = (pred | t).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def sam_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor):
    """Loss of one prompt step for B masks with K outputs each.

    ``logits`` ``(B, K, H, W)``, ``iou_pred`` ``(B, K)``, ``target`` ``(B, H, W)`` in {0, 1}.
    Returns ``(loss, chosen, iou)``: the scalar loss (mask loss of the best output per mask +
    IoU MSE over all outputs, averaged over B), the index of the best output per mask, and
    the actual IoU of every output.
    """
    t = target[:, None].expand_as(logits).float()
    per_output = FOCAL_WEIGHT * focal_loss(logits, t) + dice_loss(logits, t)  # (B, K)
    best = per_output.argmin(dim=1)
    mask_term = per_output.gather(1, best[:, None]).squeeze(1)
    iou = mask_iou(logits, t)
    iou_term = F.mse_loss(iou_pred, iou, reduction="none").mean(dim=1)
    return (mask_term + iou_term).mean(), best, iou
