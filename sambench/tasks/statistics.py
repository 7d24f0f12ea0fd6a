"""Dataset statistics: the mask properties of SAM paper §5, Fig. 5 and Fig. 6, for any dataset.

Per mask (one record row): pixel area, relative size ``sqrt(area / image area)``, concavity
``1 - area / convex-hull area`` and the centre of mass normalised by the image size. Per
dataset (``aggregate``): masks per image in the paper's bins, the relative-size distribution,
the concavity distribution after size-stratified sampling (the paper controls for mask size
"by first performing stratified sampling from binned mask sizes": up to ``concavity_per_bin``
masks drawn, from the run seed, in each of ``size_bins`` equal-width relative-size bins), and
the centre heatmap. Scalars go to results.json (names in tasks/statistics.yaml); the arrays to
``<run>/<task>/<dataset>_statistics.json``, which the report's statistics section draws.

The ground truth is read through the dataset's adapter, images are never decoded, and the model
is not used, so the task runs on any dataset, SA-1B-format AMG output included (docs/amg.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from sambench.errors import SambenchError
from sambench.prompts import stable_rng
from sambench.results import atomic_write_json
from sambench.tasks import DatasetContext, Metric, TaskRunner
from sambench.types import Sample, SampleRecord

# Each metric: (name, label, digits, the per-mask or per-image values it summarises, statistic).
STATISTICS = (("masks_per_image_mean", "masks / image", 1, "masks", np.mean),
              ("masks_per_image_median", "masks / image (median)", 1, "masks", np.median),
              ("images_without_masks", "images without masks", 3, "empty", np.mean),
              ("rel_size_mean", "rel. size (mean)", 3, "rel_size", np.mean),
              ("rel_size_median", "rel. size (median)", 3, "rel_size", np.median),
              ("concavity_mean", "concavity (stratified)", 3, "concavity", np.mean),
              ("concavity_median", "concavity (stratified, median)", 3, "concavity", np.median),
              ("concavity_mean_unstratified", "concavity (all)", 3, "concavity_all", np.mean),
              ("center_x_mean", "centre x", 3, "x", np.mean), ("center_y_mean", "centre y", 3, "y", np.mean),
              ("center_distance_mean", "centre distance", 3, "distance", np.mean))
# Fig. 6 (left): masks per image, bins as labelled in the paper.
MASK_COUNT_BINS = (("<=10", 0, 10), ("11-50", 11, 50), ("51-100", 51, 100), ("101-200", 101, 200),
                   (">200", 201, None))


@dataclass
class StatisticsProtocol:
    size_bins: int = 10  # relative-size strata for the concavity sample
    concavity_per_bin: int = 1000  # masks drawn per stratum (all when fewer)
    histogram_bins: int = 20  # relative size and concavity histograms on [0, 1]
    heatmap_bins: int = 32  # centre heatmap, per side
    include_crowd: bool = False

    def __post_init__(self):
        for name in ("size_bins", "concavity_per_bin", "histogram_bins", "heatmap_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SambenchError(f"statistics task: {name} must be a positive integer, got {value!r}")


def arrays_path(task_dir: Path, dataset: str) -> Path:
    """Where a dataset's arrays go: ``<run>/<task>/<dataset>_statistics.json``."""
    return Path(task_dir) / f"{dataset}_statistics.json"


def mask_properties(mask: np.ndarray) -> dict:
    """Area, concavity and centre of mass ``(cx, cy)`` (pixels) of a non-empty bool mask.

    The convex hull is that of the mask's pixel squares' centres, rasterised the way OpenCV
    fills polygons, then united with the mask, so hull area >= area and concavity is in [0, 1).
    """
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    crop = np.ascontiguousarray(mask[y0:ys.max() + 1, x0:xs.max() + 1]).astype(np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    filled = np.zeros_like(crop)
    cv2.fillConvexPoly(filled, hull, 1)
    area = len(xs)
    hull_area = int(np.count_nonzero(filled | crop))
    return {"area": area, "concavity": 1.0 - area / hull_area, "cx": float(xs.mean()) + 0.5,
            "cy": float(ys.mean()) + 0.5}


def _histogram(values: np.ndarray, bins: int) -> list[float]:
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0, 1))
    return (counts / max(len(values), 1)).tolist()


