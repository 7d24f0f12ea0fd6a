"""Prompt simulation for training (paper App. A; docs/training.md).

Each mask gets 11 prompt iterations: the first is a uniform foreground point or its
ground-truth box with noise (standard deviation 10% of the side, capped at 20 px) (optionally,
some points are the mask's "center", the benchmark's first click, instead); then 8
points sampled uniformly from the error region between the previous prediction and the
ground truth (positive in false negatives, negative in false positives); and 2 iterations
with no new point, one at a random position among the sampled ones and one last, so the model
learns to refine from its own mask. The previous iteration's low-res logits of the most
confident mask are fed back as the mask prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

N_ITERATIONS = 11
BOX_NOISE_FRACTION = 0.1
BOX_NOISE_MAX = 20.0


def schedule(generator: torch.Generator, n_iterations: int = N_ITERATIONS) -> list[bool]:
    """For iterations 1..n-1: True where a new point is sampled. The last iteration and one
    random earlier one add no point (with 11 iterations: 8 points, 2 refinement-only)."""
    n_rest = n_iterations - 1
    if n_rest < 2:
        return [True] * n_rest
    skip = int(torch.randint(0, n_rest - 1, (1,), generator=generator))
    return [i != skip and i != n_rest - 1 for i in range(n_rest)]


def uniform_points(region: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One pixel drawn uniformly from each region ``(B, H, W)`` bool → ``(B, 2)`` float (x, y)
    and ``(B,)`` bool ``valid`` (False where the region is empty: then the pixel is uniform
    over the whole image).

    The k-th set pixel with k uniform in [0, count): one draw per region and a cumulative sum,
    rather than ``torch.multinomial``, which draws an exponential per pixel (a sixth of a CPU
    training step at 256 px)."""
    b, h, w = region.shape
    flat = region.reshape(b, -1)
    count = flat.sum(1)
    valid = count > 0
    flat = torch.where(valid[:, None], flat, torch.ones_like(flat))
    count = torch.where(valid, count, torch.full_like(count, h * w))
    k = (torch.rand(b, generator=generator, dtype=torch.float64) * count).long().clamp(max=count - 1)
    index = torch.searchsorted(flat.cumsum(1), (k + 1)[:, None]).squeeze(1)
    xy = torch.stack([index % w, index // w], dim=1).float()
    return xy, valid


def noisy_boxes(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """GT boxes ``(B, 4)`` XYXY of masks ``(B, H, W)`` with Gaussian noise of std
    ``min(10% of the side, 20 px)`` per coordinate, clipped to the image."""
    b, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    box = torch.stack([x0, y0, x1, y1], 1).float()
    side = torch.stack([x1 - x0, y1 - y0, x1 - x0, y1 - y0], 1).float().clamp(min=1)
    std = (BOX_NOISE_FRACTION * side).clamp(max=BOX_NOISE_MAX)
    box = box + torch.randn(box.shape, generator=generator) * std
    limit = torch.tensor([w - 1, h - 1, w - 1, h - 1], dtype=box.dtype)
    return torch.minimum(box.clamp(min=0), limit)


@dataclass
class Prompts:
    """The growing prompt of B masks: points ``(B, N, 2)`` (x, y), labels ``(B, N)``, box."""

    points: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor | None

    def add(self, xy: torch.Tensor, labels: torch.Tensor) -> "Prompts":
        return Prompts(torch.cat([self.points, xy[:, None]], 1),
                       torch.cat([self.labels, labels[:, None]], 1), self.boxes)


def first_prompts(masks: torch.Tensor, use_box: bool, generator: torch.Generator,
                  centers: torch.Tensor | None = None, p_center: float = 0.0) -> Prompts:
    """Iteration 0: a noisy GT box, or a uniform foreground point, for each mask. With
    ``p_center > 0`` each point is instead, with that probability, the mask's "center"
    ``centers`` ``(B, 2)`` (the point protocol's first click; docs/training.md)."""
    b = masks.shape[0]
    empty_points = torch.zeros(b, 0, 2)
    empty_labels = torch.zeros(b, 0, dtype=torch.long)
    if use_box:
        return Prompts(empty_points, empty_labels, noisy_boxes(masks, generator))
    xy, _ = uniform_points(masks, generator)
    if p_center > 0:  # no draw otherwise, so runs without it keep their random stream
        at_center = torch.rand(b, generator=generator) < p_center
        xy = torch.where(at_center[:, None], centers, xy)
    return Prompts(xy[:, None], torch.ones(b, 1, dtype=torch.long), None)


def corrective_points(masks: torch.Tensor, pred: torch.Tensor, generator: torch.Generator):
    """A point uniform over each mask's error region; label 1 if it is a false negative.
    Where there is no error the point is drawn from the mask itself (positive)."""
    error = masks ^ pred
    xy, valid = uniform_points(error, generator)
    fallback, _ = uniform_points(masks, generator)
    xy = torch.where(valid[:, None], xy, fallback)
    ix, iy = xy[:, 0].long(), xy[:, 1].long()
    labels = masks[torch.arange(len(masks)), iy, ix].long()
    return xy, labels
