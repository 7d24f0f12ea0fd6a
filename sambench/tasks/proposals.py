"""Zero-shot object proposals (SAM paper §7.3, App. D.3; docs/protocols.md).

Each image goes through automatic mask generation with the paper's proposal settings (a 64x64
grid, no crops, no predicted-IoU or stability filtering, box NMS at 0.9); the masks are ranked
by the mean of predicted IoU and stability score and the top 1000 kept. They are scored
against the ground truth right away with COCO's class-agnostic matching
(:mod:`sambench.metrics.proposals`), and each record keeps, per ground-truth mask, whether it
was matched at each IoU threshold in each bucket it counts in; ``aggregate`` sums those into
mask AR@1000 overall, by size and (LVIS) by frequency group. The proposals themselves are not
stored, so memory and records stay small however many images.

Ground truth: for a dataset with one COCO/LVIS annotation file, that file's annotations as
pycocotools reads them (its ``area`` field for the size buckets, ``iscrowd`` ignored, masks the
adapter could not use still counted as misses); for any other format, the adapter's instances
(their pixel area; crowd/ignore masks left out). An unreadable image has no proposals: its
masks count as misses and the image is counted. Empty masks are dropped from the proposals and
counted.

``tasks/proposals-single-output.yaml`` is the paper's single-output ablation: one mask per
point, a 128x128 grid, NMS at 0.95, random ranking (it has no IoU score).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.amg import AutomaticMaskGenerator
from sambench.datasets.coco import CocoDataset
from sambench.errors import SambenchError
from sambench.metrics.proposals import AREA_RANGES, FREQUENCY_GROUPS, average_recall, match_image
from sambench.prompts import stable_rng
from sambench.tasks import DatasetContext, Metric, TaskRunner, load_image_or_record, open_choice
from sambench.types import Sample, SampleRecord

RANKINGS = ("mean_iou_stability", "predicted_iou", "random")


@dataclass
class ProposalsProtocol:
    """The AMG settings and the scoring; everything here goes into results.json."""

    points_per_side: int = 64
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.0  # no filtering (P §D.3)
    stability_score_thresh: float = 0.0
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.9
    crop_n_layers: int = 0  # no crops, to keep inference time comparable to ViTDet (P §D.3)
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    multimask_output: bool = True
    nms_score: str = "predicted_iou"  # or random (the single-output ablation)
    # truncation and matching order
    rank_by: str = open_choice(
        "mean_iou_stability", "SAM paper App. D.3: over 1000 masks, keep the top 1000 by the average "
        "of predicted IoU and stability score; the order in which the kept masks are matched is "
        "not stated", list(RANKINGS))
    max_proposals: int = 1000  # K of AR@K

    def __post_init__(self):
        if self.rank_by not in RANKINGS:
            raise SambenchError(f"proposals task: rank_by {self.rank_by!r} is not one of {', '.join(RANKINGS)}")
        if not isinstance(self.max_proposals, int) or self.max_proposals < 1:
            raise SambenchError(f"proposals task: max_proposals must be a positive integer, got {self.max_proposals!r}")

    def amg_options(self) -> dict:
        options = asdict(self)
        for name in ("rank_by", "max_proposals"):
            options.pop(name)
        return options


def ar_metrics(k: int) -> dict[str, str]:
    """Metric name -> the bucket of the records' ``matched`` it averages over masks: AR@k
    overall, by size and by LVIS frequency group."""
    return {f"ar@{k}" if bucket == "all" else f"ar@{k}_{bucket}": bucket
            for bucket in (*AREA_RANGES, *FREQUENCY_GROUPS.values())}


class AnnotationIndex:
    """An annotation file's ground truth per image, in pycocotools' order (by category id,
    file order within a category), with each category's LVIS frequency group if any; built
    from the dataset's own parse of the file."""

    def __init__(self, dataset):
        self.categories = {cid: c.get("frequency") for cid, c in dataset.categories.items()}
        self.image_ids = {str(i): i for i in dataset.images}
        self.by_image = {i: sorted(dataset.annotations(i), key=lambda a: a.get("category_id", 0))
                         for i in dataset.images}  # stable: file order within a category


@dataclass
class ProposalsContext(DatasetContext):
    index: Optional[AnnotationIndex] = None  # None: ground truth from the adapter's instances


