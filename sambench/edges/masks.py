"""An edge map from a promptable model's masks (SAM paper §7.2, App. D.2; docs/protocols.md).

"We prompt SAM with a 16×16 regular grid of foreground points resulting in 768 predicted masks
(3 per point). Redundant masks are removed by NMS. Then, edge maps are computed by Sobel
filtering of unthresholded mask probability maps and standard lightweight postprocessing,
including edge NMS" — in App. D.2: no predicted-IoU or stability filtering; a Sobel filter on
each remaining mask's probability map, "set values to zero if they do not intersect with the
outer boundary pixels of a mask"; the pixel-wise max over masks, normalised linearly to [0, 1];
edge NMS.

The grid, the model calls and the box NMS are :class:`~sambench.amg.AutomaticMaskGenerator`
with the filters off and no crops (a SAM author: NMS 0.7, ``crop_n_layers=0``, probability =
sigmoid of the logits, segment-anything issue #226). The probability map is the sigmoid of the
logits upsampled to the image size, the frame in which SAM thresholds its masks. The steps
the paper leaves open are the options of :class:`EdgeOptions` (the edges task records them).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.special import expit

from sambench.amg import AutomaticMaskGenerator
from sambench.amg.generator import MASK_THRESHOLD
from sambench.edges.filters import normalize, sobel_magnitude
from sambench.edges.nms import edge_nms
from sambench.errors import SambenchError
from sambench.options import open_choice

BOUNDARIES = ("outside", "inside", "band")
NORMALIZATIONS = ("minmax", "max")
_SQUARE = np.ones((3, 3), np.uint8)


@dataclass
class EdgeOptions:
    """The mask route's settings; ``[open]`` marks what the paper does not say."""

    points_per_side: int = 16  # 16 x 16 grid, 3 masks per point: 768 masks
    points_per_batch: int = 64  # compute only: no effect on the result
    # box NMS over the 768 masks by predicted IoU
    box_nms_thresh: float = open_choice(
        0.7, "SAM paper App. D.2 says only 'removed by NMS'; 0.7 from a SAM author "
        "(segment-anything issue #226)", [0.7, 0.5, 0.9])
    # "outer boundary pixels": see boundary_pixels
    boundary: str = open_choice(
        "outside", "SAM paper App. D.2 'outer boundary pixels of a mask'; the ring outside the mask "
        "as the public reimplementation (ymgw55/segment-anything-edge-detection)", list(BOUNDARIES))
    # boundaries of holes count too (False: outer contour only)
    boundary_holes: bool = open_choice(True, "not in the paper", [True, False])
    sobel_ksize: int = 3  # [open] OpenCV Sobel aperture on the probability map
    # (E - min) / (max - min), or E / max
    normalize: str = open_choice("minmax", "SAM paper App. D.2 'linearly normalize'", list(NORMALIZATIONS))
    # Dollár's edge NMS (module sambench.edges.nms), or none
    edge_nms: bool = open_choice(
        True, "SAM paper App. D.2 'edge NMS' citing Dollár's structured forests; applied as his "
        "edgesDetect.m does", [True, False])
    nms_presmooth: float = 1  # [open] convTri radius before NMS (Dollár's edgesDetect: 1)
    nms_orientation_radius: float = 4  # convTri radius under the orientation estimate
    nms_radius: int = 1  # edgesNms r, s, m as in edgesDetect.m
    nms_border: int = 5
    nms_multiplier: float = 1.01

    def __post_init__(self):
        if self.boundary not in BOUNDARIES:
            raise SambenchError(f"edges: boundary must be one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")
        if self.normalize not in NORMALIZATIONS:
            raise SambenchError(f"edges: normalize must be one of {', '.join(NORMALIZATIONS)}, "
                                f"got {self.normalize!r}")
        if self.sobel_ksize not in (1, 3, 5, 7):
            raise SambenchError(f"edges: sobel_ksize must be 1, 3, 5 or 7, got {self.sobel_ksize!r}")
        if not isinstance(self.points_per_side, int) or self.points_per_side < 1:
            raise SambenchError(f"edges: points_per_side must be a positive integer, got {self.points_per_side!r}")


def boundary_pixels(mask: np.ndarray, where: str = "outside", holes: bool = True) -> np.ndarray:
    """The pixels where a mask's Sobel response is kept (bool, same shape).

    ``outside``: background pixels 8-adjacent to the mask, the one-pixel ring just outside it
    (the public reimplementation's reading: dilate(mask) - mask); ``inside``: mask pixels
    8-adjacent to the background; ``band``: both. The image border is never a boundary.
    ``holes=False`` fills the mask's holes first, so only its outer contour counts.
    """
    mask = np.asarray(mask, bool)
    if not holes:
        mask = ndimage.binary_fill_holes(mask)
    m8 = mask.astype(np.uint8)
    out = np.zeros_like(mask)
    if where in ("outside", "band"):
        out |= cv2.dilate(m8, _SQUARE, borderType=cv2.BORDER_REPLICATE).astype(bool) & ~mask
    if where in ("inside", "band"):
        out |= mask & ~cv2.erode(m8, _SQUARE, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return out


def mask_edges(logits: np.ndarray, options: EdgeOptions) -> np.ndarray:
    """One mask's edge response: Sobel of ``sigmoid(logits)``, zero away from its boundary."""
    logits = np.asarray(logits, np.float32)
    response = sobel_magnitude(expit(logits), options.sobel_ksize)
    keep = boundary_pixels(logits > MASK_THRESHOLD, options.boundary, options.boundary_holes)
    response[~keep] = 0
    return response


def finish(edges: np.ndarray, options: EdgeOptions) -> np.ndarray:
    """Normalise, then (optionally) edge NMS: the last two steps of the paper's recipe."""
    edges = normalize(edges, options.normalize)
    if options.edge_nms:
        edges = edge_nms(edges, r=options.nms_radius, s=options.nms_border, m=options.nms_multiplier,
                         presmooth=options.nms_presmooth, orientation_radius=options.nms_orientation_radius)
    return np.clip(edges, 0, 1)


def generate_masks(model, image: np.ndarray, options: EdgeOptions):
    """The masks left after box NMS, as AMG's MaskData with a ``logits`` function per mask."""
    generator = AutomaticMaskGenerator(
        model, points_per_side=options.points_per_side, points_per_batch=options.points_per_batch,
        pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=options.box_nms_thresh,
        crop_n_layers=0, min_mask_region_area=0, multimask_output=True, return_logits=True)
    return generator.generate_data(image)


def combine(data, size: tuple[int, int], options: EdgeOptions) -> np.ndarray:
    """Pixel-wise max of the masks' edge responses, normalised and thinned (float32 in [0, 1])."""
    edges = np.zeros(size, np.float32)
    for logits_of in (data["logits"] if len(data) else []):
        np.maximum(edges, mask_edges(logits_of(), options), out=edges)
    return finish(edges, options)


def edge_map_from_masks(model, image: np.ndarray, options: EdgeOptions) -> tuple[np.ndarray, int]:
    """The edge map (float32 in [0, 1], image size) and the number of masks it came from."""
    data = generate_masks(model, image, options)
    return combine(data, image.shape[:2], options), len(data)


__all__ = ["EdgeOptions", "boundary_pixels", "mask_edges", "finish",
           "generate_masks", "combine", "edge_map_from_masks", "BOUNDARIES", "NORMALIZATIONS"]
