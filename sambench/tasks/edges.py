"""Zero-shot edge detection on BSDS500 (SAM paper §7.2, App. D.2, Table 3; docs/protocols.md).

Per image: an edge map, then the BSDS benchmark's counts against the image's human boundaries.

- A model with ``edge_map(image)`` (the classical ``sobel`` and ``canny``) gives the map itself.
- A promptable model (``sam``, ``sam-official``, any model of the protocol) goes through its
  masks, :func:`sambench.edges.masks.edge_map_from_masks`: 16x16 grid, 3 masks per point, no
  filtering, box NMS, Sobel on each mask's probability map kept at its boundary, pixel-wise max,
  linear normalisation, Dollár's edge NMS. The options the paper leaves open are fields of
  :class:`EdgesProtocol` and go into results.json's ``protocol``.

The map is quantised to 16 bits, written as ``<run>/<task>/<dataset>/<id>.png`` (unless
``save_edge_maps`` is off) and scored with :func:`sambench.metrics.bsds.evaluate_image` exactly
as ``sambench edges-eval`` scores that PNG, so re-scoring the folder gives the same numbers. The
record keeps the counts ``[cntR, sumR, cntP, sumP]`` per threshold; ``aggregate`` pools them into
ODS / OIS / AP / R50 (resume needs nothing else), and the dataset's PR curve goes into the
results entry (``pr_curve``) for the report.

An unreadable image is scored as an empty edge map (its boundaries count as missed) and
counted; an image whose ground truth cannot be read has nothing to be scored against and is
counted, not scored.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from sambench.edges.masks import EdgeOptions, edge_map_from_masks
from sambench.errors import SambenchError
from sambench.metrics import bsds_scores
from sambench.metrics.bsds import MATCHERS, evaluate_image
from sambench.paths import safe_name
from sambench.tasks import DatasetContext, Metric, TaskRunner, load_image_or_record
from sambench.types import Sample, SampleRecord

LEVELS = 65535  # the scored map is what a 16-bit PNG holds


@dataclass
class EdgesProtocol(EdgeOptions):
    """Edge-map generation (:class:`~sambench.edges.masks.EdgeOptions`) plus the benchmark's settings."""

    nthresh: int = 99  # thresholds linspace(1/(K+1), 1-1/(K+1), K)
    max_dist: float = 0.0075  # matching tolerance, fraction of the image diagonal
    thin: bool = True  # bwmorph thinning of each binarised map
    matcher: str = "exact"  # or "official" (the randomised graph, seeded per image)
    save_edge_maps: bool = True  # <run>/<task>/<dataset>/<id>.png, 16-bit, for `sambench edges-eval`

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.nthresh, int) or self.nthresh < 1:
            raise SambenchError(f"edges task: nthresh must be a positive integer, got {self.nthresh!r}")
        if not self.max_dist > 0:
            raise SambenchError(f"edges task: max_dist must be positive, got {self.max_dist!r}")
        if self.matcher not in MATCHERS:
            raise SambenchError(f"edges task: matcher must be one of {', '.join(MATCHERS)}, got {self.matcher!r}")

    def edge_options(self) -> EdgeOptions:
        return EdgeOptions(**{k: v for k, v in asdict(self).items() if k in EdgeOptions.__dataclass_fields__})


def quantize(edges: np.ndarray) -> np.ndarray:
    """The edge map as 16-bit levels (what the PNG stores and what is scored)."""
    return np.round(np.clip(np.nan_to_num(edges), 0, 1) * LEVELS).astype(np.uint16)


def summary(counts: np.ndarray, thresholds: np.ndarray) -> dict:
    """ODS / OIS / AP / R50 and the ODS and OIS points from pooled per-image counts."""
    out = bsds_scores.summarize(thresholds, counts)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else float(v)) for k, v in out.items()}


