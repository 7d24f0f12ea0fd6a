"""Speed of automatic mask generation against the official generator, and of AR@1000 scoring.

**AMG.** A random checkpoint of ``--config`` (``tiny`` or ``vit_b``), tuned so the default
filters keep some masks (:func:`sambench.amg.testing.amg_checkpoint`), and ``--images``
synthetic images of ``--size``. The official ``SamAutomaticMaskGenerator`` and ours run in the
same interpreter (the official venv: the official code needs torchvision), interleaved, with
the same options (default: the released defaults), so both use the same torch build and
machine state; reported: images/s of each (best of ``--repeat``), the ratio, and whether the
outputs are identical (mask count, lowest matched mask IoU, largest score difference).

**AR@1000.** ``--ar-images`` synthetic images of 480x640 with 12 ground-truth masks and 1000
proposals each (random rectangles and jittered ground truth): seconds and peak memory (Python
heap, tracemalloc) of sambench's image-by-image evaluation, scaled to 1000 images, next to
pycocotools' ``COCOeval(useCats=0, maxDets=[1000])`` on ``--coco-images`` of them.

    python benchmarks/bench_amg.py --config tiny            # minutes on one CPU core
    python benchmarks/bench_amg.py --config vit_b --images 4 --size 480x640
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from sambench import masks as mask_codec
from sambench.amg.official import official_amg, official_available
from sambench.amg.testing import amg_checkpoint, compare_records, shapes_image
from sambench.metrics.proposals import average_recall, cocoeval_recall, match_image


def bench_amg(config: str, n_images: int, size: tuple[int, int], repeat: int, seed: int, options: dict) -> dict:
    ok, why = official_available()
    if not ok:
        return {"error": f"official generator unavailable: {why}"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        checkpoint = amg_checkpoint(Path(tmp) / f"{config}.pth", config, seed=seed)
        setup = time.perf_counter() - t0
        images = [shapes_image(*size, seed + i) for i in range(n_images)]
        run = official_amg(str(checkpoint), images, [options], repeat, ("official", "ours"))
    out = {"config": config, "images": n_images, "size": f"{size[1]}x{size[0]}", "repeat": repeat,
           "options": options, "torch": run["torch"], "checkpoint_setup_s": round(setup, 1)}
    for name in ("official", "ours"):
        per_repeat = [sum(times) for times in run["seconds"][name][0]]
        out[f"{name}_s_per_image"] = round(min(per_repeat) / n_images, 3)
        out[f"{name}_images_per_s"] = round(n_images / min(per_repeat), 4)
    out["speedup"] = round(out["official_s_per_image"] / out["ours_s_per_image"], 2)
    diffs = [compare_records(ref, mine) for ref, mine in zip(run["records"]["official"][0], run["records"]["ours"][0])]
    out["masks_per_image"] = [d["n_reference"] for d in diffs]
    out["identical_counts"] = all(d["n_reference"] == d["n_ours"] for d in diffs)
    out["min_matched_iou"] = min(d["min_iou"] for d in diffs)
    out["max_score_diff"] = max(d["max_score_diff"] for d in diffs)
    return out


def synthetic_proposals(n_images: int, seed: int = 0, height: int = 480, width: int = 640,
                        n_gt: int = 12, n_proposals: int = 1000):
    """(ground-truth dict, per-image proposals): boxes drawn once into a pool of RLEs, reused."""
    rng = np.random.default_rng(seed)

    def box_mask(x0, y0, x1, y1):
        mask = np.zeros((height, width), bool)
        mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        return mask

    def random_box():
        w, h = rng.integers(4, width // 2), rng.integers(4, height // 2)
        x, y = rng.integers(0, width - w), rng.integers(0, height - h)
        return [int(x), int(y), int(x + w), int(y + h)]

    pool = [mask_codec.encode(box_mask(*random_box())) for _ in range(2 * n_proposals)]
    images, anns, proposals = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "height": height, "width": width})
        boxes = [random_box() for _ in range(n_gt)]
        for box in boxes:
            rle = mask_codec.encode(box_mask(*box))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "segmentation": rle,
                         "area": float(mask_codec.area(rle)), "iscrowd": 0})
        mine = [pool[i] for i in rng.choice(len(pool), n_proposals - 5 * n_gt, replace=False)]
        for box in boxes:  # some near-duplicates of each ground-truth mask
            for _ in range(5):
                jitter = rng.integers(-8, 9, 4)
                mine.append(mask_codec.encode(box_mask(*(np.array(box) + jitter))))
        scores = rng.random(len(mine))
        proposals.append([{"image_id": image_id, "category_id": 1, "score": float(s), "segmentation": r}
                          for r, s in zip(mine, scores)])
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}, proposals


def bench_ar(n_images: int, coco_images: int) -> dict:
    gt, proposals = synthetic_proposals(n_images)
    by_image: dict = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    rows = []
    for image, dts in zip(gt["images"], proposals):
        anns = by_image[image["id"]]
        rows += match_image([a["segmentation"] for a in anns], [a["area"] for a in anns], [False] * len(anns),
                            [None] * len(anns), [d["segmentation"] for d in dts], [d["score"] for d in dts], 1000)
    ours = average_recall(rows)["all"]
    ours_s = time.perf_counter() - t0
    ours_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    out = {"ar_images": n_images, "proposals_per_image": len(proposals[0]), "gt_per_image": 12,
           "ours_s_per_1000_images": round(ours_s / n_images * 1000, 1),
           "ours_peak_mb": round(ours_peak / 2 ** 20, 1), "ours_ar@1000": ours}
    if coco_images:
        subset_gt = {**gt, "images": gt["images"][:coco_images],
                     "annotations": [a for a in gt["annotations"] if a["image_id"] <= coco_images]}
        flat = [d for dts in proposals[:coco_images] for d in dts]
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        reference = cocoeval_recall(subset_gt, flat, 1000)["all"]
        coco_s = time.perf_counter() - t0
        coco_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        sub_rows = rows[:12 * coco_images]
        out.update({"coco_images": coco_images, "pycocotools_s_per_1000_images": round(coco_s / coco_images * 1000, 1),
                    "pycocotools_peak_mb": round(coco_peak / 2 ** 20, 1),
                    "pycocotools_peak_mb_per_1000_images": round(coco_peak / 2 ** 20 / coco_images * 1000, 1),
                    "ar_difference_on_subset": abs(average_recall(sub_rows)["all"] - reference)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", choices=["tiny", "vit_b"])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", default="480x640", help="HxW of the synthetic images")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--options", default="{}", help="AMG options as JSON (default: the released defaults)")
    parser.add_argument("--ar-images", type=int, default=50)
    parser.add_argument("--coco-images", type=int, default=10)
    parser.add_argument("--skip-amg", action="store_true")
    parser.add_argument("--skip-ar", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    result = {}
    if not args.skip_amg:
        result["amg"] = bench_amg(args.config, args.images, (height, width), args.repeat, args.seed,
                                  json.loads(args.options))
    if not args.skip_ar:
        result["ar"] = bench_ar(args.ar_images, args.coco_images)
    if args.json:
        print(json.dumps(result))
        return
    for part, values in result.items():
        print(f"[{part}]")
        for key, value in values.items():
            print(f"  {key:36s} {value}")


if __name__ == "__main__":
    main()
