"""Image filters that every edge detector shares (the mask-based one and the classical
baselines): the Sobel gradient magnitude and the linear normalisation to [0, 1]."""
from __future__ import annotations

import cv2
import numpy as np


def sobel_magnitude(image: np.ndarray, ksize: int = 3) -> np.ndarray:
    """Gradient magnitude ``sqrt(gx² + gy²)`` of a float image (OpenCV Sobel, reflect-101 borders).

    The magnitude is taken in NumPy: ``cv2.magnitude``'s result depends on the arrays' memory
    alignment (1 ulp), and the edge-NMS orientation amplifies such noise where ``Oxy`` is ~0.
    """
    image = np.asarray(image, np.float32)
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=ksize)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=ksize)
    return np.sqrt(gx * gx + gy * gy)


def normalize(edges: np.ndarray, how: str = "minmax") -> np.ndarray:
    """Linear map to [0, 1]; a constant map becomes all zeros."""
    edges = np.asarray(edges, np.float32)
    lo = float(edges.min()) if how == "minmax" and edges.size else 0.0
    hi = float(edges.max()) if edges.size else 0.0
    if hi <= lo:
        return np.zeros_like(edges)
    return (edges - lo) / (hi - lo)
