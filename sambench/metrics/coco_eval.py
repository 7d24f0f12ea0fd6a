"""Mask AP of a COCO results list with the reference rules: COCO (pycocotools) and LVIS.

COCO: pycocotools' ``COCOeval(iouType="segm")`` itself, the implementation papers report.
LVIS: the LVIS API's rules (federated negatives, not-exhaustive categories, the top 300
detections per image across categories, APr/APc/APf) through faster-coco-eval's
``lvis_style`` mode, because the PyPI ``lvis`` 0.5.3 crashes on NumPy >= 1.24 (``np.float``)
and is unreleased since 2020 (lvis-dataset/lvis-api). The per-image limit is applied here
exactly as ``LVISResults.limit_dets_per_image`` does; tests/test_instances_eval.py proves the
whole path equal to the LVIS API on LVIS-format fixtures.

Results must carry no ``bbox``: both APIs would take the box area as the detection's area for
the small/medium/large split (detectron2 drops it for the same reason). Metric values of -1
(no ground truth in that range or group) are reported as ``None``.
"""
from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from typing import Iterable, Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError

COCO_MAX_DETS = 100
LVIS_MAX_DETS = 300
RESULT_KEYS = ("image_id", "category_id", "segmentation", "score")


def is_lvis(gt: dict) -> bool:
    """LVIS-format ground truth: every category names its frequency group (r/c/f)."""
    cats = gt.get("categories") or []
    return bool(cats) and all(c.get("frequency") in ("r", "c", "f") for c in cats)


def prepare_gt(gt: dict) -> dict:
    """A copy of a COCO-format GT dict that both reference APIs accept: annotations get
    ``area`` (the mask's pixel area) and ``iscrowd`` (0) when missing. Annotation dicts are
    copied because the APIs annotate them in place; images and categories are shared."""
    if not isinstance(gt, dict) or not {"images", "annotations", "categories"} <= set(gt):
        raise SambenchError("ground truth needs 'images', 'annotations' and 'categories'")
    sizes = {img["id"]: (int(img["height"]), int(img["width"])) for img in gt["images"]}
    anns = []
    for ann in gt["annotations"]:
        missing = {"id", "image_id", "category_id", "segmentation"} - set(ann)
        if missing:
            raise SambenchError(f"annotation {ann.get('id')} lacks {sorted(missing)}")
        ann = dict(ann)
        if "area" not in ann:
            if ann["image_id"] not in sizes:
                raise SambenchError(f"annotation {ann['id']} refers to unknown image {ann['image_id']}")
            ann["area"] = mask_codec.area(mask_codec.from_annotation(ann["segmentation"], *sizes[ann["image_id"]]))
        ann.setdefault("iscrowd", 0)
        anns.append(ann)
    return {**gt, "annotations": anns}


def limit_per_image(results: list[dict], max_dets: int) -> list[dict]:
    """The top ``max_dets`` results of each image by score, as the LVIS API's
    ``limit_dets_per_image`` (stable sort, so ties keep file order)."""
    by_image: dict = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out = []
    for anns in by_image.values():
        if len(anns) > max_dets:
            anns = sorted(anns, key=lambda r: r["score"], reverse=True)[:max_dets]
        out.extend(anns)
    return out


def coco_segm_ap(gt: dict, results: list[dict], img_ids: Optional[Iterable] = None,
                 max_dets: int = COCO_MAX_DETS) -> dict:
    """COCO mask AP/AR by pycocotools: ``ap``, ``ap50``, ``ap75``, ``ap_{small,medium,large}``,
    ``ar@1``, ``ar@10``, ``ar@{max_dets}`` and ``ar@{max_dets}_{small,medium,large}``
    (pycocotools' 12 stats, in order). ``img_ids`` restricts scoring to those images."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = prepare_gt(gt)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes([_result(r) for r in results])
        else:  # loadRes cannot take an empty list; no detections still scores every GT
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "segm")
        if img_ids is not None:
            ev.params.imgIds = sorted(set(img_ids))
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    # COCOeval.summarize() hard-codes 100 detections; read its arrays the same way instead.
    stats = [_summary(ev, 1), _summary(ev, 1, iou=0.5), _summary(ev, 1, iou=0.75)]
    stats += [_summary(ev, 1, area=a) for a in ("small", "medium", "large")]
    stats += [_summary(ev, 0, max_dets=m) for m in (1, 10, max_dets)]
    stats += [_summary(ev, 0, area=a) for a in ("small", "medium", "large")]
    names = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar@1", "ar@10",
             f"ar@{max_dets}", f"ar@{max_dets}_small", f"ar@{max_dets}_medium", f"ar@{max_dets}_large"]
    return {name: _value(v) for name, v in zip(names, stats)}


def _summary(ev, ap: int, iou=None, area: str = "all", max_dets=None) -> float:
    """pycocotools' ``COCOeval.summarize._summarize``, with any maxDets (default: the last)."""
    p = ev.params
    a = p.areaRngLbl.index(area)
    m = p.maxDets.index(p.maxDets[-1] if max_dets is None else max_dets)
    s = ev.eval["precision"][..., a, m] if ap else ev.eval["recall"][..., a, m]
    if iou is not None:
        s = s[np.where(iou == p.iouThrs)[0]]
    return -1 if not (s > -1).any() else float(np.mean(s[s > -1]))


