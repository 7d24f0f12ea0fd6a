"""Edge NMS as in Dollár's Structured Edge toolbox, the "standard" BSDS post-processing.

``edgesDetect.m`` and the HED / RCF / EDTER evaluation scripts all thin an edge map ``E`` with::

    E = convTri(E, 1);
    [Ox, Oy] = gradient2(convTri(E, 4));
    [Oxx, ~] = gradient2(Ox); [Oxy, Oyy] = gradient2(Oy);
    O = mod(atan(Oyy .* sign(-Oxy) ./ (Oxx + 1e-5)), pi);
    E = edgesNmsMex(E, O, 1, 5, 1.01, nThreads);

(Dollár's Structured Edge toolbox, ``edgesDetect.m``; Dollár is a SAM author and the SAM paper cites Canny-style "edge
NMS"). Each nonzero pixel, times ``m``, is compared with the bilinearly interpolated map at
``d = ±1..r`` pixels along ``O`` (the edge normal) and zeroed if any neighbour is larger; then
the map fades linearly to 0 over ``s`` pixels at the image borders.

The smoothing and the orientation are computed here (NumPy / OpenCV filters, MATLAB's
``symmetric`` padding and ``gradient`` borders). The suppression kernel is OpenCV's
``ximgproc`` port of ``edgesNmsMex.cpp`` (opencv-contrib; equal to the original within 4e-8 for
the same ``O``, docs/edges.md). OpenCV exposes it only as a method of
``StructuredEdgeDetection``, which is built from a model file: a stub holding only the options
block is written once per process (no trees, so ``detectEdges`` is never usable and no model is
downloaded). OpenCV's own ``computeOrientation`` is not used: it smooths and differentiates
differently from ``gradient2`` (the orientations differ at many pixels).
"""
from __future__ import annotations

import functools
import os
import tempfile

import cv2
import numpy as np

from sambench.errors import SambenchError

# StructuredEdgeDetection reads these options and divides by some of them: a file without
# them crashes the process (SIGFPE). Values of OpenCV's sample model; none affects edgesNms.
_STUB_MODEL = """%YAML:1.0
options:
   numberOfTrees: 1
   numberOfTreesToEvaluate: 1
   selfsimilarityGridSize: 5
   stride: 2
   shrinkNumber: 2
   patchSize: 32
   patchInnerSize: 16
   numberOfGradientOrientations: 4
   gradientSmoothingRadius: 0
   regFeatureSmoothingRadius: 2
   ssFeatureSmoothingRadius: 8
   gradientNormalizationRadius: 4
   numberOfOutputChannels: 13
"""


@functools.lru_cache(maxsize=1)
def _kernel():
    """The OpenCV object whose ``edgesNms`` method is Dollár's kernel (see the module docstring)."""
    ximgproc = getattr(cv2, "ximgproc", None)
    if ximgproc is None:
        raise SambenchError("edge NMS needs cv2.ximgproc: install opencv-contrib-python-headless "
                            "(uninstall opencv-python-headless first: both provide cv2)")
    fd, path = tempfile.mkstemp(suffix=".yml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_STUB_MODEL)
        return ximgproc.createStructuredEdgeDetection(path)
    finally:
        os.unlink(path)


def conv_tri(image: np.ndarray, r: float) -> np.ndarray:
    """Dollár's ``convTri(I, r)``: separable triangle filter, ``symmetric`` padding.

    ``r >= 1``: kernel ``[1 .. r+1 .. 1] / (r+1)^2``; ``0 < r < 1``: ``[1 p 1] / (2+p)`` with
    ``p = 12/r/(r+2) - 2`` (so ``r = 1`` is ``[1 2 1]/4`` either way); ``r = 0``: unchanged.
    """
    image = np.asarray(image, np.float32)
    if r <= 0:
        return image
    if r <= 1:
        p = 12 / r / (r + 2) - 2
        kernel = np.array([1, p, 1], np.float64) / (2 + p)
    else:
        r = int(round(r))
        kernel = np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]) / (r + 1) ** 2
    kernel = kernel.astype(np.float32)
    return cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def orientation(edges: np.ndarray, r: float = 4) -> np.ndarray:
    """Edge-normal angle in [0, π) from the second derivatives of ``convTri(E, r)`` (x = columns)."""
    smooth = conv_tri(edges, r)
    oy, ox = np.gradient(smooth)  # gradient2: central differences, one-sided at the borders
    _, oxx = np.gradient(ox)
    oyy, oxy = np.gradient(oy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(oyy * np.sign(-oxy) / (oxx + np.float32(1e-5)))
    return np.mod(np.nan_to_num(angle), np.pi).astype(np.float32)


def edge_nms(edges: np.ndarray, r: int = 1, s: int = 5, m: float = 1.01, presmooth: float = 1,
             orientation_radius: float = 4) -> np.ndarray:
    """Thin an edge map (H x W floats in [0, 1]) with Dollár's NMS; returns float32.

    ``presmooth`` is the ``convTri`` radius applied first (0: none), ``orientation_radius`` the
    smoothing under the orientation estimate, ``r`` the suppression radius, ``s`` the border
    fade width and ``m`` the conservative multiplier, all as named in ``edgesNmsMex``.
    """
    e = conv_tri(edges, presmooth)
    o = orientation(e, orientation_radius)
    # keywords: the third positional argument of the binding is ``dst``
    return _kernel().edgesNms(np.ascontiguousarray(e), o, r=int(r), s=int(s), m=float(m))


__all__ = ["conv_tri", "orientation", "edge_nms"]
