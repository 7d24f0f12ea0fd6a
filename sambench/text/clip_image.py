"""The SAM paper's text-to-mask training prompt: CLIP *image* embeddings of masked crops.

SAM §7.5 / App. D.5 (docs/protocols.md): during training the first interaction of a
mask is the CLIP image embedding of a crop around it; at inference the unmodified CLIP text
encoder's embedding takes its place, which works because CLIP aligns the two. The crop:

- the mask's bounding box, enlarged about its centre by a random factor in [1, 2], made square
  (side = the longer side times the factor, so the aspect ratio is kept), cut from the image
  (zero padding where it leaves the image) and resized to CLIP's input size (336 for the
  paper's ViT-L/14@336px) with bilinear interpolation;
- with probability 1/2, the pixels outside the mask are zeroed (black);
- the last CLIP layer attends only to the patches the mask touches (and the class token), so
  the output (class) token summarises the mask; that token, through CLIP's post-LayerNorm and
  visual projection, ℓ2-normalised, is the prompt.

Choices the paper leaves open, fixed here: a patch counts as inside when the resized mask
covers at least one of its pixels; the mask is resized with nearest-neighbour sampling;
CLIP's pixel mean/std come from the folder's ``preprocessor_config.json`` (the OpenAI values
otherwise). Only a local transformers folder is read, as for ``clip:DIR`` text encoding.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from sambench.errors import SambenchError
from sambench.text.clip import load_tower

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def square_crop_box(mask: np.ndarray, factor: float) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square crop: the mask's box enlarged ``factor``× about its centre."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask")
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(1, int(round(max(x1 - x0, y1 - y0) * factor)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def cut(array: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side``² window at ``(x0, y0)``, zero where it leaves the array."""
    out = np.zeros((side, side) + array.shape[2:], dtype=array.dtype)
    h, w = array.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


class ClipMaskEmbedder:
    """CLIP's vision tower (``CLIPVisionModelWithProjection``) from a local folder, turning
    (image, mask) pairs into ℓ2-normalised prompt embeddings (module docstring)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        try:
            import torch
            from transformers import CLIPVisionModelWithProjection
        except ImportError:
            raise SambenchError("CLIP image prompts need transformers: pip install 'sambench[text]'") from None
        model_dir = Path(model_dir)
        self.model = load_tower(model_dir, CLIPVisionModelWithProjection, "vision", "CLIP image prompts")
        self.device = device
        self.model = self.model.to(device).eval()
        config = self.model.config
        self.size, self.patch = int(config.image_size), int(config.patch_size)
        self.dim = int(config.projection_dim)
        mean, std = OPENAI_MEAN, OPENAI_STD
        processor = model_dir / "preprocessor_config.json"
        if processor.is_file():
            data = json.loads(processor.read_text())
            mean, std = data.get("image_mean", mean), data.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def crop(self, image: np.ndarray, mask: np.ndarray, factor: float, zero_outside: bool):
        """Normalised ``(3, S, S)`` pixels of the crop and its ``(S, S)`` bool mask."""
        import torch

        x0, y0, side = square_crop_box(mask, factor)
        pixels = cv2.resize(cut(image, x0, y0, side), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        inside = cv2.resize(cut(mask.astype(np.uint8), x0, y0, side), (self.size, self.size),
                            interpolation=cv2.INTER_NEAREST).astype(bool)
        if zero_outside:
            pixels = pixels * inside[..., None]
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std, inside

    def patches_inside(self, inside: np.ndarray) -> np.ndarray:
        """``(grid²,)`` bool: the patches the mask touches, row-major like CLIP's tokens."""
        grid = self.size // self.patch
        cells = inside[:grid * self.patch, :grid * self.patch].reshape(grid, self.patch, grid, self.patch)
        return cells.any(axis=(1, 3)).reshape(-1)

    def forward(self, pixels, keep=None):
        """Image embeddings ``(B, D)``, not normalised; ``keep`` ``(B, grid²)`` bool limits the
        last layer's attention to those patches (and the class token)."""
        import torch

        vision = self.model.vision_model
        hidden = vision.pre_layrnorm(vision.embeddings(pixels))
        layers = vision.encoder.layers
        for layer in layers[:-1]:
            hidden = layer(hidden, None)
        bias = None
        if keep is not None:
            allowed = torch.cat([torch.ones(len(keep), 1, dtype=torch.bool, device=keep.device), keep], dim=1)
            bias = torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device)
            bias = bias.masked_fill(~allowed, torch.finfo(hidden.dtype).min)[:, None, None, :]
            bias = bias.expand(-1, 1, hidden.shape[1], -1)
        hidden = layers[-1](hidden, bias)
        return self.model.visual_projection(vision.post_layernorm(hidden[:, 0]))

    def embed(self, image: np.ndarray, masks: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """``(K, D)`` ℓ2-normalised prompt embeddings of ``masks`` (bool, the image's frame);
        the enlargement factors and the zeroing draws come from ``rng``."""
        import torch

        crops, keeps = [], []
        for mask in masks:
            factor, zero_outside = float(rng.uniform(1.0, 2.0)), bool(rng.random() < 0.5)
            pixels, inside = self.crop(image, mask, factor, zero_outside)
            crops.append(pixels)
            keeps.append(torch.from_numpy(self.patches_inside(inside)))
        with torch.inference_mode():
            out = self.forward(torch.stack(crops).to(self.device), torch.stack(keeps).to(self.device))
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy()