class ProposalsTask(TaskRunner):
    """Runner for the object-proposal task (see module docstring)."""

    name = "proposals"
    options_class = ProposalsProtocol

    def __init__(self, options: dict):
        super().__init__(options)
        AutomaticMaskGenerator(None, **self.proto.amg_options())  # check the AMG options now

    def protocol(self, context: Optional[ProposalsContext]) -> dict:
        out = asdict(self.proto)
        out.update(metric=f"class-agnostic mask AR@{self.proto.max_proposals}, COCO greedy matching "
                          "(pycocotools useCats=0), IoU 0.50:0.05:0.95",
                   sizes="annotation area: small <= 32², medium 32²..96², large >= 96² (inclusive bounds)",
                   groups="LVIS frequency groups: AR against the ground truth of that group only",
                   empty_proposals="dropped (counted)")
        if context is not None:
            out["ground_truth"] = "annotation file" if context.index is not None else "adapter instances"
        return out

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """AR@K overall (headline), by size and by LVIS frequency group; proposals per image."""
        k = protocol.get("max_proposals", 1000)
        spec = [Metric(name, f"AR@{k}" if bucket == "all" else bucket, headline=bucket == "all")
                for name, bucket in ar_metrics(k).items()]
        return spec + [Metric("proposals_per_image", "proposals / image", scale=1, digits=0)]

    def prepare(self, ref, out: Path, model=None) -> ProposalsContext:
        dataset = ref.open()
        index = AnnotationIndex(dataset) if isinstance(dataset, CocoDataset) else None
        return ProposalsContext(ref.name, Path(out), index=index)

    # -- scoring one image ----------------------------------------------------------------
    def run_sample(self, model, sample: Sample, context: ProposalsContext, seed: int) -> SampleRecord:
        state = context
        record = SampleRecord(sample.id)
        if state.index is not None and sample.id in state.index.image_ids:
            gt = self._annotation_gt(state.index, sample, record)
        else:
            gt = self._instance_gt(sample, record)
        rles, scores = self._proposals(model, sample, record, seed, state.name)
        ids, gt_rles, areas, groups = zip(*gt) if gt else ((), (), (), ())
        matches = match_image(gt_rles, areas, [False] * len(gt), groups, rles, scores,
                              self.proto.max_proposals)
        for mask_id, area, group, match in zip(ids, areas, groups, matches):
            record.rows.append({"mask": mask_id, "area": float(area), "group": group,
                                "matched": match["matched"], "best_iou": round(match["best_iou"], 6),
                                "n_proposals": len(rles)})
        return record

    def _annotation_gt(self, index: AnnotationIndex, sample: Sample, record: SampleRecord) -> list:
        instances = {inst.id: inst for inst in sample.instances}
        out = []
        for ann in index.by_image.get(index.image_ids[sample.id], []):
            ann_id = str(ann.get("id"))
            if index.categories and ann.get("category_id") not in index.categories:
                record.errors.append({"kind": "unknown_category", "detail": f"annotation {ann_id}"})
                continue
            if ann.get("iscrowd", 0):
                record.errors.append({"kind": "crowd_excluded", "detail": f"annotation {ann_id}"})
                continue
            inst = instances.get(ann_id)
            try:
                rle = inst.rle if inst is not None else mask_codec.from_annotation(
                    ann["segmentation"], sample.height, sample.width)
            except (SambenchError, KeyError) as exc:
                record.errors.append({"kind": "bad_segmentation", "detail": f"annotation {ann_id}: {exc}"})
                continue
            area = float(ann["area"]) if "area" in ann else float(mask_codec.area(rle))
            out.append((ann_id, rle, area, index.categories.get(ann.get("category_id"))))
        return out

    @staticmethod
    def _instance_gt(sample: Sample, record: SampleRecord) -> list:
        record.errors.extend(dict(p) for p in sample.problems)
        out = []
        for inst in sample.instances:
            if inst.iscrowd or inst.ignore:
                record.errors.append({"kind": "crowd_excluded", "detail": f"mask {inst.id}"})
                continue
            group = inst.meta.get("frequency")
            out.append((inst.id, inst.rle, float(inst.area), group if group in FREQUENCY_GROUPS else None))
        return out

    def _proposals(self, model, sample: Sample, record: SampleRecord, seed: int,
                   dataset: str) -> tuple[list[dict], np.ndarray]:
        """The top ``max_proposals`` masks (RLE) and their ranking scores; none for a bad image."""
        image = load_image_or_record(sample, record)
        if image is None:
            return [], np.zeros(0)
        rng = stable_rng(seed, "proposals", dataset, sample.id)
        data = AutomaticMaskGenerator(model, **self.proto.amg_options()).generate_data(image, rng)
        empty = data["areas"] == 0 if len(data) else np.zeros(0, bool)
        if empty.any():
            record.errors.append({"kind": "empty_proposals", "detail": f"{int(empty.sum())} empty masks dropped"})
            data.filter(~empty)
        if not len(data):
            record.errors.append({"kind": "no_proposals", "detail": "AMG returned no mask"})
            return [], np.zeros(0)
        if self.proto.rank_by == "mean_iou_stability":
            scores = (data["iou_preds"].astype(np.float64) + data["stability_score"]) / 2
        elif self.proto.rank_by == "predicted_iou":
            scores = data["iou_preds"].astype(np.float64)
        else:
            scores = rng.random(len(data))
        top = np.argsort(-scores, kind="mergesort")[:self.proto.max_proposals]
        return [data["rles"][i] for i in top], scores[top]

    # -- the dataset ----------------------------------------------------------------------
    def aggregate(self, records: list[SampleRecord], context: ProposalsContext, seed: int) -> dict:
        rows = [row for rec in records for row in rec.rows]
        ar = average_recall(rows)
        groups = any(row.get("group") for row in rows)
        metrics = {name: ar[bucket] for name, bucket in ar_metrics(self.proto.max_proposals).items()
                   if bucket in AREA_RANGES or groups}
        per_image = [rec.rows[0]["n_proposals"] for rec in records if rec.rows]
        metrics["proposals_per_image"] = float(np.mean(per_image)) if per_image else None
        return metrics


__all__ = ["ProposalsTask", "ProposalsProtocol", "AnnotationIndex"]
