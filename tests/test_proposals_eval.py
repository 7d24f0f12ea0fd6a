"""Class-agnostic AR@K image by image (sambench.metrics.proposals) against pycocotools' recall.

The fixtures are LVIS-style (categories with frequency groups) with what makes COCO's matching
subtle: crowd masks, duplicate ground truth (ties go to the later mask), duplicate proposals
with equal scores, annotation areas that differ from pixel areas and sit exactly on the 32² and
96² bounds, and more proposals than K. Every bucket must equal pycocotools' ``eval["recall"]``
(useCats=0, maxDets=[K]) averaged over thresholds, to 1e-9; also faster-coco-eval's.
"""
from __future__ import annotations

import numpy as np
import pytest

from sambench import masks as mask_codec
from sambench.metrics.proposals import (BUCKETS, IOU_THRESHOLDS, average_recall, cocoeval_recall,
                                        gt_buckets, match_image)

H, W = 120, 160


def rect(x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def fixture(seed: int, n_images: int = 3, n_proposals: int = 150):
    """(gt dict, proposals list): LVIS-style ground truth and scored proposals."""
    rng = np.random.default_rng(seed)
    cats = [{"id": i + 1, "name": f"c{i}", "frequency": "rfc"[i % 3]} for i in range(6)]
    images, anns, props = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "height": H, "width": W, "file_name": f"{image_id}.png"})
        masks = []
        for k in range(10):
            w, h = rng.integers(4, 110), rng.integers(4, 90)
            x, y = rng.integers(0, W - w), rng.integers(0, H - h)
            masks.append(rect(x, y, x + w, y + h))
        masks.append(masks[3].copy())  # a duplicate annotation: ties go to the later one
        masks.append(rect(10, 10, 42, 42))  # pixel area 1024 = 32²: small and medium
        masks.append(rect(20, 5, 116, 101))  # 9216 = 96²: medium and large
        for k, mask in enumerate(masks):
            area = float(mask.sum())
            if k % 4 == 1:
                area += rng.uniform(-3, 3)  # a polygon area: not the pixel count
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 7)),
                         "segmentation": mask_codec.encode(mask), "area": area,
                         "iscrowd": int(k == 5)})
        for k in range(n_proposals):
            if k % 3 == 0:  # a jittered ground-truth mask: IoUs around the thresholds
                base = np.argwhere(masks[k % len(masks)])
                (y0, x0), (y1, x1) = base.min(0), base.max(0) + 1
                dx, dy = rng.integers(-4, 5, 2)
                mask = rect(max(0, x0 + dx), max(0, y0 + dy), min(W, x1 + dx), min(H, y1 + dy))
            else:
                w, h = rng.integers(2, 120), rng.integers(2, 100)
                x, y = rng.integers(0, W - w), rng.integers(0, H - h)
                mask = rect(x, y, x + w, y + h)
            score = float(np.round(rng.random(), 1))  # many equal scores
            props.append({"image_id": image_id, "category_id": 1, "score": score,
                          "segmentation": mask_codec.encode(mask)})
        props.append(dict(props[-1]))  # an exact duplicate proposal
    return {"images": images, "annotations": anns, "categories": cats}, props


def ours(gt: dict, proposals: list[dict], max_dets: int) -> dict:
    """AR per bucket the way the proposals task computes it: per image, pycocotools' GT order."""
    freq = {c["id"]: c["frequency"] for c in gt["categories"]}
    rows = []
    for img in gt["images"]:
        anns = sorted((a for a in gt["annotations"] if a["image_id"] == img["id"]), key=lambda a: a["category_id"])
        dts = [p for p in proposals if p["image_id"] == img["id"]]
        rows += match_image([a["segmentation"] for a in anns], [a["area"] for a in anns],
                            [bool(a["iscrowd"]) for a in anns], [freq[a["category_id"]] for a in anns],
                            [d["segmentation"] for d in dts], [d["score"] for d in dts], max_dets)
    return average_recall(rows)


@pytest.mark.parametrize("seed,max_dets,n_proposals", [(0, 100, 150), (1, 1000, 1100), (2, 10, 40)])
def test_ar_equals_pycocotools_recall(seed, max_dets, n_proposals):
    gt, proposals = fixture(seed, n_images=3 if max_dets < 1000 else 2, n_proposals=n_proposals)
    mine = ours(gt, proposals, max_dets)
    reference = cocoeval_recall(gt, proposals, max_dets)
    assert set(reference) == set(BUCKETS)
    assert all(reference[b] is not None and reference[b] > 0 for b in BUCKETS)
    assert any(reference[b] < 1 for b in BUCKETS)  # not a trivial fixture
    for bucket in BUCKETS:
        assert abs(mine[bucket] - reference[bucket]) <= 1e-9, (bucket, mine[bucket], reference[bucket])
    print(f"seed {seed} K={max_dets}: max |ours - pycocotools| = "
          f"{max(abs(mine[b] - reference[b]) for b in BUCKETS):.1e}", {b: round(mine[b], 4) for b in BUCKETS})