def stratified_sample(sizes: np.ndarray, strata: int, per_stratum: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``per_stratum`` masks from each equal-width size stratum on [0, 1]."""
    stratum = np.minimum((np.clip(sizes, 0, 1) * strata).astype(int), strata - 1)
    chosen = []
    for s in range(strata):
        members = np.flatnonzero(stratum == s)
        if len(members) > per_stratum:
            members = np.sort(rng.choice(members, per_stratum, replace=False))
        chosen.append(members)
    return np.concatenate(chosen) if chosen else np.zeros(0, int)


def summarize(records: list[SampleRecord], proto: StatisticsProtocol, seed: int) -> tuple[dict, dict]:
    """(scalar metrics, arrays for the report) of a dataset's records."""
    counts = np.array([len(rec.rows) for rec in records])
    rows = [row for rec in records for row in rec.rows]
    rel = np.array([row["rel_size"] for row in rows], np.float64)
    concavity = np.array([row["concavity"] for row in rows], np.float64)
    centres = np.array([[row["cx"], row["cy"]] for row in rows], np.float64).reshape(-1, 2)
    sample = stratified_sample(rel, proto.size_bins, proto.concavity_per_bin, stable_rng(seed, "statistics"))
    image_share = [float(np.mean((counts >= lo) & ((counts <= hi) if hi is not None else True)))
                   if len(counts) else 0.0 for _, lo, hi in MASK_COUNT_BINS]
    heat, _, _ = np.histogram2d(centres[:, 1], centres[:, 0], bins=proto.heatmap_bins, range=[[0, 1], [0, 1]])

    values = {"masks": counts, "empty": counts == 0, "rel_size": rel, "concavity": concavity[sample],
              "concavity_all": concavity, "x": centres[:, 0], "y": centres[:, 1],
              "distance": np.hypot(centres[:, 0] - 0.5, centres[:, 1] - 0.5)}
    metrics = {name: float(fn(values[key])) if len(values[key]) else None for name, _, _, key, fn in STATISTICS}
    arrays = {
        "n_images": len(records), "n_masks": len(rows), "concavity_sample": int(len(sample)),
        "masks_per_image": {"bins": [label for label, _, _ in MASK_COUNT_BINS], "fraction": image_share},
        "rel_size": {"edges": np.linspace(0, 1, proto.histogram_bins + 1).tolist(),
                     "fraction": _histogram(rel, proto.histogram_bins)},
        "concavity": {"edges": np.linspace(0, 1, proto.histogram_bins + 1).tolist(),
                      "fraction": _histogram(concavity[sample], proto.histogram_bins)},
        "center_heatmap": {"bins": proto.heatmap_bins, "rows": "y (top to bottom)", "cols": "x",
                           "fraction": (heat / max(len(rows), 1)).tolist()},
    }
    return metrics, arrays


class StatisticsTask(TaskRunner):
    """Runner for dataset statistics (see module docstring)."""

    name = "statistics"
    options_class = StatisticsProtocol
    uses_model = False  # a run of statistics alone needs no --model
    uses_images = False  # the engine does not decode the images ahead

    def protocol(self, context) -> dict:
        return {**asdict(self.proto), "rel_size": "sqrt(mask area / image area)",
                "concavity": "1 - mask area / convex hull area (pixels), size-stratified sample",
                "center": "centre of mass / image size", "model": "not used"}

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """Descriptive numbers, none a headline (a dataset's statistics rank nothing)."""
        return [Metric(name, label, scale=1, digits=digits) for name, label, digits, _, _ in STATISTICS]

    def run_sample(self, model, sample: Sample, context, seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        record.errors.extend(dict(p) for p in sample.problems)
        if sample.height < 1 or sample.width < 1:
            record.errors.append({"kind": "image", "detail": f"image size {sample.width}x{sample.height}"})
            return record
        pixels = sample.height * sample.width
        for inst in sample.instances:
            if (inst.iscrowd or inst.ignore) and not self.proto.include_crowd:
                record.errors.append({"kind": "crowd_excluded", "detail": f"mask {inst.id}"})
                continue
            try:
                mask = inst.mask()
            except (SambenchError, ValueError, TypeError, KeyError) as exc:  # counted, not fatal
                record.errors.append({"kind": "bad_segmentation", "detail": f"mask {inst.id}: {exc}"})
                continue
            if not mask.any():
                record.errors.append({"kind": "empty_mask", "detail": f"mask {inst.id}"})
                continue
            props = mask_properties(mask)
            record.rows.append({"mask": inst.id, "area": props["area"],
                                "rel_size": round(float(np.sqrt(props["area"] / pixels)), 6),
                                "concavity": round(props["concavity"], 6),
                                "cx": round(props["cx"] / sample.width, 6),
                                "cy": round(props["cy"] / sample.height, 6)})
        return record

    def aggregate(self, records: list[SampleRecord], context: DatasetContext, seed: int) -> dict:
        metrics, arrays = summarize(records, self.proto, seed)
        atomic_write_json(arrays_path(context.out, context.name), arrays)
        return metrics


__all__ = ["StatisticsTask", "StatisticsProtocol", "mask_properties", "stratified_sample", "summarize"]
