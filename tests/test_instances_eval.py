"""COCO / LVIS mask AP: our evaluators against the reference APIs on fixtures.

The LVIS check is the real one: our LVIS path (faster-coco-eval's LVIS mode plus our per-image
limit) must equal the LVIS API (PyPI ``lvis`` 0.5.3, run with NumPy's removed ``np.float``
alias restored) on LVIS-format fixtures with all three frequency groups, federated negatives,
not-exhaustive categories and images over the 300-detection limit.
"""
import copy
import json

import numpy as np
import pytest

from sambench import masks as mask_codec
from sambench.metrics.coco_eval import coco_segm_ap, limit_per_image, lvis_segm_ap, segm_ap

H, W = 120, 160
# Sizes straddling COCO's 32² and 96² area thresholds: small, medium, large.
SIDES = [(12, 18), (28, 30), (45, 50), (70, 60), (110, 100)]


def _ellipse(rng, side) -> np.ndarray:
    h, w = side
    cy, cx = rng.integers(h // 2, H - h // 2 + 1), rng.integers(w // 2, W - w // 2 + 1)
    ys, xs = np.mgrid[0:H, 0:W]
    if rng.random() < 0.5:
        return (((ys - cy) / (h / 2)) ** 2 + ((xs - cx) / (w / 2)) ** 2) <= 1
    return (abs(ys - cy) <= h // 2) & (abs(xs - cx) <= w // 2)


def _polygon(mask: np.ndarray) -> list:
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def make_gt(seed: int = 0, n_images: int = 5, lvis: bool = False) -> dict:
    """A small COCO- (or LVIS-) format GT: several categories with gaps in their ids, polygon
    and RLE masks of every size, a crowd region per image (COCO) or federated lists (LVIS)."""
    rng = np.random.default_rng(seed)
    cat_ids = [1, 3, 7, 12, 20, 21]
    cats = [{"id": c, "name": f"cat{c}"} for c in cat_ids]
    if lvis:
        for cat, freq in zip(cats, "rrccff"):
            cat["frequency"] = freq
    images, anns = [], []
    for i in range(n_images):
        image_id = 100 + 7 * i
        img = {"id": image_id, "file_name": f"{image_id}.png", "height": H, "width": W}
        present = set()
        for _ in range(int(rng.integers(3, 7))):
            mask = _ellipse(rng, SIDES[int(rng.integers(len(SIDES)))])
            cat = int(rng.choice(cat_ids))
            present.add(cat)
            rle = mask_codec.encode(mask)
            seg = _polygon(mask) if rng.random() < 0.5 else rle
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                   "segmentation": seg, "area": float(mask_codec.area(mask_codec.from_annotation(seg, H, W))),
                   "bbox": mask_codec.to_bbox(rle)}
            if not lvis:
                ann["iscrowd"] = 0
            anns.append(ann)
        if not lvis:  # a crowd region: uncompressed RLE, as COCO stores crowds
            crowd = _ellipse(rng, SIDES[3])
            counts = _uncompressed_counts(crowd)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.choice(cat_ids)),
                         "segmentation": {"size": [H, W], "counts": counts}, "iscrowd": 1,
                         "area": float(crowd.sum()), "bbox": mask_codec.to_bbox(mask_codec.encode(crowd))})
        else:
            absent = [c for c in cat_ids if c not in present]
            img["neg_category_ids"] = absent[: len(absent) // 2 + 1]
            img["not_exhaustive_category_ids"] = sorted(rng.choice(sorted(present), 1).tolist())
        images.append(img)
    return {"images": images, "annotations": anns, "categories": cats}


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(np.uint8)  # column-major, as COCO RLE
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] == 1 else counts


def make_results(gt: dict, seed: int = 1, extra: int = 6, crowded_image=None, n_crowded: int = 0) -> list[dict]:
    """Detections: shifted copies of GT masks (some with the wrong category), random false
    positives, tied scores, and optionally one image with ``n_crowded`` detections."""
    rng = np.random.default_rng(seed)
    cat_ids = [c["id"] for c in gt["categories"]]
    out = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd"):
            continue
        mask = mask_codec.decode(mask_codec.from_annotation(ann["segmentation"], H, W))
        for _ in range(int(rng.integers(1, 3))):
            dy, dx = rng.integers(-6, 7, size=2)
            shifted = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
            cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice(cat_ids))
            out.append(_det(ann["image_id"], cat, shifted, rng))
    for img in gt["images"]:
        count = n_crowded if img["id"] == crowded_image else extra
        for _ in range(count):
            out.append(_det(img["id"], int(rng.choice(cat_ids)),
                            _ellipse(rng, SIDES[int(rng.integers(len(SIDES)))]), rng))
    for r in out[::7]:
        r["score"] = 0.5  # ties: the order of equal scores must be handled alike
    return out


def _det(image_id, cat, mask, rng) -> dict:
    return {"image_id": image_id, "category_id": cat, "segmentation": mask_codec.encode(mask),
            "score": round(float(rng.random()), 3)}


