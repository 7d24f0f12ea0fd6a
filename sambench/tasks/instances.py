"""Box-prompted zero-shot instance segmentation (SAM paper §7.4, App. D.4; protocols.md §6).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.metrics.coco_eval import COCO_MAX_DETS, LVIS_MAX_DETS, RESULT_KEYS, is_lvis, segm_ap
from sambench.metrics.iou import bootstrap_ci, ci_protocol, mask_iou
from sambench.prompts import center_point
from sambench.results import atomic_write_json
from sambench.tasks import RUNNERS, decode_instances, load_image_or_record, open_choice, parse_protocol
from sambench.tasks.detections import load_detections, match_detections
from sambench.types import Sample, SampleRecord

log = logging.getLogger("sambench")

PROMPTS = ("detections", "gt-box")
SCORES = ("detector", "detector*pred_iou")
EVALUATORS = ("auto", "coco", "lvis")
# COCO's size split (pycocotools areaRng), as a partition of the mask's pixel area.
SIZES = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, float("inf")))
GT_MODES = {"box": "gtbox_", "box+point": "gtbox+point_"}


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
class DatasetState:
    """What the runner knows about the dataset being scored (set by ``begin_dataset``)."""

    name: str
    annotation_file: Path
    image_ids: dict[str, Any]  # sample id -> the annotation file's image id
    evaluator: str
    max_dets: int
    out: Path
    detections: dict[str, np.ndarray]  # sample id -> detections to prompt (see detections.py)
    counts: dict[str, int]


def predict_masks(model, embedding, boxes: np.ndarray, protocol: InstancesProtocol,
                  points: Optional[np.ndarray] = None) -> Iterator[tuple[np.ndarray, float]]:
    """(mask, predicted IoU) per box: the most confident mask of the first pass, then (with
    ``refine``) the refinement pass on its low-res logits and the same prompt. Boxes are
    ``(B, 4)`` XYXY pixels; ``points`` optional ``(B, N, 2)`` positive clicks."""
    step = protocol.batch_size or len(boxes)
    for start in range(0, len(boxes), step):
        box = boxes[start:start + step]
        pts = None if points is None else points[start:start + step]
        lbl = None if pts is None else np.ones(pts.shape[:2], np.int64)
        rows = np.arange(len(box))
        pred = model.predict(embedding, points=pts, labels=lbl, box=box, multimask=protocol.multimask)
        best = np.argmax(pred.scores, axis=1)
        masks, scores = pred.masks[rows, best], pred.scores[rows, best]
        if protocol.refine:
            logits = pred.low_res_logits[rows, best][:, None]
            pred = model.predict(embedding, points=pts, labels=lbl, box=box, mask_input=logits,
                                 multimask=protocol.refine_multimask)
            best = np.argmax(pred.scores, axis=1)
            masks, scores = pred.masks[rows, best], pred.scores[rows, best]
        for mask, score in zip(masks, scores):
            yield mask, float(score)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO ``[x, y, w, h]`` → the ``[x0, y0, x1, y1]`` pixel box SAM takes (x1 = x + w)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def size_of(area: float) -> str:
    return next(name for name, lo, hi in SIZES if lo <= area < hi)


@RUNNERS.register("instances")
class InstancesTask:
    """Runner for box-prompted instance segmentation (see module docstring).

    The engine calls ``begin_dataset(ref, out)`` before scoring or aggregating a dataset: it
    finds the dataset's annotation file and matches the detections to its images, counting
    those it cannot use (unknown image or category, over ``max_dets``).
    """

    def __init__(self, options: dict):
        self.proto = parse_protocol(InstancesProtocol, options, "instances")
        self._states: dict[str, DatasetState] = {}
        self._current: Optional[DatasetState] = None

    def protocol(self) -> dict:
        p = self.proto
        out = {"prompt": p.prompt, "multimask": p.multimask, "refine": p.refine,
               "refine_multimask": p.refine_multimask,
               "refine_input": "the kept mask's low-res logits + the same prompt"}
        if p.prompt == "detections":
            out.update(detections=str(p.detections), score=p.score,
                       box="COCO bbox [x, y, w, h] -> XYXY [x, y, x + w, y + h] pixels",
                       max_dets_rule="top max_dets per image by detector score, before prompting")
            if self._current is not None:
                out.update(evaluator=self._current.evaluator, max_dets=self._current.max_dets)
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

    def begin_dataset(self, ref, out: Path) -> dict[str, int]:
        """Load what scoring ``ref`` needs; returns dataset-level counts for results.json."""
        state = self._states.get(ref.name)
        if state is None:
            state = self._states[ref.name] = self._load_state(ref, Path(out))
        self._current = state
        return dict(state.counts)

    def _load_state(self, ref, out: Path) -> DatasetState:
        dataset = ref.open(subsample=False)  # every image id of the annotation file
        annotation_file = getattr(dataset, "annotation_file", None)
        if annotation_file is None:
            raise SambenchError(f"instances task: dataset {ref.name} is not a COCO-format dataset "
                                "with one annotation file")
        image_ids = {str(i): i for i in dataset.images}
        lvis = is_lvis({"categories": list(dataset.categories.values())})
        evaluator = self.proto.evaluator if self.proto.evaluator != "auto" else ("lvis" if lvis else "coco")
        max_dets = self.proto.max_dets or (LVIS_MAX_DETS if evaluator == "lvis" else COCO_MAX_DETS)
        detections, counts = {}, {}
        if self.proto.prompt == "detections":
            detections, counts = match_detections(load_detections(self.proto.detections), ref.name,
                                                  image_ids, set(dataset.categories), max_dets)
        return DatasetState(ref.name, Path(annotation_file), image_ids, evaluator, max_dets, out,
                            detections, counts)

    def _state(self) -> DatasetState:
        if self._current is None:
            raise SambenchError("instances task: begin_dataset(ref, out) must be called before scoring")
        return self._current

    def run_sample(self, model, sample: Sample, seed: int) -> SampleRecord:
        state = self._state()
        record = SampleRecord(sample.id)
        if self.proto.prompt == "gt-box":
            record.rows = self._gt_box_rows(model, sample, record, state)
            return record
        dets = state.detections.get(sample.id)
        if dets is None or not len(dets):
            return record  # no detections: the image's GT are all misses
        image = load_image_or_record(sample, record)
        if image is None:
            record.errors.append({"kind": "detections_not_scored", "detail": f"{len(dets)} detections"})
            return record
        embedding = model.embed(image)
        image_id = state.image_ids[sample.id]
        masks = predict_masks(model, embedding, xywh_to_xyxy(dets["bbox"]), self.proto)
        for det, (mask, pred_iou) in zip(dets, masks):
            det_score = float(det["score"])
            score = det_score * pred_iou if self.proto.score == "detector*pred_iou" else det_score
            record.rows.append({"mask": f"det{int(det['index'])}", "image_id": image_id,
                                "category_id": int(det["category_id"]), "score": score,
                                "det_score": det_score, "pred_iou": pred_iou,
                                "segmentation": mask_codec.encode(mask)})
        return record

    def _gt_box_rows(self, model, sample: Sample, record: SampleRecord, state: DatasetState) -> list[dict]:
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
                             "pred_iou": pred_iou, "image_id": state.image_ids[sample.id],
                             "category_id": instances[mask_id].category_id, "score": pred_iou,
                             "segmentation": mask_codec.encode(mask)})
        return rows

    def aggregate(self, records: list[SampleRecord], seed: int) -> dict:
        state = self._state()
        self._current = None  # the next dataset's protocol() must not show this one's settings
        if self.proto.prompt == "gt-box":
            return self._gt_box_metrics(records, state, seed)
        results = [{k: row[k] for k in RESULT_KEYS} for rec in records for row in rec.rows]
        atomic_write_json(state.out / f"{state.name}_segm.json", results)
        from sambench.datasets.coco import load_json

        img_ids = [state.image_ids[rec.sample_id] for rec in records if rec.sample_id in state.image_ids]
        return segm_ap(load_json(state.annotation_file), results, img_ids, state.evaluator, state.max_dets)

    def _gt_box_metrics(self, records: list[SampleRecord], state: DatasetState, seed: int) -> dict:
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
