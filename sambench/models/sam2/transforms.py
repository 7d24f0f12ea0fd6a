"""Pre- and post-processing of the reference ``SAM2ImagePredictor``, without torchvision.

- The image is *stretched* to 1024×1024 (no aspect-preserving resize, no padding): the
  reference's ``ToTensor`` (uint8 → [0, 1] float) then torchvision's tensor ``Resize`` —
  bilinear with antialiasing, which is ``F.interpolate(..., antialias=True)`` — then
  ``Normalize`` with the ImageNet mean/std (the parity tests check the pixels are identical).
- Point coordinates are scaled per axis, ``x / W · 1024`` and ``y / H · 1024`` in float32;
  a box is its two corners scaled the same way.
- Low-res logits (256², over the stretched image) are upsampled bilinearly straight to
  ``H × W``; masks are logits > 0. The returned low-res logits are clamped to ±32, the masks are
  made from the unclamped ones, both as in the reference.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sambench.models.sam.transforms import check_image

LOGIT_CLAMP = 32.0


def preprocess(image: np.ndarray, size: int, pixel_mean: torch.Tensor, pixel_std: torch.Tensor,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """``(1, 3, size, size)`` normalised input of an ``(H, W, 3)`` uint8 RGB image."""
    image = check_image(image)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device).float().div(255)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - pixel_mean.to(device)) / pixel_std.to(device)


def scale_coords(coords: np.ndarray, original_size: tuple[int, int], size: int) -> torch.Tensor:
    """Pixel ``(..., 2)`` ``(x, y)`` coordinates of the original image → the stretched frame."""
    height, width = original_size
    coords = torch.as_tensor(np.asarray(coords), dtype=torch.float32).clone()
    coords[..., 0] = coords[..., 0] / width
    coords[..., 1] = coords[..., 1] / height
    return coords * size


def upsample_logits(low_res: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
    """``(N, K, 256, 256)`` logits → ``(N, K, H, W)``, bilinear, ``align_corners=False``."""
    return F.interpolate(low_res.float(), tuple(original_size), mode="bilinear", align_corners=False)
