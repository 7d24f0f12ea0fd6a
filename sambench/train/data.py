"""Training examples: images resized to the model input, masks in the same frame.

Everything is read once through the dataset adapters (any format sambench reads) and kept
as the resized uint8 image plus RLE masks, so a step only decodes the masks it samples.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.models.base import resized_shape
from sambench.models.sam import transforms
from sambench.prompts import center_point

log = logging.getLogger("sambench")


@dataclass
class Example:
    image: np.ndarray  # (h, w, 3) uint8, long side = img_size
    masks: list[dict]  # RLE in the resized frame
    texts: list[str]
    # (x, y) of each mask's "center" point (the point protocol's first click, in this frame)
    centers: list[tuple[float, float]] = field(default_factory=list)
    # (M, K, D): K phrasings per mask, embedded (text-prompt training only; see attach_text)
    text_embeddings: Optional[np.ndarray] = None


def load_examples(datasets, img_size: int, min_area: int = 16) -> list[Example]:
    """Every image of the given datasets (iterables of Sample) with its non-crowd masks."""
    examples = []
    for dataset in datasets:
        for sample in dataset:
            try:
                image = sample.load_image()
            except SambenchError as exc:
                log.warning("training: skipping image %s: %s", sample.id, exc)
                continue
            h, w = resized_shape(sample.height, sample.width, img_size)
            resized = transforms.resize_image(image, img_size)
            masks, texts, centers = [], [], []
            for inst in sample.instances:
                if inst.iscrowd or inst.ignore:
                    continue
                m = cv2.resize(inst.mask().astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                if m.sum() >= min_area:
                    masks.append(mask_codec.encode(m.astype(bool)))
                    texts.append(inst.meta.get("description", inst.category))
                    click = center_point(m.astype(bool))
                    centers.append((float(click.x), float(click.y)))
            if masks:
                examples.append(Example(resized, masks, texts, centers))
    if not examples:
        raise SambenchError("no training examples: the datasets hold no usable masks")
    return examples


def attach_text(examples: list[Example], encoder, rephrase: bool) -> None:
    """Embed each mask's phrase once: its rephrasings (:mod:`.phrasing`) when ``rephrase``,
    so the original wording stays unseen for evaluation, else the phrase itself."""
    from sambench.train.phrasing import rephrasings

    for ex in examples:
        variants = [rephrasings(t) if rephrase else [t] for t in ex.texts]
        k = max(len(v) for v in variants)
        variants = [(v * k)[:k] for v in variants]  # same K for every mask
        flat = encoder.encode([p for v in variants for p in v])
        ex.text_embeddings = flat.reshape(len(variants), k, -1)


def batch(examples: list[Example], indices: list[int], masks_per_image: int, img_size: int,
          pixel_mean: torch.Tensor, pixel_std: torch.Tensor, rng: np.random.Generator):
    """Normalised padded images ``(B, 3, S, S)``, per image GT masks ``(M, S, S)`` bool, and
    per image the indices of the chosen masks."""
    images, targets, picked = [], [], []
    for i in indices:
        ex = examples[i]
        x = torch.from_numpy(ex.image).permute(2, 0, 1).float()
        x = (x - pixel_mean) / pixel_std
        h, w = ex.image.shape[:2]
        images.append(torch.nn.functional.pad(x, (0, img_size - w, 0, img_size - h)))
        chosen = rng.choice(len(ex.masks), size=min(masks_per_image, len(ex.masks)), replace=False)
        chosen = sorted(chosen)
        m = np.zeros((len(chosen), img_size, img_size), bool)
        for j, k in enumerate(chosen):
            m[j, :h, :w] = mask_codec.decode(ex.masks[k])
        targets.append(torch.from_numpy(m))
        picked.append(chosen)
    return torch.stack(images), targets, picked
