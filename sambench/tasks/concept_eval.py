"""``sambench concept-eval PRED.json GT.json [GT2.json ...]``: cgF1 of any tool's predictions.

Scores a COCO results list (``{"image_id", "category_id", "segmentation": RLE, "score"}``,
``bbox`` optional; ``image_id`` is the SA-Co pair id) against SA-Co-format ground truth
(:mod:`sambench.datasets.saco`) with the metric of :mod:`sambench.metrics.cgf1`, as SAM 3's
``scripts/eval/standalone_cgf1.py`` does. Several ground-truth files (one per annotator) give
the oracle choice per pair. The concept task scores its own predictions with the same
functions, so a run's numbers and this command's agree on the run's prediction file.

Predictions of a pair the ground truth does not list, or of a category it does not have, are
not scored (as the reference ignores them) but counted and logged; a malformed prediction
(no segmentation, a mask of another size, a score that is not a finite number) is one clear
error naming it.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from collections import Counter

from sambench import masks as mask_codec
from sambench.datasets.saco import GroundTruthFile, scored_pairs
from sambench.errors import SambenchError
from sambench.metrics.cgf1 import METRIC_NAMES, SCORE_THRESHOLD, accumulate, score_annotators
from sambench.tasks.detections import file_key, read_json_list

log = logging.getLogger("sambench")
IOU_TYPES = ("segm", "bbox")


def _region(pred: dict, i: int, size: tuple[int, int], iou_type: str, path):
    """The prediction's mask RLE (segm) or XYWH box (bbox); a box alone stands for its
    rectangle's mask, as pycocotools' ``loadRes`` makes it."""
    h, w = size
    box = pred.get("bbox")
    if box is not None and (not isinstance(box, list) or len(box) != 4
                            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
        raise SambenchError(f"{path}: prediction {i}: bbox {box!r} is not [x, y, w, h]")
    seg = pred.get("segmentation")
    if seg is None and box:
        x0, y0, bw, bh = box
        seg = [[x0, y0, x0, y0 + bh, x0 + bw, y0 + bh, x0 + bw, y0]]
    if iou_type == "bbox" and box:
        return [float(v) for v in box]
    if seg is None:
        raise SambenchError(f"{path}: prediction {i} has neither segmentation nor bbox")
    try:
        rle = mask_codec.from_annotation(seg, h, w)
    except SambenchError as exc:
        raise SambenchError(f"{path}: prediction {i} (pair {pred['image_id']}): {exc}") from None
    return mask_codec.to_bbox(rle) if iou_type == "bbox" else rle


def read_predictions(path, files: list[GroundTruthFile], iou_type: str):
    """Predictions grouped by pair, file order kept: ``pair id -> [(pred, region, score)]``,
    plus counts of what is not scored."""
    data, _ = read_json_list(file_key(path, "predictions")[0], "predictions",
                             "{image_id, category_id, segmentation, score}")
    pairs, counts = {}, Counter()
    for i, pred in enumerate(data):
        if not isinstance(pred, dict) or not {"image_id", "category_id", "score"} <= set(pred):
            raise SambenchError(f"{path}: prediction {i} lacks one of image_id, category_id, score")
        score = pred["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise SambenchError(f"{path}: prediction {i}: score {score!r} is not a finite number")
        entry = files[0].pairs.get(pred["image_id"])
        if entry is None:
            counts["unknown_pair"] += 1
            continue
        region = _region(pred, i, (int(entry["height"]), int(entry["width"])), iou_type, path)
        pairs.setdefault(pred["image_id"], []).append((pred, region, float(score)))
    return pairs, counts


def _gt_regions(gt: GroundTruthFile, pair_id, iou_type: str):
    entry = gt.pairs[pair_id]
    h, w = int(entry["height"]), int(entry["width"])
    regions, crowd = [], []
    for ann in gt.annotations.get(pair_id, []):
        rle = mask_codec.from_annotation(ann["segmentation"], h, w) if "segmentation" in ann else None
        if iou_type == "bbox":
            regions.append(ann.get("bbox") or mask_codec.to_bbox(rle))
        elif rle is None:
            raise SambenchError(f"{gt.path}: annotation {ann.get('id')!r} has no segmentation")
        else:
            regions.append(rle)
        crowd.append(bool(ann.get("iscrowd", 0)))
    return regions, crowd


def evaluate_files(pred_path, gt_paths, iou_type: str = "segm",
                   score_threshold: float = SCORE_THRESHOLD) -> dict:
    """Every cgF1 metric of a prediction file against one or more annotators' SA-Co files."""
    if iou_type not in IOU_TYPES:
        raise SambenchError(f"iou type {iou_type!r} is not one of {', '.join(IOU_TYPES)}")
    files = [GroundTruthFile.read(p) for p in gt_paths]
    by_pair, counts = read_predictions(pred_path, files, iou_type)
    chosen, scores = Counter(), []
    for pair_id in scored_pairs(files):
        sets = []
        for gt in files:
            cats = {c: k for k, c in enumerate(gt.category_ids)}
            preds = sorted((p for p in by_pair.get(pair_id, []) if p[0]["category_id"] in cats),
                           key=lambda p: cats[p[0]["category_id"]])
            sets.append((_gt_regions(gt, pair_id, iou_type) if pair_id in gt.pairs else ([], []), preds))
        if any(len(preds) != len(sets[0][1]) for _, preds in sets):
            raise SambenchError("annotator files of one subset must share their categories")
        preds = sets[0][1]
        dropped = len(by_pair.get(pair_id, [])) - len(preds)
        if dropped:
            counts["unknown_category"] += dropped
        score, index = score_annotators([regions for regions, _ in sets], [p[1] for p in preds],
                                        [p[2] for p in preds], iou_type, score_threshold)
        scores.append(score)
        chosen[index] += 1
    for kind, n in sorted(counts.items()):
        log.warning("concept-eval: %d predictions not scored (%s)", n, kind)
    metrics = accumulate(scores)
    metrics.update(not_exhaustive=len(files[0].pairs) - len(scores), predictions_not_scored=dict(counts),
                   oracle_choice=[chosen[i] for i in range(len(files))], iou_type=iou_type,
                   score_threshold=score_threshold)
    return metrics


