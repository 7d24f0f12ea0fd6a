"""Pre- and post-processing of the official ``SamPredictor``, without torchvision.

- The image is resized so its long side is ``img_size`` (``int(side·scale + 0.5)``), with PIL
  bilinear on the uint8 image: the official ``ResizeLongestSide.apply_image`` path
  (torchvision's ``resize`` on a PIL image is ``Image.resize((w, h), BILINEAR)``). The tensor
  path ``apply_image_torch`` gives different pixels and is not used.
- Pixels are normalised with the ImageNet mean/std (0–255 scale), then zero-padded at the
  bottom/right to ``img_size``² (``Sam.preprocess``).
- Point and box coordinates are scaled per axis by new/old size, in float64 then float32
  (``apply_coords``).
- Low-res logits are upsampled bilinearly to ``img_size``², cropped to the resized image and
  upsampled to the original size (``Sam.postprocess_masks``); masks are logits > 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sambench.errors import SambenchError
from sambench.models.base import resized_shape


def check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SambenchError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise SambenchError(f"empty image {image.shape}")
    return image


def resize_image(image: np.ndarray, long_side: int) -> np.ndarray:
    """PIL bilinear resize of an ``(H, W, 3)`` uint8 image to long side ``long_side``."""
    return resize_to(image, *resized_shape(image.shape[0], image.shape[1], long_side))


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL bilinear resize of an ``(H, W, 3)`` uint8 image to ``(height, width)``."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.BILINEAR)
    return np.array(pil)


def preprocess(image: np.ndarray, img_size: int, pixel_mean: torch.Tensor,
               pixel_std: torch.Tensor, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(1, 3, img_size, img_size)`` normalised, padded input and the resized (h, w)."""
    resized = resize_image(check_image(image), img_size)
    x = torch.from_numpy(np.ascontiguousarray(resized)).to(device).permute(2, 0, 1)[None]
    x = (x - pixel_mean) / pixel_std
    height, width = resized.shape[:2]
    return F.pad(x, (0, img_size - width, 0, img_size - height)), (height, width)


def scale_coords(coords: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Pixel ``(..., 2)`` ``(x, y)`` coordinates of the original image → resized frame."""
    old_h, old_w = original_size
    new_h, new_w = resized_shape(old_h, old_w, long_side)
    coords = np.array(coords, dtype=np.float64)
    coords[..., 0] = coords[..., 0] * (new_w / old_w)
    coords[..., 1] = coords[..., 1] * (new_h / old_h)
    return coords.astype(np.float32)


def upsample_logits(low_res: torch.Tensor, input_size: tuple[int, int],
                    original_size: tuple[int, int], img_size: int) -> torch.Tensor:
    """``(B, K, l, l)`` low-res logits → ``(B, K, H, W)`` logits at the original size.

    The first upsampling (to ``img_size``, then cropped to ``input_size``) only evaluates the
    rows/columns that survive the crop: with an explicit scale factor of img_size/l the
    bilinear source positions and weights are those of the full-size call, and one extra
    source row/column covers the right/bottom neighbours, so the values are identical.
    """
    side = low_res.shape[-1]
    factor = img_size // side
    if factor * side != img_size:  # not an integer factor: do exactly what the reference does
        x = F.interpolate(low_res, (img_size, img_size), mode="bilinear", align_corners=False)
    else:
        rows = min(side, math.ceil(input_size[0] / factor) + 1)
        cols = min(side, math.ceil(input_size[1] / factor) + 1)
        x = low_res[..., :rows, :cols]
        if rows == side and cols == side:
            x = F.interpolate(x, (img_size, img_size), mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False,
                              recompute_scale_factor=False)
    x = x[..., : input_size[0], : input_size[1]]
    if tuple(input_size) == tuple(original_size):
        # a same-size bilinear resize samples every pixel at weight 1 (and 0 for its neighbour)
        return x.contiguous()
    return F.interpolate(x, original_size, mode="bilinear", align_corners=False)


def logits_to_masks(low_res: torch.Tensor, input_size: tuple[int, int],
                    original_size: tuple[int, int], img_size: int,
                    threshold: float = 0.0, max_floats: int = 1 << 23,
                    upsample=upsample_logits) -> np.ndarray:
    """Threshold :func:`upsample_logits` into bool masks, a few masks at a time.

    Chunking bounds the float intermediates (``max_floats`` ≈ 32 MB) however many masks a
    prompt batch has, and buffers of that size are recycled by the allocator instead of being
    mapped (and page-faulted) afresh for every chunk; the result is ``(B, K, H, W)`` bool numpy.
    ``upsample`` has :func:`upsample_logits`' signature (a stretched frame passes its own).
    """
    batch, k = low_res.shape[:2]
    flat = low_res.reshape(batch * k, 1, *low_res.shape[-2:]).float()
    out = np.empty((batch * k, *original_size), dtype=bool)
    per_mask = img_size * img_size + original_size[0] * original_size[1]
    step = max(1, max_floats // per_mask)
    target = torch.from_numpy(out)
    for start in range(0, batch * k, step):
        logits = upsample(flat[start:start + step], input_size, original_size, img_size)
        torch.gt(logits[:, 0].cpu(), threshold, out=target[start:start + step])
    return out.reshape(batch, k, *original_size)