def test_ar_equals_faster_coco_eval():
    pytest.importorskip("faster_coco_eval")
    gt, proposals = fixture(3, n_images=3)
    mine = ours(gt, proposals, 100)
    reference = cocoeval_recall(gt, proposals, 100, implementation="faster_coco_eval")
    for bucket in BUCKETS:
        assert abs(mine[bucket] - reference[bucket]) <= 1e-9, (bucket, mine[bucket], reference[bucket])


def test_hand_checked_image():
    """Two masks, three proposals, worked out by hand.

    GT a: 40x40 square (area 1600, medium), GT b: 10x10 (small), GT c: crowd. Proposal 1
    (score 0.9) is a shifted by 4 px: IoU 36*40 / (2*1600 - 1440) = 0.818...; proposal 2 (0.8) is
    b exactly; proposal 3 (0.7) is a exactly but a is taken at thresholds <= 0.80, so it matches a
    only at 0.85..0.95, where proposal 1 did not. So a is matched at every threshold, b too.
    """
    a, b, c = rect(0, 0, 40, 40), rect(100, 100, 110, 110), rect(50, 0, 90, 30)
    shifted = rect(4, 0, 44, 40)
    rows = match_image([mask_codec.encode(m) for m in (a, b, c)], [1600.0, 100.0, 1200.0], [False, False, True],
                       [None, None, None], [mask_codec.encode(m) for m in (shifted, b, a)], [0.9, 0.8, 0.7])
    assert rows[0]["matched"]["all"] == [1] * 10 and rows[0]["matched"]["medium"] == [1] * 10
    assert rows[1]["matched"]["small"] == [1] * 10 and rows[2]["matched"] == {}
    assert rows[0]["best_iou"] == 1.0
    # Without the exact copy of a, a is matched only up to IoU 0.80.
    rows = match_image([mask_codec.encode(m) for m in (a, b)], [1600.0, 100.0], [False, False], [None, None],
                       [mask_codec.encode(m) for m in (shifted, b)], [0.9, 0.8])
    iou = 36 * 40 / (2 * 1600 - 36 * 40)
    assert rows[0]["matched"]["all"] == [int(iou >= t) for t in IOU_THRESHOLDS]
    ar = average_recall(rows)
    assert ar["all"] == pytest.approx((sum(iou >= t for t in IOU_THRESHOLDS) + 10) / 20)
    assert ar["large"] is None and ar["rare"] is None


def test_equal_ious_go_to_the_later_mask():
    """A proposal with the same IoU (0.5) to two masks takes the later one, as pycocotools'
    scan does, which leaves the first free for a later proposal: both matched at IoU 0.5."""
    gts = [rect(0, 0, 20, 20), rect(20, 0, 40, 20)]
    proposals = [rect(0, 0, 40, 20), rect(0, 0, 20, 20)]
    rows = match_image([mask_codec.encode(m) for m in gts], [400.0, 400.0], [False, False], [None, None],
                       [mask_codec.encode(m) for m in proposals], [0.9, 0.8])
    assert rows[0]["matched"]["all"] == [1] * 10
    assert rows[1]["matched"]["all"] == [1] + [0] * 9
    gt = {"images": [{"id": 1, "height": H, "width": W}], "categories": [{"id": 1, "name": "x"}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": mask_codec.encode(m)}
                          for i, m in enumerate(gts)]}
    dts = [{"image_id": 1, "category_id": 1, "score": s, "segmentation": mask_codec.encode(m)}
           for m, s in zip(proposals, (0.9, 0.8))]
    assert cocoeval_recall(gt, dts, 10)["all"] == average_recall(rows)["all"] == pytest.approx(11 / 20)


def test_top_k_and_score_order():
    """Only the K best-scored proposals count; among equal scores the earlier one comes first."""
    a = rect(0, 0, 20, 20)
    rle = mask_codec.encode(a)
    empty = mask_codec.encode(np.zeros((H, W), bool))
    rows = match_image([rle], [400.0], [False], [None], [empty, rle], [0.5, 0.4], max_dets=1)
    assert rows[0]["matched"]["all"] == [0] * 10
    rows = match_image([rle], [400.0], [False], [None], [empty, rle], [0.5, 0.5], max_dets=1)
    assert rows[0]["matched"]["all"] == [0] * 10
    rows = match_image([rle], [400.0], [False], [None], [rle, empty], [0.5, 0.5], max_dets=1)
    assert rows[0]["matched"]["all"] == [1] * 10


def test_buckets_use_inclusive_bounds():
    assert gt_buckets(1024, False, "r") == ["all", "small", "medium", "rare"]
    assert gt_buckets(9216, False, None) == ["all", "medium", "large"]
    assert gt_buckets(50, True, "f") == []
