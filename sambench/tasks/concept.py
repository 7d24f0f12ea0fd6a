"""Concept segmentation: every instance of a noun phrase, scored by cgF1 as SA-Co scores it.

The unit is an SA-Co pair (an image and a noun phrase, :mod:`sambench.datasets.saco`); only
exhaustively annotated pairs are scored, the others counted (``not_exhaustive``). A model
answers a pair with any number of scored masks, through one of three routes (option
``routes``), each scored on the same pairs and reported with its own metric prefix:

- ``concept`` (no prefix): the model's concept path, ``predict_concept(embedding, phrase)``
  returning all instances it finds (SAM 3);
- ``text`` (``text_``): a model with a text prompt path answers the phrase with its most
  confident mask, scored with its predicted IoU: at most one instance per pair, which is what
  text-to-mask measures (docs/text.md) seen through the concept metric;
- ``det`` (``det_``): the composed route: every box a text-conditioned detector gave for the
  pair (``concept_detections``, the text task's detections format with ``image_id`` = pair id)
  prompts the model, the most confident mask per box, scored with the detector's score.

``auto`` (the default) takes ``concept`` for a model with a concept path, else ``text`` for a
text-capable one; other models are reported ``unsupported`` with the reason unless a
detections file gives them the ``det`` route.

Per pair and annotator set the metric's per-pair counts are computed as soon as the pair is
predicted (:mod:`sambench.metrics.cgf1`: score threshold 0.5, Hungarian matching, IoU
0.50:0.95); aggregation picks the oracle annotator per pair and sums. The kept predictions
(score >= the threshold) are written as COCO results (``<run>/concept/<dataset>/
predictions_<route>.json``) so ``sambench concept-eval`` or SAM 3's own evaluator can rescore
them against the same ground-truth files.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.metrics.cgf1 import (IOU_THRESHOLDS, SCORE_THRESHOLD, PairScore, results_metrics,
                                   score_annotators)
from sambench.models.base import supports_concepts, supports_text
from sambench.results import atomic_write_json
from sambench.tasks import DatasetContext, Metric, TaskRunner, load_image_or_record
from sambench.tasks.text import cgf1_metric_spec, text_encoder_for
from sambench.tasks.text_detections import load_text_detections
from sambench.types import Sample, SampleRecord

log = logging.getLogger("sambench")

ROUTES = ("auto", "concept", "text", "det")
PREFIX = {"concept": "", "text": "text_", "det": "det_"}
ROUTE_LABELS = {"concept": "", "text": "text ", "det": "det. box "}


@dataclass
class ConceptProtocol:
    """Every choice of the protocol, recorded in results.json's ``protocol``."""

    routes: list[str] = field(default_factory=lambda: ["auto"])
    score_threshold: float = SCORE_THRESHOLD
    text_encoder: Optional[str] = None  # NAME[:ARG] of the text route; None: the checkpoint's
    concept_detections: Optional[str] = None  # detections JSON of the det route
    write_predictions: bool = True

    def __post_init__(self):
        if not self.routes or any(r not in ROUTES for r in self.routes) or len(set(self.routes)) != len(self.routes):
            raise SambenchError(f"concept task: routes {self.routes!r} must be distinct values of {', '.join(ROUTES)}")
        if not isinstance(self.score_threshold, (int, float)) or not 0 <= self.score_threshold <= 1:
            raise SambenchError(f"concept task: score_threshold must be in [0, 1], got {self.score_threshold!r}")
        if "det" in self.routes and not self.concept_detections:
            raise SambenchError("concept task: route det needs a detections file (--task-option "
                                "concept_detections=FILE, docs/concepts.md)")
        if self.concept_detections:
            load_text_detections(self.concept_detections)  # a bad file fails before any work
            if "det" not in self.routes:
                self.routes = [*self.routes, "det"]

    def to_json(self) -> dict:
        out = {"routes": self.routes, "score_threshold": self.score_threshold,
               "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS],
               "unit": "one per exhaustively annotated (image, noun phrase) pair",
               "matching": "one-to-one, maximal summed IoU (Hungarian) over predictions >= score_threshold "
                           "and non-crowd ground truth",
               "annotators": "oracle: per pair the annotator set with the highest mean local F1",
               "metric": "cgF1 = positive micro-F1 x image-level MCC (SAM 3 / SA-Co)"}
        if self.concept_detections:
            dets = load_text_detections(self.concept_detections)
            out.update(concept_detections=str(self.concept_detections), concept_detections_sha256=dets.sha256,
                       box_rule="every box of the pair; the most confident of 3 masks per box, scored "
                                "with the detector's score")
        return out


