"""Box-prompted zero-shot instance segmentation (SAM paper §7.4, App. D.4; docs/protocols.md).

``prompt: detections``: every box of a detector's output (COCO results format: ``image_id``,
``category_id``, ``bbox`` XYWH, ``score``) prompts the model, all boxes of an image in one
batched call. The most confident of the 3 masks is kept, then the paper's one refinement pass
feeds that mask's low-res logits back with the same box (single-mask output). Mask AP is a
whole-dataset number, so each record keeps its image's masks as COCO results entries and
``aggregate`` gathers them, writes ``<out>/<task>/<dataset>_segm.json`` and scores them with
the reference rules (COCO: pycocotools; LVIS-format GT: the LVIS API's rules) against the
dataset's own annotation file, as an official evaluation would.

``prompt: gt-box``: each non-crowd ground-truth mask's tight box prompts the model (with
``center_point``, also box + the mask's centre point); mIoU overall and by COCO size.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.datasets.coco import CocoDataset
from sambench.errors import SambenchError
from sambench.metrics.coco_eval import COCO_MAX_DETS, LVIS_MAX_DETS, RESULT_KEYS, is_lvis, segm_ap
from sambench.metrics.iou import bootstrap_ci, ci_protocol, mask_iou
from sambench.prompts import center_point
from sambench.results import atomic_write_json
from sambench.tasks import (DatasetContext, Metric, TaskRunner, best_masks, decode_instances,
                            load_image_or_record, open_choice)
from sambench.tasks.detections import load_detections, match_detections
from sambench.types import Sample, SampleRecord

log = logging.getLogger("sambench")

PROMPTS = ("detections", "gt-box")
SCORES = ("detector", "detector*pred_iou")
EVALUATORS = ("auto", "coco", "lvis")
# COCO's size split (pycocotools areaRng), as a partition of the mask's pixel area.
SIZES = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, float("inf")))
GT_MODES = {"box": "gtbox_", "box+point": "gtbox+point_"}
GT_LABELS = {"box": "GT-box", "box+point": "GT-box + point"}
AP_METRICS = (("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("ap_small", "APs"), ("ap_medium", "APm"),
              ("ap_large", "APl"), ("ap_rare", "APr"), ("ap_common", "APc"), ("ap_frequent", "APf"))


@dataclass
class InstancesProtocol:
    """Every choice of the protocol; the relevant ones are recorded in results.json."""

    prompt: str = "detections"  # detections | gt-box
    detections: Optional[str] = None  # the detector's COCO results JSON (prompt: detections)
    box_source: Optional[str] = None  # the detector those boxes come from, e.g. vitdet-h (reports match published rows on it)
    multimask: bool = True  # first pass: 3 masks, keep the highest predicted IoU
    # one more pass: that mask's low-res logits + the same prompt
    refine: bool = open_choice(
        True, "SAM paper App. D.4: the most confident mask and the box prompt are fed back to the "
        "decoder once more", [True, False])
    # output mode of the refinement pass: single mask, or 3 and the most confident
    refine_multimask: bool = open_choice(
        False, "not in the paper; SAM §A: unambiguous (several) prompts take the single-mask output",
        [False, True])
    # a mask's ranking score: the detector's, or × predicted IoU
    score: str = open_choice(
        "detector", "not in the paper (presumably the detector's box score); HQ-SAM's maintainer: "
        "no score fusion (sam-hq issue #115)", list(SCORES))
    max_dets: Optional[int] = None  # per image, top by detector score (None: COCO 100 / LVIS 300)
    evaluator: str = "auto"  # auto: LVIS rules for LVIS-format GT, else COCO
    center_point: bool = False  # gt-box: also prompt box + the mask's centre point
    batch_size: Optional[int] = None  # prompts per predict call (None: all of an image); speed only

    def __post_init__(self):
        for name, value, allowed in (("prompt", self.prompt, PROMPTS), ("score", self.score, SCORES),
                                     ("evaluator", self.evaluator, EVALUATORS)):
            if value not in allowed:
                raise SambenchError(f"instances task: {name} {value!r} is not one of {', '.join(allowed)}")
        for name in ("max_dets", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SambenchError(f"instances task: {name} must be a positive integer, got {value!r}")
        if self.prompt == "detections":
            if not self.detections:
                raise SambenchError("instances task: prompt 'detections' needs a detections file "
                                    "(--detections FILE, COCO results format)")
            if not Path(self.detections).is_file():
                raise SambenchError(f"detections file not found: {self.detections}")


@dataclass
class InstancesContext(DatasetContext):
    """The dataset's annotation file (as parsed once by the dataset) and the detections matched
    to its images."""

    ground_truth: dict = field(default_factory=dict)  # the annotation file, what AP is scored against
    image_ids: dict[str, Any] = field(default_factory=dict)  # sample id -> the file's image id
    evaluator: str = "coco"
    max_dets: int = COCO_MAX_DETS
    detections: dict[str, np.ndarray] = field(default_factory=dict)  # sample id -> boxes to prompt


def predict_masks(model, embedding, boxes: np.ndarray, protocol: InstancesProtocol,
                  points: Optional[np.ndarray] = None) -> Iterator[tuple[np.ndarray, float]]:
    """(mask, predicted IoU) per box: the most confident mask of the first pass, then (with
    ``refine``) the refinement pass on its low-res logits and the same prompt. Boxes are
    ``(B, 4)`` XYXY pixels; ``points`` optional ``(B, N, 2)`` positive clicks."""
    labels = None if points is None else np.ones(points.shape[:2], np.int64)
    return best_masks(model, embedding, len(boxes), protocol.multimask, protocol.batch_size,
                      protocol.refine_multimask if protocol.refine else None,
                      points=points, labels=labels, box=boxes)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` → the ``[x0, y0, x1, y1]`` pixel box SAM takes (x1 = x + w)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def size_of(area: float) -> str:
    return next(name for name, lo, hi in SIZES if lo <= area < hi)


class InstancesTask(TaskRunner):
    """Runner for box-prompted instance segmentation (see module docstring). ``prepare``
    finds the dataset's annotation file and matches the detections to its images, counting
    those it cannot use (unknown image or category, over ``max_dets``)."""

    name = "instances"
    options_class = InstancesProtocol

    def protocol(self, context: Optional[InstancesContext]) -> dict:
        p = self.proto
        out = {"prompt": p.prompt, "multimask": p.multimask, "refine": p.refine,
               "refine_multimask": p.refine_multimask,
               "refine_input": "the kept mask's low-res logits + the same prompt"}
        if p.prompt == "detections":
            out.update(detections=str(p.detections), score=p.score,
                       box="COCO bbox [x, y, w, h] -> XYXY [x, y, x + w, y + h] pixels",
                       max_dets_rule="top max_dets per image by detector score, before prompting")
            if context is not None:
                out.update(evaluator=context.evaluator, max_dets=context.max_dets)
            else:
                out.update(evaluator=p.evaluator, max_dets=p.max_dets)
            detections = load_detections(p.detections)
            out["detections_sha256"] = detections.sha256
            out["box_source"] = p.box_source
        else:
            out.update(center_point=p.center_point, include_crowd=False,
                       box="tight box of the GT mask (COCO bbox -> XYXY)", box_source="gt",
                       center="deepest interior point of the GT mask",
                       sizes="mask pixel area: small < 32², medium < 96², large otherwise",
                       ci95=ci_protocol())
        return out

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """Detector boxes: COCO/LVIS mask AP (headline AP). GT boxes: mIoU overall and by size
        per prompt mode (headline: box mIoU)."""
        if protocol.get("prompt", "detections") == "detections":
            return [Metric(name, label, headline=name == "ap") for name, label in AP_METRICS]
        spec = []
        modes = ["box", "box+point"] if protocol.get("center_point") else ["box"]
        for mode in modes:
            prefix, word = GT_MODES[mode], GT_LABELS[mode]
            spec.append(Metric(f"{prefix}miou", f"{word} mIoU", headline=mode == "box"))
            spec += [Metric(f"{prefix}miou_{size}", f"{word} {size}") for size, _, _ in SIZES]
        return spec

    def prepare(self, ref, out: Path, model=None) -> InstancesContext:
        """Load what scoring ``ref`` needs; its counts go into results.json."""
        dataset = ref.open(subsample=False)  # every image id of the annotation file
        if not isinstance(dataset, CocoDataset):
            raise SambenchError(f"instances task: dataset {ref.name} is not a COCO-format dataset "
                                "with one annotation file")
        image_ids = {str(i): i for i in dataset.images}
        auto = "lvis" if is_lvis(dataset.data) else "coco"
        evaluator = self.proto.evaluator if self.proto.evaluator != "auto" else auto
        max_dets = self.proto.max_dets or (LVIS_MAX_DETS if evaluator == "lvis" else COCO_MAX_DETS)
        detections, counts = {}, {}
        if self.proto.prompt == "detections":
            detections, counts = match_detections(load_detections(self.proto.detections), ref.name,
                                                  image_ids, set(dataset.categories), max_dets)
        return InstancesContext(ref.name, Path(out), counts, dataset.data, image_ids, evaluator, max_dets,
                                detections)

    def run_sample(self, model, sample: Sample, context: InstancesContext, seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        if self.proto.prompt == "gt-box":
            record.rows = self._gt_box_rows(model, sample, record, context)
            return record
        dets = context.detections.get(sample.id)
        if dets is None or not len(dets):
            return record  # no detections: the image's GT are all misses
        image = load_image_or_record(sample, record)
        if image is None:
            record.errors.append({"kind": "detections_not_scored", "detail": f"{len(dets)} detections"})
            return record
        embedding = model.embed(image)
        image_id = context.image_ids[sample.id]
        masks = predict_masks(model, embedding, xywh_to_xyxy(dets["bbox"]), self.proto)
        for det, (mask, pred_iou) in zip(dets, masks):
            det_score = float(det["score"])
            score = det_score * pred_iou if self.proto.score == "detector*pred_iou" else det_score
            record.rows.append({"mask": f"det{int(det['index'])}", "image_id": image_id,
                                "category_id": int(det["category_id"]), "score": score,
                                "det_score": det_score, "pred_iou": pred_iou,
                                "segmentation": mask_codec.encode(mask)})
        return record

    def _gt_box_rows(self, model, sample: Sample, record: SampleRecord, context: InstancesContext) -> list[dict]:
        gts, ids = decode_instances(sample, record, include_crowd=False)
        if not gts:
            return []
        image = load_image_or_record(sample, record)
        if image is None:
            record.errors.extend({"kind": "mask_not_scored", "detail": f"mask {i}"} for i in ids)
            return []
        embedding = model.embed(image)
        instances = {inst.id: inst for inst in sample.instances}
        boxes = np.array([instances[i].bbox_xyxy for i in ids], np.float32)
        modes = {"box": None}
        if self.proto.center_point:
            centres = [center_point(gt) for gt in gts]
            modes["box+point"] = np.array([[[c.x, c.y]] if c else [(b[:2] + b[2:]) / 2]
                                           for c, b in zip(centres, boxes)], np.float32)
        rows = []
        for mode, points in modes.items():
            preds = predict_masks(model, embedding, boxes, self.proto, points)
            for gt, mask_id, (mask, pred_iou) in zip(gts, ids, preds):
                rows.append({"mask": mask_id, "mode": mode, "area": int(gt.sum()), "iou": mask_iou(mask, gt),
                             "pred_iou": pred_iou, "image_id": context.image_ids[sample.id],
                             "category_id": instances[mask_id].category_id, "score": pred_iou,
                             "segmentation": mask_codec.encode(mask)})
        return rows

    def aggregate(self, records: list[SampleRecord], context: InstancesContext, seed: int) -> dict:
        if self.proto.prompt == "gt-box":
            return self._gt_box_metrics(records, context, seed)
        results = [{k: row[k] for k in RESULT_KEYS} for rec in records for row in rec.rows]
        atomic_write_json(context.out / f"{context.name}_segm.json", results)
        img_ids = [context.image_ids[rec.sample_id] for rec in records if rec.sample_id in context.image_ids]
        return segm_ap(context.ground_truth, results, img_ids, context.evaluator, context.max_dets)

    def _gt_box_metrics(self, records: list[SampleRecord], state: InstancesContext, seed: int) -> dict:
        metrics: dict = {}
        for mode, prefix in GT_MODES.items():
            rows = [row for rec in records for row in rec.rows if row["mode"] == mode]
            if not rows:
                continue
            atomic_write_json(state.out / f"{state.name}_{prefix.rstrip('_')}_segm.json",
                              [{k: row[k] for k in RESULT_KEYS} for row in rows])
            ious = [row["iou"] for row in rows]
            images = [rec.sample_id for rec in records for row in rec.rows if row["mode"] == mode]
            metrics[f"{prefix}miou"] = float(np.mean(ious))
            metrics[f"{prefix}miou_ci95"] = list(bootstrap_ci(ious, seed, clusters=images))
            for size, _, _ in SIZES:
                sized = [row["iou"] for row in rows if size_of(row["area"]) == size]
                if sized:
                    metrics[f"{prefix}miou_{size}"] = float(np.mean(sized))
        return metrics


__all__ = ["InstancesTask", "InstancesProtocol", "predict_masks", "xywh_to_xyxy"]
