"""Class-agnostic mask AR@K of object proposals, image by image, with COCO's matching rules.

The SAM paper scores proposals by mask AR@1000 on LVIS v1 (§7.3, App. D.3): all, small /
medium / large, and frequent / common / rare, each group "measured against a ground truth set
containing just the corresponding LVIS categories". Our reading (docs/protocols.md,
[UNCONFIRMED] that the authors did exactly this; their code is unpublished): pycocotools'
``COCOeval(iouType="segm")`` with ``useCats=0`` (proposals and ground truth pooled over
categories: recall over instances), ``maxDets=[K]``, IoU thresholds 0.50:0.05:0.95 and the COCO
area ranges, a group's AR computed on the ground truth of that group only.

pycocotools cannot report AR@1000 through its summary and keeps ~2 KB per proposal in memory
(~40 GB for LVIS val at 1000 proposals an image), so this module reproduces its arithmetic per
image and keeps only which ground-truth masks were matched:

- proposals are ranked by score (stable, so ties keep their order) and the top K kept;
- ground truth is *ignored* when crowd (pycocotools sets ``ignore = iscrowd``) or, for an area
  range, when its annotation ``area`` lies outside it (inclusive bounds); group buckets ignore
  the other groups' masks;
- greedy matching in score order: a proposal takes the still unmatched, non-ignored ground truth
  with the highest IoU ≥ t (on ties the later one, as pycocotools' scan does). Matches to
  ignored ground truth (crowd, other size or group) take nothing from the recall's numerator
  or denominator, and pycocotools only lets a proposal fall back to ignored ground truth when
  no non-ignored one qualifies, so the recall can be computed on the non-ignored masks alone;
  unmatched proposals outside the area range only change precision, which AR does not use;
- recall at t = matched non-ignored masks / non-ignored masks, summed over images; AR = the
  mean over the 10 thresholds; None when a bucket has no ground truth.

tests/test_proposals_eval.py proves every bucket equal to pycocotools' ``eval["recall"]`` (and
faster-coco-eval's) to 1e-9 on fixtures with crowds, ties, boundary areas and > K proposals.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

# pycocotools' Params: np.linspace, not 0.5 + 0.05 * i (1 ULP apart).
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
AREA_RANGES = {"all": (0, 1e5 ** 2), "small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2),
               "large": (96 ** 2, 1e5 ** 2)}
FREQUENCY_GROUPS = {"f": "frequent", "c": "common", "r": "rare"}
BUCKETS = tuple(AREA_RANGES) + tuple(FREQUENCY_GROUPS.values())


def _rles(rles: Sequence[dict]) -> list[dict]:
    """pycocotools wants ``bytes`` counts."""
    out = []
    for r in rles:
        counts = r["counts"]
        out.append({"size": list(r["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    return out


def gt_buckets(area: float, crowd: bool, group: Optional[str]) -> list[str]:
    """The buckets in which a ground-truth mask counts (is not ignored)."""
    if crowd:
        return []
    out = [name for name, (lo, hi) in AREA_RANGES.items() if lo <= area <= hi]
    if group in FREQUENCY_GROUPS:
        out.append(FREQUENCY_GROUPS[group])
    return out


def match_image(gt_rles: Sequence[dict], gt_areas: Sequence[float], gt_crowd: Sequence[bool],
                gt_groups: Sequence[Optional[str]], proposal_rles: Sequence[dict],
                proposal_scores: Sequence[float], max_dets: int = 1000) -> list[dict]:
    """One image: for each ground-truth mask, the buckets it counts in and whether it was
    matched at each IoU threshold there (COCO greedy matching, see the module docstring).

    Returns one dict per ground-truth mask, in input order: ``{"matched": {bucket: [0/1 x 10]},
    "best_iou": float}`` (crowd masks get no buckets). ``best_iou`` is the highest IoU with any
    of the top ``max_dets`` proposals.
    """
    n_gt = len(gt_rles)
    buckets = [gt_buckets(a, c, g) for a, c, g in zip(gt_areas, gt_crowd, gt_groups)]
    out = [{"matched": {b: [0] * len(IOU_THRESHOLDS) for b in bs}, "best_iou": 0.0} for bs in buckets]
    if n_gt == 0 or len(proposal_rles) == 0:
        return out
    order = np.argsort(-np.asarray(proposal_scores, np.float64), kind="mergesort")[:max_dets]
    ious = np.asarray(mask_utils.iou(_rles([proposal_rles[i] for i in order]), _rles(gt_rles),
                                     [int(c) for c in gt_crowd]), np.float64).reshape(len(order), n_gt)
    for g, row in enumerate(out):
        row["best_iou"] = float(ious[:, g].max())
    names = sorted({b for bs in buckets for b in bs})
    if not names:
        return out
    # One lane per (bucket, threshold): which masks it may match and which are still free.
    eligible = np.array([[name in bs for bs in buckets] for name in names])  # (B, G)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    lane_eligible = np.repeat(eligible, len(thresholds), axis=0)  # (B*T, G)
    lane_threshold = np.tile(thresholds, len(names))[:, None]
    free = lane_eligible.copy()
    for d in np.flatnonzero(ious.max(axis=1) >= thresholds[0]):
        cand = free & (ious[d][None, :] >= lane_threshold)
        lanes = np.flatnonzero(cand.any(axis=1))
        if not len(lanes):
            continue
        values = np.where(cand[lanes], ious[d][None, :], -1.0)
        best = values.max(axis=1, keepdims=True)
        last = n_gt - 1 - np.argmax((values == best)[:, ::-1], axis=1)  # ties: the later mask
        free[lanes, last] = False
    matched = (lane_eligible & ~free).reshape(len(names), len(thresholds), n_gt)
    for b, name in enumerate(names):
        for g in np.flatnonzero(eligible[b]):
            out[g]["matched"][name] = matched[b, :, g].astype(int).tolist()
    return out


def average_recall(gt_matches: Iterable[dict], buckets: Sequence[str] = BUCKETS) -> dict[str, Optional[float]]:
    """AR per bucket from :func:`match_image` rows of every image (None: no ground truth)."""
    totals = {b: np.zeros(len(IOU_THRESHOLDS)) for b in buckets}
    counts = dict.fromkeys(buckets, 0)
    for row in gt_matches:
        for name, flags in row["matched"].items():
            if name in totals:
                totals[name] += flags
                counts[name] += 1
    return {b: (float(np.mean(totals[b] / counts[b])) if counts[b] else None) for b in buckets}


def cocoeval_recall(gt: dict, proposals: list[dict], max_dets: int = 1000,
                    implementation: str = "pycocotools") -> dict[str, Optional[float]]:
    """The reference: AR per bucket from ``COCOeval(useCats=0, maxDets=[max_dets])``'s recall
    array (pycocotools or faster-coco-eval), a group's AR from a run on that group's ground
    truth. ``gt`` is a COCO/LVIS dict, ``proposals`` COCO results (category ids of ``gt``)."""
    import contextlib
    import io

    from sambench.metrics.coco_eval import prepare_gt

    gt = prepare_gt(gt)
    cats = {c["id"]: c.get("frequency") for c in gt["categories"]}
    out = _cocoeval_areas(gt, proposals, max_dets, implementation)
    for code, name in FREQUENCY_GROUPS.items():
        if any(f == code for f in cats.values()):
            subset = {**gt, "annotations": [a for a in gt["annotations"] if cats.get(a["category_id"]) == code]}
            with contextlib.redirect_stdout(io.StringIO()):
                out[name] = _cocoeval_areas(subset, proposals, max_dets, implementation)["all"]
    return out


def _cocoeval_areas(gt: dict, proposals: list[dict], max_dets: int, implementation: str) -> dict:
    import contextlib
    import io

    if implementation == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(p, segmentation=dict(p["segmentation"])) for p in proposals])
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.useCats = 0
        ev.params.maxDets = [max_dets]
        ev.params.areaRng = [list(r) for r in AREA_RANGES.values()]
        ev.params.areaRngLbl = list(AREA_RANGES)
        ev.evaluate()
        ev.accumulate()
    recall = np.asarray(ev.eval["recall"])[:, 0, :, 0]  # (T, A)
    return {name: (float(np.mean(recall[:, a])) if (recall[:, a] > -1).all() else None)
            for a, name in enumerate(AREA_RANGES)}


__all__ = ["match_image", "average_recall", "cocoeval_recall", "gt_buckets", "IOU_THRESHOLDS",
           "AREA_RANGES", "FREQUENCY_GROUPS", "BUCKETS"]
