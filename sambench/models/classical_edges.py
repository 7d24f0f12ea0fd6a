"""Classical edge detectors as models of the edges task: ``sobel`` and ``canny`` (OpenCV).

SAM's Table 3 lists them as zero-shot rows (Sobel ODS .539; Canny ODS .600, OIS .640, AP .580)
without their settings, so every setting here is a named option, recorded in results.json's
``model.config``. They answer no prompts: a model with ``edge_map(image) -> (H, W) float32 in
[0, 1]`` is scored by the edges task directly, while promptable models go through their masks
(:mod:`sambench.edges.masks`). Calling ``embed``/``predict`` on them is a clear user error.

Canny's output is binary: every threshold of the benchmark sees the same map, so the PR "curve"
is one point, ODS equals OIS, AP is 0 (the area under a single point) and R50 is that point's
recall when its precision reaches 0.5, else undefined. The paper's Canny row (OIS above ODS,
AP .580) must come from a graded variant whose settings it does not give.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from sambench.edges.filters import normalize, sobel_magnitude
from sambench.edges.nms import edge_nms
from sambench.errors import SambenchError
from sambench.models.base import ModelInfo


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SambenchError(f"edge detectors need an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # ITU-R BT.601 luma


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


class EdgeDetector:
    """Shared parts: options recorded in ``info``, no prompt interface."""

    name = ""

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, family="classical-edges", config=asdict(self))

    def embed(self, *args, **kwargs):
        raise SambenchError(f"model {self.name} is an edge detector: it runs only the edges task (--task edges)")

    predict = embed


@dataclass
class SobelEdges(EdgeDetector):
    """Gradient magnitude of the grey image, linearly normalised to [0, 1]."""

    blur_sigma: float = 1.0  # Gaussian blur of the grey image first (0: none)
    ksize: int = 3  # Sobel aperture
    nms: bool = False  # thin with the edge task's Dollár NMS (the paper's row is plain Sobel)
    name = "sobel"

    def edge_map(self, image: np.ndarray) -> np.ndarray:
        grey = _blur(_grey(image).astype(np.float32) / 255, self.blur_sigma)
        edges = normalize(sobel_magnitude(grey, self.ksize), "minmax")
        return np.clip(edge_nms(edges), 0, 1) if self.nms else edges


@dataclass
class CannyEdges(EdgeDetector):
    """OpenCV Canny on the blurred grey image: a binary map (see the module docstring)."""

    blur_sigma: float = 1.0  # Gaussian blur first (OpenCV's Canny does not smooth)
    low_threshold: float = 50.0  # hysteresis thresholds on the 8-bit image's gradient magnitude
    high_threshold: float = 150.0
    aperture: int = 3  # Sobel aperture inside Canny
    l2_gradient: bool = True  # sqrt(gx² + gy²) rather than |gx| + |gy|
    name = "canny"

    def edge_map(self, image: np.ndarray) -> np.ndarray:
        grey = _blur(_grey(image), self.blur_sigma)
        edges = cv2.Canny(grey, self.low_threshold, self.high_threshold, apertureSize=self.aperture,
                          L2gradient=self.l2_gradient)
        return (edges > 0).astype(np.float32)


def _build(cls):
    def factory(checkpoint=None, device="cpu", dtype="float32", **options):
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise SambenchError(f"unknown option(s) for model {cls.name}: {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(sorted(known))})")
        if checkpoint:
            raise SambenchError(f"model {cls.name} takes no checkpoint")
        return cls(**options)

    return factory


build_sobel = _build(SobelEdges)
build_canny = _build(CannyEdges)

__all__ = ["SobelEdges", "CannyEdges"]
