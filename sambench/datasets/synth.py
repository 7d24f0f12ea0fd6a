"""The synthetic data generator behind the demo suite (``sambench datasets synth``).

Procedural images whose objects have parts and sub-parts (a disc with a band with a dot), so a
single click is genuinely ambiguous between whole, part and sub-part, exactly the ambiguity
SAM's three outputs are for. Several visual domains (flat shapes, textured scenes, cell-like
blobs) make a suite of several datasets; later objects occlude earlier ones. Output is a real
COCO dataset (PNG images + ``annotations.json`` with RLE or polygons) so the demo flows through
the same adapter as real data. Everything is a function of (domain, image index, seed).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sambench import masks as mask_codec

GENERATOR_VERSION = 1
MIN_AREA = 24  # instances smaller than this are not annotated (the generator's rule)

COLORS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (235, 210, 40), "magenta": (210, 50, 200), "cyan": (40, 200, 210),
    "orange": (240, 140, 30), "purple": (120, 60, 170), "white": (240, 240, 240),
    "black": (25, 25, 25),
}
CATEGORIES = ["disc", "ellipse", "square", "triangle", "hexagon", "blob", "band", "core", "dot"]
LEVELS = {"band": "part", "core": "part", "dot": "subpart"}


@dataclass(frozen=True)
class Domain:
    height: int
    width: int
    shapes: tuple[str, ...]
    parts: tuple[str, ...]
    background: str  # flat | noise | dark
    n_objects: tuple[int, int]
    polygons: bool = False  # write polygons where they reproduce the mask
    palette: tuple[str, ...] = tuple(COLORS)


DOMAINS = {
    "shapes": Domain(240, 320, ("disc", "square", "triangle", "hexagon"), ("band", "core"),
                     "flat", (2, 4)),
    "texture": Domain(320, 240, ("disc", "ellipse", "square", "hexagon"), ("band", "core"),
                      "noise", (2, 4), polygons=True),
    "cells": Domain(256, 256, ("blob",), ("core",), "dark", (3, 6),
                    palette=("green", "cyan", "magenta", "yellow", "white", "orange")),
}


@dataclass
class SynthObject:
    shape: str
    part: str
    colors: tuple[str, str, str]
    masks: list[np.ndarray] = field(default_factory=list)  # whole, part, sub-part (unoccluded)


def settings_key(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def _shape_mask(shape: str, h: int, w: int, cx: float, cy: float, r: float, angle: float,
                rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    if shape == "disc":
        cv2.circle(canvas, (round(cx), round(cy)), round(r), 1, -1)
    elif shape == "ellipse":
        cv2.ellipse(canvas, (round(cx), round(cy)), (round(r), round(r * 0.6)), angle, 0, 360, 1, -1)
    else:
        if shape == "blob":
            n = 14
            radii = r * (0.75 + 0.25 * rng.random(n))
            radii = (radii + np.roll(radii, 1) + np.roll(radii, -1)) / 3
        else:
            n = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
            radii = np.full(n, r)
        theta = np.deg2rad(angle) + np.arange(n) * 2 * np.pi / n
        pts = np.stack([cx + radii * np.cos(theta), cy + radii * np.sin(theta)], 1)
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool)


def _make_object(domain: Domain, rng: np.random.Generator) -> SynthObject:
    h, w = domain.height, domain.width
    shape = str(rng.choice(domain.shapes))
    part = str(rng.choice(domain.parts))
    colors = tuple(str(c) for c in rng.choice(domain.palette, size=3, replace=False))
    r = float(rng.uniform(0.14, 0.3) * min(h, w))
    cx, cy = float(rng.uniform(0.15, 0.85) * w), float(rng.uniform(0.15, 0.85) * h)
    angle = float(rng.uniform(0, 180))
    whole = _shape_mask(shape, h, w, cx, cy, r, angle, rng)
    if part == "band":
        band = np.zeros((h, w), np.uint8)
        half = r * 0.22
        direction = np.array([np.cos(np.deg2rad(angle + 90)), np.sin(np.deg2rad(angle + 90))])
        normal = np.array([-direction[1], direction[0]])
        c = np.array([cx, cy])
        corners = [c + direction * 2 * r + normal * half, c - direction * 2 * r + normal * half,
                   c - direction * 2 * r - normal * half, c + direction * 2 * r - normal * half]
        cv2.fillPoly(band, [np.round(corners).astype(np.int32)], 1)
        part_mask = whole & band.astype(bool)
    else:
        offset = rng.uniform(-0.15, 0.15, size=2) * r
        part_mask = whole & _shape_mask("disc", h, w, cx + offset[0], cy + offset[1], r * 0.45, 0, rng)
    ys, xs = np.nonzero(part_mask)
    dot = np.zeros((h, w), bool)
    if len(ys):
        i = int(rng.integers(len(ys)))
        dot = part_mask & _shape_mask("disc", h, w, xs[i], ys[i], max(3.0, r * 0.13), 0, rng)
    return SynthObject(shape, part, colors, [whole, part_mask, dot])


def _background(domain: Domain, rng: np.random.Generator) -> np.ndarray:
    h, w = domain.height, domain.width
    if domain.background == "dark":
        base = np.full((h, w, 3), rng.integers(5, 30), np.float32)
    elif domain.background == "noise":
        coarse = rng.random((h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
        base = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 160 + 40
    else:
        base = np.ones((h, w, 3), np.float32) * rng.integers(90, 200, size=3)
        ramp = np.linspace(-25, 25, w, dtype=np.float32)[None, :, None]
        base = base + ramp
    return base


def make_image(domain: Domain, rng: np.random.Generator):
    """One image and its objects' visible masks: ``(image, [(object, [whole, part, sub]), ...])``."""
    image = _background(domain, rng)
    objects = [_make_object(domain, rng) for _ in range(int(rng.integers(*domain.n_objects, endpoint=True)))]
    for obj in objects:
        for mask, color in zip(obj.masks, obj.colors):
            fill = np.array(COLORS[color], np.float32) + rng.normal(0, 12, 3)
            if domain.background == "noise":  # textured objects
                texture = rng.normal(0, 18, (domain.height, domain.width, 1)).astype(np.float32)
                image[mask] = fill + texture[mask]
            else:
                image[mask] = fill
    image = cv2.GaussianBlur(image, (3, 3), 0.8) + rng.normal(0, 4, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    occluder = np.zeros((domain.height, domain.width), bool)
    visible = []
    for obj in reversed(objects):  # later objects are on top
        visible.append((obj, [m & ~occluder for m in obj.masks]))
        occluder |= obj.masks[0]
    return image, visible[::-1]


def _polygon_or_rle(mask: np.ndarray):
    """Polygons (COCO list, through boundary-pixel centres) when they rasterise back to ≥ 90%
    IoU of the mask, else RLE. The annotation is what the polygon rasterises to, as with
    real polygon-annotated data whose outlines do not follow pixel edges exactly."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = [(c.reshape(-1) + 0.5).tolist() for c in contours if len(c) >= 3]
    if polys:
        back = mask_codec.decode(mask_codec.from_polygons(polys, *mask.shape))
        inter, union = np.count_nonzero(back & mask), np.count_nonzero(back | mask)
        if union and inter / union >= 0.9:
            return polys, back
    return mask_codec.encode(mask), mask


def write_dataset(root: Path, name: str, domain: str = "shapes", n_images: int = 10,
                  seed: int = 0) -> Path:
    """Write ``root/images/*.png`` and ``root/annotations.json`` (COCO instances)."""
    spec = DOMAINS[domain]
    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    (tmp / "images").mkdir(parents=True, exist_ok=True)
    from PIL import Image

    images, annotations = [], []
    for index in range(n_images):
        rng = np.random.default_rng([seed, index, sum(map(ord, domain))])
        image, objects = make_image(spec, rng)
        file_name = f"{name}_{index:05d}.png"
        Image.fromarray(image).save(tmp / "images" / file_name)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": spec.height, "width": spec.width})
        for obj, masks in objects:
            names = [obj.shape, obj.part, "dot"]
            descriptions = [f"the {obj.colors[0]} {obj.shape}",
                            f"the {obj.colors[1]} {obj.part} of the {obj.colors[0]} {obj.shape}",
                            f"the {obj.colors[2]} dot on the {obj.colors[1]} {obj.part}"]
            parent = None
            for level, (mask, cat, color, text) in enumerate(zip(masks, names, obj.colors, descriptions)):
                if np.count_nonzero(mask) < MIN_AREA:
                    break  # a hidden whole hides its part; a hidden part its dot
                segmentation, mask = _polygon_or_rle(mask) if spec.polygons else (mask_codec.encode(mask), mask)
                rle = mask_codec.encode(mask)
                ann_id = len(annotations) + 1
                annotations.append({
                    "id": ann_id, "image_id": image_id, "category_id": CATEGORIES.index(cat) + 1,
                    "segmentation": segmentation, "area": mask_codec.area(rle),
                    "bbox": mask_codec.to_bbox(rle), "iscrowd": 0,
                    "level": ["whole", "part", "subpart"][level], "parent_id": parent,
                    "color": color, "description": text,
                })
                parent = ann_id
    categories = [{"id": i + 1, "name": c, "supercategory": LEVELS.get(c, "whole")}
                  for i, c in enumerate(CATEGORIES)]
    info = {"description": f"sambench synthetic '{domain}' data", "version": GENERATOR_VERSION,
            "seed": seed, "generator": "sambench.datasets.synth"}
    with open(tmp / "annotations.json", "w") as f:
        json.dump({"info": info, "images": images, "annotations": annotations,
                   "categories": categories, "licenses": []}, f)
    if root.exists():
        import shutil

        shutil.rmtree(root)
    tmp.rename(root)
    return root


def write_bsds_dataset(root: Path, name: str, domain: str = "shapes", n_images: int = 4,
                       seed: int = 0) -> Path:
    """Write the same kind of images in the BSDS500 layout (``images/test/<id>.jpg``,
    ``groundTruth/test/<id>.mat``), with two "annotators": one segments whole objects, the
    other wholes and their parts (as BSDS annotators disagree on granularity). Boundaries are
    ``thin(seg2bdry(Segmentation))``, as BSDS made them. The edges task's demo data."""
    from PIL import Image
    from scipy.io import savemat

    from sambench.metrics.bsds import seg2bdry
    from sambench.metrics.bsds_thin import thin

    spec = DOMAINS[domain]
    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    for sub in ("images", "groundTruth"):
        (tmp / sub / "test").mkdir(parents=True, exist_ok=True)
    for index in range(n_images):
        rng = np.random.default_rng([seed, index, sum(map(ord, domain))])
        image, objects = make_image(spec, rng)
        coarse = np.ones(image.shape[:2], np.int32)  # segments numbered from 1 (1: background)
        fine = np.ones(image.shape[:2], np.int32)
        for obj, masks in objects:
            coarse[masks[0]] = coarse.max() + 1
            for mask in masks[:2]:  # whole, then its part on top
                if mask.any():
                    fine[mask] = fine.max() + 1
        cell = np.empty((1, 2), dtype=object)
        for k, seg in enumerate((coarse, fine)):
            _, seg = np.unique(seg, return_inverse=True)  # consecutive labels from 1
            seg = seg.reshape(coarse.shape).astype(np.uint16) + 1
            cell[0, k] = {"Segmentation": seg, "Boundaries": thin(seg2bdry(seg)).astype(np.uint8)}
        image_id = f"{name}_{index:05d}"
        Image.fromarray(image).save(tmp / "images" / "test" / f"{image_id}.jpg", quality=95)
        savemat(str(tmp / "groundTruth" / "test" / f"{image_id}.mat"), {"groundTruth": cell})
    if root.exists():
        import shutil

        shutil.rmtree(root)
    tmp.rename(root)
    return root

