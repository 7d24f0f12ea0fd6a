"""Concept segmentation scored as SA-Co scores it: cgF1 = positive micro-F1 × image-level MCC.

The unit is a *pair*: one image and one noun phrase, with every instance of the phrase
annotated (``is_instance_exhaustive``) or none when the phrase is absent (a negative pair).
A model answers a pair with any number of scored masks. The rules, those of the evaluator
released with SAM 3 (``sam3/eval/cgf1_eval.py``, "SAM 3: Segment Anything with Concepts",
§ on metrics), are:

- a prediction counts when its score is ``>= score_threshold`` (0.5);
- crowd ground truth (``iscrowd``) is removed, as pycocotools ignores it;
- kept predictions and ground truths are matched one to one by maximising the summed IoU
  (Hungarian, ``scipy.optimize.linear_sum_assignment``), predictions in file order and ground
  truths in annotation order, each grouped by category id; a matched pair is a true positive
  at IoU threshold ``t`` when its IoU is ``>= t`` (``t`` in 0.50:0.05:0.95);
- image level: a pair with ground truth and a prediction is a TP, ground truth and none a FN,
  no ground truth and a prediction a FP, neither a TN; IL_MCC is Matthews' correlation of
  those counts; positive micro-F1 sums TP/FP/FN over the pairs with ground truth and a
  prediction (FN also over pairs with ground truth and no prediction);
- several annotator sets: each pair keeps the set under which its mean local F1 is highest
  (the "oracle"), a pair without predictions and ground truth counting as perfect;
- the small epsilons of the reference (1e-4 in F1s, 1e-6 in image-level ratios) are kept, so
  the numbers equal the reference's to the last bit that matters (tests/test_cgf1.py).

Written here rather than imported because the reference sits inside the SAM 3 package (its
import pulls in the whole model, psutil and scipy) and works file by file through pycocotools'
COCO objects; here the per-pair step takes masks and scores, so the concept task scores each
pair as it is predicted and ``sambench concept-eval`` reads files with the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

# pycocotools' Params.iouThrs, built the same way so that 0.5 and 0.75 compare equal to it.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
SCORE_THRESHOLD = 0.5

# (our name, the reference's name, image-level?, IoU threshold or None for the 0.50:0.95 mean)
_SUMMARY = [(f"{ours}{'' if thr is None else f'@{thr}'}", ref, False, thr)
            for thr in (None, 0.5, 0.75)
            for ours, ref in (("cgf1", "cgF1"), ("precision", "precision"), ("recall", "recall"),
                              ("f1", "F1"), ("positive_macro_f1", "positive_macro_F1"),
                              ("pmf1", "positive_micro_F1"),
                              ("positive_micro_precision", "positive_micro_precision"))]
_SUMMARY[7:7] = [(ours, ref, True, None) for ours, ref in
                 (("il_precision", "IL_precision"), ("il_recall", "IL_recall"),
                  ("il_f1", "IL_F1"), ("il_fpr", "IL_FPR"), ("il_mcc", "IL_MCC"))]
METRIC_NAMES = [name for name, _, _, _ in _SUMMARY]
REFERENCE_NAMES = {name: (ref if thr is None else f"{ref}@{thr}") for name, ref, _, thr in _SUMMARY}


@dataclass
class PairScore:
    """One pair's outcome under one annotator set.

    ``outcome`` is the image-level class (``tp``, ``fp``, ``tn``, ``fn``); the per-threshold
    counts and local F1 are None for a true negative, where the reference defines none.
    """

    outcome: str
    n_pred: int
    n_gt: int
    tps: Optional[np.ndarray] = None  # (T,) int
    fps: Optional[np.ndarray] = None
    fns: Optional[np.ndarray] = None
    local_f1: Optional[np.ndarray] = None  # (T,) float

    def to_json(self) -> dict:
        data = {"outcome": self.outcome, "n_pred": self.n_pred, "n_gt": self.n_gt}
        if self.tps is not None:
            data.update(tps=self.tps.tolist(), fps=self.fps.tolist(), fns=self.fns.tolist(),
                        local_f1=self.local_f1.tolist())
        return data

    @classmethod
    def from_json(cls, data: dict) -> "PairScore":
        arrays = {}
        if "tps" in data:
            arrays = {k: np.asarray(data[k], np.int64) for k in ("tps", "fps", "fns")}
            arrays["local_f1"] = np.asarray(data["local_f1"], np.float64)
        return cls(data["outcome"], int(data["n_pred"]), int(data["n_gt"]), **arrays)


def _f1(tp, fp, fn):
    precision = tp / (tp + fp + 1e-4)
    recall = tp / (tp + fn + 1e-4)
    return precision, recall, 2 * precision * recall / (precision + recall + 1e-4)


def score_pair(ious: np.ndarray, score_threshold_keep: np.ndarray) -> PairScore:
    """Score one pair from its prediction × ground-truth IoU matrix.

    ``ious`` is ``(P, G)`` over the predictions and the non-crowd ground truths, in the
    reference's order; ``score_threshold_keep`` ``(P,)`` says which predictions reach the
    score threshold. See :func:`pair_ious` for building both from masks or boxes.
    """
    ious = np.asarray(ious, np.float64)
    ious = ious[np.asarray(score_threshold_keep, bool)]
    n_pred, n_gt = ious.shape
    if n_gt == 0 and n_pred == 0:
        return PairScore("tn", 0, 0)
    zeros = np.zeros(len(IOU_THRESHOLDS), np.int64)
    if n_pred == 0:
        return PairScore("fn", 0, n_gt, zeros, zeros.copy(), zeros + n_gt, zeros.astype(np.float64))
    rows, cols = linear_sum_assignment(-ious)
    matched = ious[rows, cols]
    tps = (matched[None, :] >= IOU_THRESHOLDS[:, None]).sum(axis=1).astype(np.int64)
    fps, fns = n_pred - tps, n_gt - tps
    _, _, f1 = _f1(tps, fps, fns)
    return PairScore("tp" if n_gt else "fp", n_pred, n_gt, tps, fps, fns, f1)


def pair_ious(gts: Sequence, gt_crowd: Sequence[bool], preds: Sequence, scores: Sequence[float],
              iou_type: str = "segm", score_threshold: float = SCORE_THRESHOLD):
    """IoU matrix and keep flags for :func:`score_pair`.

    ``gts`` / ``preds`` are compressed RLEs (``iou_type="segm"``) or XYWH boxes (``"bbox"``);
    crowd ground truths are dropped. pycocotools computes the IoUs.
    """
    keep_gt = [g for g, crowd in zip(gts, gt_crowd) if not crowd]
    keep = np.asarray(scores, np.float64) >= score_threshold
    if not len(keep_gt) or not len(preds):
        return np.zeros((len(preds), len(keep_gt))), keep
    if iou_type == "bbox":
        preds, keep_gt = [list(map(float, b)) for b in preds], [list(map(float, b)) for b in keep_gt]
    ious = mask_utils.iou(list(preds), list(keep_gt), [0] * len(keep_gt))
    return np.asarray(ious, np.float64).reshape(len(preds), len(keep_gt)), keep


def oracle(scores: Sequence[PairScore]) -> PairScore:
    """The reference's choice among annotator sets: the highest mean local F1 (the first set
    on ties); a set where the pair has no local F1 (a true negative) replaces the choice."""
    best = scores[0]
    for current in scores[1:]:
        if best.local_f1 is not None and current.local_f1 is not None:
            if current.local_f1.mean() > best.local_f1.mean():
                best = current
        elif current.local_f1 is None:
            best = current
    return best


def score_annotators(annotator_sets: Sequence[tuple[Sequence, Sequence[bool]]], preds: Sequence,
                     scores: Sequence[float], iou_type: str = "segm",
                     score_threshold: float = SCORE_THRESHOLD) -> tuple[PairScore, int]:
    """One pair's score under each annotator set ``(ground truths, crowd flags)`` and the
    :func:`oracle` choice: ``(chosen score, index of the chosen set)``."""
    per_set = [score_pair(*pair_ious(gts, crowd, preds, scores, iou_type, score_threshold))
               for gts, crowd in annotator_sets]
    chosen = oracle(per_set)
    return chosen, next(i for i, s in enumerate(per_set) if s is chosen)


def accumulate(pairs: Sequence[PairScore]) -> dict:
    """Every cgF1 summary metric over the scored pairs (names in :data:`METRIC_NAMES`).

    A metric the reference marks undefined (-1: e.g. no pair with both ground truth and a
    prediction, for the positive macro-F1) is None.
    """
    n_thr = len(IOU_THRESHOLDS)
    tps, fps, fns, pm_fps = (np.zeros(n_thr, np.int64) for _ in range(4))
    local_f1 = np.zeros(n_thr, np.float64)
    il = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    n_local = 0
    for pair in pairs:
        il[pair.outcome] += 1
        if pair.tps is None:
            continue
        tps += pair.tps
        fps += pair.fps
        fns += pair.fns
        if pair.outcome == "tp":
            local_f1 += pair.local_f1
            pm_fps += pair.fps
            n_local += 1
    precision, recall, f1 = _f1(tps, fps, fns)
    pm_precision = tps / (tps + pm_fps + 1e-4)
    pm_f1 = 2 * pm_precision * recall / (pm_precision + recall + 1e-4)
    il_recall = il["tp"] / (il["tp"] + il["fn"] + 1e-6)
    il_precision = il["tp"] / (il["tp"] + il["fp"] + 1e-6)
    il_mcc = float(il["tp"] * il["tn"] - il["fp"] * il["fn"]) / (
        (float(il["tp"] + il["fp"]) * float(il["tp"] + il["fn"]) * float(il["tn"] + il["fp"])
         * float(il["tn"] + il["fn"])) ** 0.5 + 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro = local_f1 / n_local
    values = {
        "cgF1": pm_f1 * il_mcc, "precision": precision, "recall": recall, "F1": f1,
        "positive_macro_F1": macro, "positive_micro_F1": pm_f1,
        "positive_micro_precision": pm_precision, "IL_precision": il_precision,
        "IL_recall": il_recall, "IL_F1": 2 * il_precision * il_recall / (il_precision + il_recall + 1e-6),
        "IL_FPR": il["fp"] / (il["fp"] + il["tn"] + 1e-6), "IL_MCC": il_mcc,
    }
    out = {}
    for name, ref, image_level, thr in _SUMMARY:
        value = values[ref]
        if not image_level:
            value = value if thr is None else value[np.where(thr == IOU_THRESHOLDS)[0]]
            defined = value[value > -1]  # the reference's rule; NaN is not > -1 either
            value = float(np.mean(defined)) if len(defined) else -1
        out[name] = None if value == -1 or not np.isfinite(value) else float(value)
    out.update({f"il_{k}_count": v for k, v in il.items()})
    out["n_pairs"] = len(pairs)
    return out


def results_metrics(pairs: Sequence[PairScore], prefix: str = "") -> dict:
    """:func:`accumulate` under the names a task reports (``prefix`` + :data:`METRIC_NAMES`,
    ``pairs`` and the image-level counts ``il_tp`` ... ``il_fn``)."""
    values = accumulate(pairs)
    out = {f"{prefix}{name}": values[name] for name in METRIC_NAMES}
    out[f"{prefix}pairs"] = values["n_pairs"]
    out.update({f"{prefix}il_{k}": values[f"il_{k}_count"] for k in ("tp", "fp", "tn", "fn")})
    return out


__all__ = ["IOU_THRESHOLDS", "METRIC_NAMES", "REFERENCE_NAMES", "SCORE_THRESHOLD", "PairScore",
           "accumulate", "oracle", "pair_ious", "results_metrics", "score_annotators", "score_pair"]