def pycocotools_stats(gt: dict, results: list[dict], tmp_path, img_ids=None) -> np.ndarray:
    """pycocotools' 12 segm stats, computed the textbook way from files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_file, res_file = tmp_path / "gt.json", tmp_path / "res.json"
    gt_file.write_text(json.dumps(gt))
    res_file.write_text(json.dumps(results))
    coco_gt = COCO(str(gt_file))
    ev = COCOeval(coco_gt, coco_gt.loadRes(str(res_file)), "segm")
    if img_ids is not None:
        ev.params.imgIds = img_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


COCO_NAMES = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar@1", "ar@10", "ar@100",
              "ar@100_small", "ar@100_medium", "ar@100_large"]


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_ap_equals_pycocotools(seed, tmp_path):
    gt = make_gt(seed)
    results = make_results(gt, seed + 10)
    ours = coco_segm_ap(copy.deepcopy(gt), results)
    ref = pycocotools_stats(gt, results, tmp_path)
    assert all(ours[n] is not None for n in COCO_NAMES)
    assert max(abs(ours[n] - ref[i]) for i, n in enumerate(COCO_NAMES)) <= 1e-9
    assert 0 < ours["ap"] < 1


def test_coco_ap_on_an_image_subset_and_without_detections(tmp_path):
    gt = make_gt(3)
    results = make_results(gt, 4)
    subset = [gt["images"][0]["id"], gt["images"][2]["id"]]
    ours = coco_segm_ap(gt, [r for r in results if r["image_id"] in subset], img_ids=subset)
    ref = pycocotools_stats(gt, results, tmp_path, img_ids=subset)
    assert max(abs(ours[n] - ref[i]) for i, n in enumerate(COCO_NAMES)) <= 1e-9
    empty = coco_segm_ap(gt, [])
    assert empty["ap"] == 0.0 and empty["ar@100"] == 0.0


def lvis_api_results(gt: dict, results: list[dict], tmp_path, monkeypatch, max_dets=300) -> dict:
    """The LVIS API's summary; its accumulate() needs the ``np.float`` alias NumPy 1.24 removed."""
    pytest.importorskip("lvis")
    monkeypatch.setattr(np, "float", float, raising=False)
    from lvis import LVIS, LVISEval, LVISResults

    gt_file = tmp_path / "lvis_gt.json"
    gt_file.write_text(json.dumps(gt))
    lvis_gt = LVIS(str(gt_file))
    ev = LVISEval(lvis_gt, LVISResults(lvis_gt, copy.deepcopy(results), max_dets=max_dets), "segm")
    ev.params.max_dets = max_dets
    ev.run()
    return dict(ev.results)


LVIS_NAMES = {"ap": "AP", "ap50": "AP50", "ap75": "AP75", "ap_small": "APs", "ap_medium": "APm",
              "ap_large": "APl", "ap_rare": "APr", "ap_common": "APc", "ap_frequent": "APf"}


@pytest.mark.parametrize("seed,max_dets", [(0, 300), (5, 300), (9, 8)])
def test_lvis_ap_equals_the_lvis_api(seed, max_dets, tmp_path, monkeypatch):
    gt = make_gt(seed, lvis=True)
    crowded = gt["images"][1]["id"]
    results = make_results(gt, seed + 20, crowded_image=crowded, n_crowded=max_dets + 15)
    assert sum(r["image_id"] == crowded for r in results) > max_dets  # the per-image limit bites
    ref = lvis_api_results(gt, results, tmp_path, monkeypatch, max_dets)
    ours = lvis_segm_ap(gt, results, max_dets=max_dets)
    names = dict(LVIS_NAMES, **{f"ar@{max_dets}": f"AR@{max_dets}",
                                **{f"ar@{max_dets}_{s}": f"AR{s[0]}@{max_dets}" for s in ("small", "medium", "large")}})
    assert set(ours) == set(names)
    diffs = {n: abs(ours[n] - float(ref[theirs])) for n, theirs in names.items()}
    assert max(diffs.values()) <= 1e-9, diffs
    assert 0 < ours["ap"] < 1 and all(ours[n] is not None for n in ("ap_rare", "ap_common", "ap_frequent"))


def test_the_fixture_exercises_both_federated_rules():
    """Emptying not_exhaustive_category_ids, or making every absent category a negative,
    changes the LVIS AP: the equality above covers both rules, not a COCO-like special case."""
    gt = make_gt(0, lvis=True)
    results = make_results(gt, 20)
    base = segm_ap(gt, results)
    assert {"ap_rare", "ap_common", "ap_frequent"} <= set(base)
    exhaustive, all_negative = copy.deepcopy(gt), copy.deepcopy(gt)
    for img in exhaustive["images"]:
        img["not_exhaustive_category_ids"] = []
    for img in all_negative["images"]:
        img["neg_category_ids"] = [c["id"] for c in gt["categories"]]
    assert abs(lvis_segm_ap(exhaustive, results)["ap"] - base["ap"]) > 1e-3
    assert abs(lvis_segm_ap(all_negative, results)["ap"] - base["ap"]) > 1e-3


def test_limit_per_image_keeps_the_top_scores_stably():
    rows = [{"image_id": 1, "score": s, "k": k} for k, s in enumerate([0.1, 0.5, 0.5, 0.9, 0.5])]
    rows.append({"image_id": 2, "score": 0.0, "k": 9})
    kept = limit_per_image(rows, 3)
    assert [r["k"] for r in kept] == [3, 1, 2, 9]