def routes_for(model, routes: list[str]) -> list[str]:
    """The routes a run takes for ``model``: ``auto`` resolved, the det route kept."""
    out = []
    for route in routes:
        if route == "auto":
            route = "concept" if supports_concepts(model) else "text" if supports_text(model) else None
        if route and route not in out:
            out.append(route)
    return out


@dataclass
class ConceptContext(DatasetContext):
    encoder_info: Optional[dict] = None  # the text route's encoder, for the protocol


class ConceptTask(TaskRunner):
    """Runner for concept segmentation (see module docstring)."""

    name = "concept"
    options_class = ConceptProtocol

    def protocol(self, context: Optional[ConceptContext]) -> dict:
        out = self.proto.to_json()
        if context is not None and context.encoder_info is not None:
            out["text_encoder_used"] = context.encoder_info
        return out

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """Per route the run may take (``auto``: the concept or the text path): cgF1 and its
        factors; headline: the concept route's cgF1, IL_MCC and pmF1, the others' cgF1."""
        routes = [r for route in protocol.get("routes", ["auto"])
                  for r in (("concept", "text") if route == "auto" else (route,))]
        return [m for r in PREFIX if r in routes for m in cgf1_metric_spec(PREFIX[r], ROUTE_LABELS[r], r == "concept")]

    def prepare(self, ref, out: Path, model=None) -> ConceptContext:
        return ConceptContext(ref.name, Path(out))

    def unsupported(self, model) -> Optional[str]:
        name = model.info().name
        for route in self.proto.routes:
            if route == "concept" and not supports_concepts(model):
                return f"model {name} has no concept path (all instances of a noun phrase: SAM 3)"
            if route == "text" and not supports_text(model):
                return f"model {name} has no text prompt path"
        if not routes_for(model, self.proto.routes):
            return (f"model {name} answers no noun phrase (no concept or text path); score a text-conditioned "
                    "detector's boxes with it instead (--task-option concept_detections=FILE, docs/concepts.md)")
        return None

    def _text_encoder(self, model, context: Optional[ConceptContext]):
        encoder = text_encoder_for(model, self.proto.text_encoder)
        if context is not None:
            context.encoder_info = encoder.info()
        return encoder

    # -- scoring ---------------------------------------------------------------------------
    def run_sample(self, model, sample: Sample, context: Optional[ConceptContext], seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        for problem in sample.problems:
            record.errors.append(dict(problem))
        if not sample.meta.get("exhaustive", True):
            record.errors.append({"kind": "not_exhaustive", "detail": f"pair {sample.id}: {sample.meta.get('phrase')!r}"})
            return record
        phrase = sample.meta.get("phrase")
        if not isinstance(phrase, str) or not phrase.strip():
            raise SambenchError(f"concept task: sample {sample.id} of {sample.dataset} has no noun phrase "
                                "(an SA-Co-format dataset is needed: docs/concepts.md)")
        image = load_image_or_record(sample, record)
        if image is None:
            return record
        embedding = model.embed(image)
        sets = sample.meta.get("annotator_sets") or [sample.instances]
        annotators = [([inst.rle for inst in insts], [inst.iscrowd for inst in insts]) for insts in sets]
        for route in routes_for(model, self.proto.routes):
            masks, scores = self._predict(route, model, embedding, sample, phrase, context)
            rles = [mask_codec.encode(m) for m in masks]
            score, chosen = score_annotators(annotators, rles, scores,
                                             score_threshold=self.proto.score_threshold)
            kept = [{"rle": r, "score": float(s)} for r, s in zip(rles, scores)
                    if s >= self.proto.score_threshold]
            record.rows.append({"route": route, "phrase": phrase, "annotator": chosen, "annotators": len(sets),
                                "category_id": sample.meta.get("category_id", 1),
                                "pair": score.to_json(), "predictions": kept, "n_predicted": len(rles)})
        return record

    def _predict(self, route: str, model, embedding, sample: Sample, phrase: str, context):
        """``(masks (N, H, W) bool, scores (N,))`` of one route for one pair."""
        if route == "concept":
            pred = model.predict_concept(embedding, phrase)
            masks, scores = np.asarray(pred.masks, bool), np.asarray(pred.scores, np.float64)
        elif route == "text":
            text = self._text_encoder(model, context).encode([phrase])
            pred = model.predict(embedding, text=text, multimask=True)
            best = np.argmax(pred.scores, axis=1)
            masks = pred.masks[np.arange(len(best)), best]
            scores = pred.scores[np.arange(len(best)), best].astype(np.float64)
        else:
            found = load_text_detections(self.proto.concept_detections).boxes.get((str(sample.id), " ".join(phrase.lower().split())), [])
            if not found:
                return np.zeros((0, sample.height, sample.width), bool), np.zeros(0)
            boxes = np.array([box for box, _, _ in found], np.float32)
            pred = model.predict(embedding, box=boxes, multimask=True)
            best = np.argmax(pred.scores, axis=1)
            masks = pred.masks[np.arange(len(best)), best]
            scores = np.array([s for _, s, _ in found], np.float64)
        if not np.all(np.isfinite(scores)):
            raise SambenchError(f"concept task: model {model.info().name} gave a non-finite score on pair "
                                f"{sample.id} of {sample.dataset}")
        return masks, scores

    # -- aggregation -----------------------------------------------------------------------
    def aggregate(self, records: list[SampleRecord], context: Optional[ConceptContext], seed: int) -> dict:
        by_route: dict[str, list[PairScore]] = {}
        chosen: dict[str, list[int]] = {}
        n_sets = 1
        for rec in records:
            for row in rec.rows:
                by_route.setdefault(row["route"], []).append(PairScore.from_json(row["pair"]))
                chosen.setdefault(row["route"], []).append(row["annotator"])
                n_sets = max(n_sets, row["annotators"])
        metrics: dict = {}
        for route, pairs in by_route.items():
            prefix = PREFIX[route]
            metrics.update(results_metrics(pairs, prefix))
            metrics[f"{prefix}oracle_choice"] = np.bincount(chosen[route], minlength=n_sets).tolist()
        if self.proto.write_predictions and context is not None:
            self._write_predictions(records, context.out / context.name)
        return metrics

    @staticmethod
    def _write_predictions(records: list[SampleRecord], folder: Path) -> None:
        """The kept predictions of each route as COCO results (SA-Co pair ids)."""
        by_route: dict[str, list] = {}
        for rec in records:
            pair_id = int(rec.sample_id) if rec.sample_id.isdigit() else rec.sample_id
            for row in rec.rows:
                by_route.setdefault(row["route"], []).extend(
                    {"image_id": pair_id, "category_id": row["category_id"], "segmentation": p["rle"],
                     "score": p["score"],
                     "bbox": mask_codec.to_bbox(p["rle"])} for p in row["predictions"])
        for route, results in by_route.items():
            path = folder / f"predictions_{route}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, results)


__all__ = ["ConceptTask", "ConceptProtocol", "cgf1_metric_spec", "routes_for"]
