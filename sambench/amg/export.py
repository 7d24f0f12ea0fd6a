"""AMG output as SA-1B JSON: one file per image, readable by sambench's ``sa1b`` adapter.

``{"image": {image_id, width, height, file_name}, "annotations": [{id, segmentation (COCO RLE,
counts as str), bbox (XYWH), area, predicted_iou, stability_score, crop_box (XYWH),
point_coords}]}`` (the segment-anything README). ``file_name`` is the image's path relative to
the JSON's folder (SA-1B's own files have just the name, the image lying beside the JSON).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from sambench.errors import SambenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class ImageJob:
    image: Path  # the input image
    out: Path  # the SA-1B JSON to write


def image_id(path: Path) -> Union[int, str]:
    """SA-1B's integer id for ``sa_<n>.jpg`` and for all-digit names (COCO's), else the name."""
    stem = path.stem
    match = re.fullmatch(r"(?:sa_)?(\d+)", stem)
    return int(match[1]) if match else stem


def find_images(inputs: Iterable[str], out_dir: Path) -> list[ImageJob]:
    """Image files named or found (recursively) under folders, each with its JSON path under
    ``out_dir`` (the folder structure below a given folder is kept). Raises on a missing input,
    on no image at all, and when two images would write the same JSON."""
    jobs: dict[Path, Path] = {}
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            pairs = [(p, out_dir / p.relative_to(path).with_suffix(".json")) for p in found]
        elif path.is_file():
            pairs = [(path, out_dir / path.with_suffix(".json").name)]
        else:
            raise SambenchError(f"no such image or folder: {spec}")
        for image, out in pairs:
            if out in jobs and jobs[out] != image:
                raise SambenchError(f"{jobs[out]} and {image} would both write {out}")
            jobs[out] = image
    if not jobs:
        raise SambenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(inputs)}")
    return [ImageJob(image, out) for out, image in jobs.items()]


def sa1b_json(records: list[dict], image_path: Path, out_path: Path, height: int, width: int) -> dict:
    """The SA-1B document of one image from AMG records (``output_mode="coco_rle"``)."""
    annotations = []
    for k, r in enumerate(records):
        annotations.append({"id": k, "segmentation": r["segmentation"], "bbox": [float(v) for v in r["bbox"]],
                            "area": int(r["area"]), "predicted_iou": r["predicted_iou"],
                            "stability_score": r["stability_score"],
                            "crop_box": [float(v) for v in r["crop_box"]], "point_coords": r["point_coords"]})
    file_name = os.path.relpath(Path(image_path).resolve(), Path(out_path).resolve().parent)
    return {"image": {"image_id": image_id(Path(image_path)), "width": int(width), "height": int(height),
                      "file_name": Path(file_name).as_posix()},
            "annotations": annotations}


__all__ = ["ImageJob", "find_images", "sa1b_json", "image_id", "IMAGE_SUFFIXES"]
