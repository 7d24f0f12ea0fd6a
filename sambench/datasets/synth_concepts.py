"""Synthetic concept-segmentation data in the SA-Co format (the concept task's demo data).

The images are :mod:`sambench.datasets.synth`'s (same generator, same seeds). Each image is
paired with every noun phrase of a small vocabulary: the domain's shape names ("disc") and
colour + shape phrases ("red disc") of the objects drawn in any image of the set. A phrase
present in the image gives a positive pair whose instances are all visible objects it names;
an absent one a negative pair (no instances), as SA-Co builds its negatives.

Two annotator files, as SA-Co/Gold has three: ``_a`` annotates every visible instance; ``_b``
misses instances under ``SMALL_AREA`` pixels (annotators disagree on tiny, occluded objects)
and marks one pair per three images as not exhaustive, so the oracle choice and the
exhaustiveness rule of the metric are exercised.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.synth import DOMAINS, MIN_AREA, make_image

SMALL_AREA = 400  # annotator b misses visible instances smaller than this (pixels)
CATEGORY = {"id": 1, "name": "object"}  # SA-Co files carry one category; the phrase is the concept


def _phrases(objects_per_image) -> list[str]:
    shapes = sorted({obj.shape for objects in objects_per_image for obj, _ in objects})
    coloured = sorted({f"{obj.colors[0]} {obj.shape}" for objects in objects_per_image for obj, _ in objects})
    return shapes + coloured


def _names(obj) -> set[str]:
    return {obj.shape, f"{obj.colors[0]} {obj.shape}"}


def write_saco_dataset(root: Path, name: str, domain: str = "shapes", n_images: int = 4,
                       seed: int = 0) -> Path:
    """Write ``root/images/*.png`` and ``root/annotations/<name>_{a,b}.json`` (SA-Co)."""
    from PIL import Image

    spec = DOMAINS[domain]
    root = Path(root)
    tmp = root.with_name(root.name + ".tmp")
    (tmp / "images").mkdir(parents=True, exist_ok=True)
    (tmp / "annotations").mkdir(exist_ok=True)
    drawn = []
    for index in range(n_images):
        rng = np.random.default_rng([seed, index, sum(map(ord, domain))])
        image, objects = make_image(spec, rng)
        file_name = f"{name}_{index:05d}.png"
        Image.fromarray(image).save(tmp / "images" / file_name)
        drawn.append((file_name, [(obj, masks[0]) for obj, masks in objects
                                  if np.count_nonzero(masks[0]) >= MIN_AREA]))
    files = {"a": ([], []), "b": ([], [])}
    for index, (file_name, objects) in enumerate(drawn):
        for k, phrase in enumerate(_phrases([objs for _, objs in drawn])):
            pair_id = len(files["a"][0]) + 1
            masks = [mask for obj, mask in objects if phrase in _names(obj)]
            for annotator, (images, annotations) in files.items():
                kept = masks if annotator == "a" else [m for m in masks if np.count_nonzero(m) >= SMALL_AREA]
                exhaustive = not (annotator == "b" and index % 3 == 0 and k == 0)
                images.append({"id": pair_id, "file_name": file_name, "height": spec.height,
                               "width": spec.width, "text_input": phrase,
                               "is_instance_exhaustive": exhaustive, "queried_category": 1})
                for mask in kept:
                    rle = mask_codec.encode(mask)
                    annotations.append({"id": len(annotations) + 1, "image_id": pair_id,
                                        "category_id": 1, "segmentation": rle,
                                        "area": mask_codec.area(rle), "bbox": mask_codec.to_bbox(rle),
                                        "iscrowd": 0})
    info = {"description": f"sambench synthetic concept data ('{domain}' images)", "seed": seed,
            "generator": "sambench.datasets.synth_concepts"}
    for annotator, (images, annotations) in files.items():
        with open(tmp / "annotations" / f"{name}_{annotator}.json", "w") as f:
            json.dump({"info": {**info, "annotator": annotator}, "images": images,
                       "annotations": annotations, "categories": [CATEGORY]}, f)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


__all__ = ["write_saco_dataset", "SMALL_AREA"]