def lvis_segm_ap(gt: dict, results: list[dict], img_ids: Optional[Iterable] = None,
                 max_dets: int = LVIS_MAX_DETS) -> dict:
    """LVIS mask AP/AR with the LVIS API's rules: ``ap``, ``ap50``, ``ap75``,
    ``ap_{small,medium,large}``, ``ap_{rare,common,frequent}``, ``ar@{max_dets}`` and
    ``ar@{max_dets}_{small,medium,large}`` (the LVIS API's summary)."""
    from faster_coco_eval import COCO, COCOeval_faster

    prepared = prepare_gt(gt)
    for img in prepared["images"]:  # the LVIS API requires both lists on every image
        if "neg_category_ids" not in img or "not_exhaustive_category_ids" not in img:
            raise SambenchError(f"LVIS image {img['id']} lacks neg_category_ids or "
                                "not_exhaustive_category_ids")
    coco_gt = COCO(prepared)
    coco_dt = coco_gt.loadRes([_result(r) for r in limit_per_image(results, max_dets)])
    ev = COCOeval_faster(coco_gt, coco_dt, "segm", lvis_style=True, print_function=lambda *a: None)
    if img_ids is not None:
        ev.params.imgIds = sorted(set(img_ids))
    ev.params.maxDets = [max_dets]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    s = ev.stats_as_dict
    pairs = [("ap", "AP_all"), ("ap50", "AP_50"), ("ap75", "AP_75"), ("ap_small", "AP_small"),
             ("ap_medium", "AP_medium"), ("ap_large", "AP_large"), ("ap_rare", "APr"),
             ("ap_common", "APc"), ("ap_frequent", "APf"), (f"ar@{max_dets}", "AR_all"),
             (f"ar@{max_dets}_small", "AR_small"), (f"ar@{max_dets}_medium", "AR_medium"),
             (f"ar@{max_dets}_large", "AR_large")]
    return {ours: _value(s[theirs]) for ours, theirs in pairs}


def segm_ap(gt: dict, results: list[dict], img_ids: Optional[Iterable] = None,
            evaluator: str = "auto", max_dets: Optional[int] = None) -> dict:
    """Mask AP with the rules the GT calls for (``auto``: LVIS for LVIS-format GT, else COCO)."""
    if evaluator == "auto":
        evaluator = "lvis" if is_lvis(gt) else "coco"
    if evaluator == "lvis":
        return lvis_segm_ap(gt, results, img_ids, max_dets or LVIS_MAX_DETS)
    if evaluator == "coco":
        return coco_segm_ap(gt, results, img_ids, max_dets or COCO_MAX_DETS)
    raise SambenchError(f"unknown evaluator {evaluator!r} (known: auto, coco, lvis)")


def _result(r: dict) -> dict:
    """A fresh results entry: the APIs add fields to it and may rewrite its RLE in place."""
    seg = r["segmentation"]
    return {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"],
            "segmentation": {"size": list(seg["size"]), "counts": seg["counts"]}}


def _value(v) -> Optional[float]:
    v = float(v)
    return None if v == -1 else v


__all__ = ["coco_segm_ap", "lvis_segm_ap", "segm_ap", "limit_per_image", "prepare_gt", "is_lvis",
           "RESULT_KEYS", "COCO_MAX_DETS", "LVIS_MAX_DETS"]