class EdgesTask(TaskRunner):
    """Runner for the edges task (see the module docstring)."""

    name = "edges"
    options_class = EdgesProtocol

    def __init__(self, options: dict):
        super().__init__(options)
        self.thresholds = bsds_scores.default_thresholds(self.proto.nthresh)

    def protocol(self, context) -> dict:
        side = self.proto.points_per_side
        return {**asdict(self.proto),
                "masks": f"{side}x{side} grid of foreground points, 3 masks each; no predicted-IoU or "
                         "stability filtering, no crops; box NMS by predicted IoU",
                "probability": "sigmoid of the logits upsampled to the image size",
                "edge_map_models": "a model with edge_map(image) (sobel, canny) is scored as it is; "
                                   "the generation options apply to promptable models",
                "scored_map": "quantised to 16 bits, as saved",
                "metric": "BSDS500 benchmark (sambench.metrics.bsds): ODS, OIS, AP, R50"}

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """ODS, OIS, AP, R50 as fractions with 3 digits, as in the paper's Table 3."""
        return [Metric(name, label, scale=1, digits=3, headline=True)
                for name, label in (("ods", "ODS"), ("ois", "OIS"), ("ap", "AP"), ("r50", "R50"))]

    # -- one image --------------------------------------------------------------------------
    def run_sample(self, model, sample: Sample, context: DatasetContext, seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        record.errors.extend(dict(p) for p in sample.problems)
        gts = list(sample.meta.get("boundaries") or [])
        if not gts:
            record.errors.append({"kind": "no_boundaries", "detail": "no readable ground-truth boundary map"})
            return record
        row: dict = {"annotators": len(gts)}
        image = load_image_or_record(sample, record)
        if image is None:
            edges = np.zeros(gts[0].shape, np.float32)
        else:
            edges, n_masks = self.edge_map(model, image)
            if n_masks is not None:
                row["masks"] = n_masks
        if edges.shape != gts[0].shape:
            raise SambenchError(f"edges: model returned a {edges.shape} map for a {gts[0].shape} image")
        levels = quantize(edges)
        if self.proto.save_edge_maps:
            self._save(levels, context.out / context.name, sample.id)
        counts = evaluate_image(levels / LEVELS, gts, self.thresholds, self.proto.max_dist, self.proto.thin,
                                self.proto.matcher, seed=zlib.crc32(str(sample.id).encode()))
        row.update(edge_pixels=int(np.count_nonzero(levels)), counts=counts.tolist())
        record.rows.append(row)
        return record

    def edge_map(self, model, image: np.ndarray) -> tuple[np.ndarray, Optional[int]]:
        """(edge map, masks it came from or None) by the model's own detector or its masks."""
        direct = getattr(model, "edge_map", None)
        if direct is not None:
            return np.asarray(direct(image), np.float32), None
        return edge_map_from_masks(model, image, self.proto.edge_options())

    @staticmethod
    def _save(levels: np.ndarray, folder: Path, sample_id: str) -> None:
        """Write ``<id>.png`` atomically (a killed run never leaves half a file)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_name(sample_id)}.png"
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        if not cv2.imwrite(str(tmp), levels):
            raise SambenchError(f"cannot write {tmp}")
        os.replace(tmp, path)

    # -- the dataset ------------------------------------------------------------------------
    def _counts(self, records: list[SampleRecord]) -> np.ndarray:
        rows = [row["counts"] for rec in records for row in rec.rows]
        return np.asarray(rows, np.int64).reshape(len(rows), len(self.thresholds), 4)

    def aggregate(self, records: list[SampleRecord], context: DatasetContext, seed: int) -> dict:
        counts = self._counts(records)
        if not len(counts):
            return {name: None for name in ("ods", "ois", "ap", "r50")}
        metrics = summary(counts, self.thresholds)
        masks = [row["masks"] for rec in records for row in rec.rows if "masks" in row]
        if masks:
            metrics["masks_per_image"] = float(np.mean(masks))
        metrics["edge_pixels_per_image"] = float(np.mean([row["edge_pixels"] for rec in records for row in rec.rows]))
        return metrics

    def result_fields(self, records: list[SampleRecord], metrics: dict, context: DatasetContext) -> dict:
        """The dataset PR curve per threshold and the ODS / OIS points (from ``metrics``, what
        :meth:`aggregate` computed), for the report's figure."""
        counts = self._counts(records)
        if not len(counts):
            return {}
        recall, precision, f = bsds_scores.rpf(counts.sum(axis=0))

        def r6(values) -> list[float]:
            return [round(float(v), 6) for v in values]

        return {"pr_curve": {"threshold": r6(self.thresholds), "recall": r6(recall), "precision": r6(precision),
                             "f": r6(f),
                             "ods": {"t": metrics["ods_t"], "r": metrics["ods_r"], "p": metrics["ods_p"],
                                     "f": metrics["ods"]},
                             "ois": {"r": metrics["ois_r"], "p": metrics["ois_p"], "f": metrics["ois"]}}}


__all__ = ["EdgesTask", "EdgesProtocol", "quantize", "summary"]