def format_table(summary: dict) -> str:
    def f(v) -> str:
        return "   n/a" if v is None else f"{100 * v:6.2f}"
    lines = [f"cgF1 ({summary['iou_type']}): {summary['n_pairs']} pairs scored, "
             f"{summary['not_exhaustive']} not exhaustive; oracle choice per annotator: "
             f"{summary['oracle_choice']}",
             "              0.50:0.95   @0.50   @0.75"]
    for name in ("cgf1", "pmf1", "precision", "recall", "f1", "positive_macro_f1"):
        lines.append(f"{name:<18}{f(summary[name])}  {f(summary[name + '@0.5'])}  {f(summary[name + '@0.75'])}")
    lines.append(f"IL_MCC {f(summary['il_mcc'])}   IL_F1 {f(summary['il_f1'])}   "
                 f"IL_FPR {f(summary['il_fpr'])}   (×100)")
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``concept-eval`` to the main CLI (``func=run``)."""
    p = subparsers.add_parser(
        "concept-eval", help="cgF1 of a prediction file against SA-Co ground truth",
        description="Score a COCO-results prediction file (image_id = SA-Co pair id, segmentation "
                    "RLE, score) against one or more SA-Co annotator files, as SAM 3's "
                    "standalone_cgf1.py does (oracle over annotators). docs/concepts.md.")
    p.add_argument("pred", metavar="PRED.json")
    p.add_argument("gt", metavar="GT.json", nargs="+", help="one SA-Co file per annotator")
    p.add_argument("--iou-type", choices=IOU_TYPES, default="segm", help="masks (default) or boxes")
    p.add_argument("--score-threshold", type=float, default=SCORE_THRESHOLD,
                   help="predictions scored below it are dropped (default 0.5, as SA-Co)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    summary = evaluate_files(args.pred, args.gt, args.iou_type, args.score_threshold)
    print(json.dumps(summary) if args.json else format_table(summary))
    return 0


__all__ = ["METRIC_NAMES", "evaluate_files", "read_predictions", "add_parser"]
