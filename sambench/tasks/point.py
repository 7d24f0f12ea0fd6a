"""The single-point valid-mask task (SAM paper §7.1, App. D.1; docs/protocols.md).

For every mask: a first point (``center``: deepest interior point; ``random``: uniform over the
mask, seeded per mask), then corrective clicks by the RITM rule up to ``max_points``. At one
point the model returns 3 masks and the most confident is scored (plus the oracle, the best of
the 3); later points use the single-mask output, optionally fed the previous step's low-res
logits. All masks of an image are prompted together in one batched call per step.

With ``ignore: exclude`` (RITM's rule) the image's ignore region (``Sample.ignore_mask``: void
pixels, crowd regions; never the scored mask's own pixels) is neither a false negative nor a
false positive for the clicks and counts in neither intersection nor union.

The protocol adapts to what the model declares (``ModelInfo.capabilities``), never silently:
a model without mask input gets no logits fed back, and one that takes at most k points runs
k clicks; the results entry records each adaptation in ``protocol.adapted`` and lists the
metrics that would need more clicks in ``unsupported_metrics`` ({name: reason}), unscored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.metrics.iou import batch_iou, bootstrap_ci, ci_protocol, noc
from sambench.models.base import Capabilities
from sambench.prompts import next_click, random_point, stable_rng
from sambench.tasks import DatasetContext, Metric, TaskRunner, decode_instances, load_image_or_record, open_choice
from sambench.types import Sample, SampleRecord

METRIC_PREFIX = {"center": "", "random": "random_"}
IGNORE = ("exclude", "background")


@dataclass
class PointProtocol:
    """Every choice of the protocol, recorded in results.json's ``protocol``."""

    first_point: list[str] = field(default_factory=lambda: ["center", "random"])
    n_points: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 9])
    multimask_first: bool = True  # 3 masks at 1 point, scored by predicted IoU
    # previous low-res logits as mask_input for points 2..N
    feed_back_logits: bool = open_choice(
        True, "SAM paper silent for evaluation; its training loop feeds the previous mask logits back "
        "(§A) and RITM's evaluation feeds its previous prediction", [True, False])
    # points 2..N: 3 masks, the most confident scored (best-of-3), instead of the single mask
    multimask_later: bool = open_choice(
        False, "SAM paper §A: one prompt gives 3 masks, more prompts a single mask (the 4th output "
        "token); segment_anything SamPredictor docstring", [False, True])
    # ignore region (void, crowd): excluded from clicks and IoU (RITM), or plain background
    ignore: str = open_choice(
        "exclude", "SAM paper silent; RITM's Clicker (not_ignore_mask) and get_iou (ignore_label), "
        "the click protocol the paper follows (§7.1, App. D.1)", ["exclude", "background"])
    noc_thresholds: list[float] = field(default_factory=lambda: [0.85, 0.90])
    include_crowd: bool = False  # crowd / ignore masks are not prompted (counted)
    # Keep the predicted mask (RLE) at 1 and max_points clicks so reports can draw examples
    # without the model; storage only, so it is not part of the protocol in results.json.
    save_masks: bool = True

    def __post_init__(self):
        if not self.first_point or any(m not in METRIC_PREFIX for m in self.first_point):
            raise SambenchError(f"point task: first_point {self.first_point!r} must be a non-empty list "
                                f"of {', '.join(METRIC_PREFIX)}")
        if not self.n_points or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                    for n in self.n_points):
            raise SambenchError(f"point task: n_points {self.n_points!r} must be a non-empty list of "
                                "positive integers")
        if any(not isinstance(t, (int, float)) or not 0 < t <= 1 for t in self.noc_thresholds):
            raise SambenchError(f"point task: noc_thresholds {self.noc_thresholds!r} must be in (0, 1]")
        if self.ignore not in IGNORE:
            raise SambenchError(f"point task: ignore {self.ignore!r} is not one of {', '.join(IGNORE)}")

    @property
    def max_points(self) -> int:
        return max(self.n_points)

    def to_json(self) -> dict:
        return {"first_point": self.first_point, "n_points": self.n_points,
                "multimask_first": self.multimask_first, "feed_back_logits": self.feed_back_logits,
                "multimask_later": self.multimask_later, "ignore": self.ignore,
                "noc_thresholds": self.noc_thresholds, "include_crowd": self.include_crowd,
                "ci95": ci_protocol()}


def metric_name(mode: str, step: int, oracle: bool = False) -> str:
    """The metric of the mean IoU of first-point ``mode`` after ``step`` points (or its oracle)."""
    return f"{METRIC_PREFIX[mode]}miou@{step}" + ("_oracle" if oracle else "")


def per_mask_metrics(protocol: dict) -> dict[str, tuple[str, int, str]]:
    """Metric name -> (mode, step, record column) for every metric that is the mean of one
    per-mask value of the records (what a paired comparison needs)."""
    out = {}
    for mode in protocol.get("first_point", []):
        for n in protocol.get("n_points", []):
            out[metric_name(mode, n)] = (mode, n, "iou")
            if n == 1 and protocol.get("multimask_first", True):
                out[metric_name(mode, 1, oracle=True)] = (mode, 1, "oracle_iou")
    return out


@dataclass(frozen=True)
class ModelLimits:
    """How far a model can follow the protocol: clicks run per mask, whether logits are fed
    back, and why each differs from the protocol (protocol field -> reason)."""

    clicks: int
    feed_back_logits: bool
    adapted: dict = field(default_factory=dict)

    @classmethod
    def of(cls, protocol: PointProtocol, model) -> "ModelLimits":
        info = model.info()
        caps = getattr(info, "capabilities", None) or Capabilities()
        clicks, feed, adapted = protocol.max_points, protocol.feed_back_logits, {}
        if feed and not caps.mask_input:
            feed = False
            adapted["feed_back_logits"] = (f"{info.family} accepts no mask input: each step is prompted "
                                           "with the clicks alone")
        if caps.max_points is not None and caps.max_points < clicks:
            clicks = caps.max_points
            adapted["max_points"] = (f"{info.family} takes at most {caps.max_points} points per prompt: "
                                     f"clicks stop at {clicks}; metrics that need more are unsupported")
        return cls(clicks, feed, adapted)

    def unsupported_metrics(self, protocol: PointProtocol) -> dict[str, str]:
        """Metrics that need more clicks than were run, with the reason."""
        out = {}
        for prefix in (METRIC_PREFIX[m] for m in protocol.first_point):
            for n in protocol.n_points:
                if n > self.clicks:
                    out[f"{prefix}miou@{n}"] = f"needs {n} clicks; the model takes at most {self.clicks} points"
            if self.clicks < protocol.max_points:
                for t in protocol.noc_thresholds:
                    out[f"{prefix}noc@{round(t * 100)}"] = (f"counts up to {protocol.max_points} clicks; the "
                                                            f"model takes at most {self.clicks} points")
        return out



@dataclass
class PointContext(DatasetContext):
    """The dataset's context plus how far the run's model follows the protocol."""

    limits: Optional[ModelLimits] = None

def evaluate_sample(model, embedding, sample: Sample, gts: list[np.ndarray], ids: list[str],
                    protocol: PointProtocol, seed: int, limits: Optional[ModelLimits] = None) -> list[dict]:
    """Run every first-point mode and click on all masks of one image; one row per mask,
    mode and step with the IoU, the click, the predicted score (and oracle IoU at step 1).
    ``limits``: what the model can take (default: the whole protocol)."""
    limits = limits or ModelLimits(protocol.max_points, protocol.feed_back_logits)
    void = sample.ignore_mask() if protocol.ignore == "exclude" else None
    ignores = [None if void is None else void & ~gt for gt in gts]  # a mask is never ignored in itself
    rows = []
    for mode in protocol.first_point:
        rows += _click_session(model, embedding, sample, gts, ids, ignores, mode, protocol, seed, limits)
    return rows


def _click_session(model, embedding, sample, gts, ids, ignores, mode, protocol, seed, limits) -> list[dict]:
    n = len(gts)
    shape = gts[0].shape
    preds = [np.zeros(shape, bool) for _ in range(n)]
    clicked = [np.zeros(shape, bool) for _ in range(n)]
    points: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    logits: list = [None] * n
    done = [False] * n
    rows = []
    for step in range(1, limits.clicks + 1):
        active = []
        for i in range(n):
            if done[i]:
                continue
            if step == 1 and mode == "random":
                click = random_point(gts[i], stable_rng(seed, sample.dataset, sample.id, ids[i]))
            else:
                click = next_click(gts[i], preds[i], clicked[i], ignores[i])
            if click is None:  # prediction already perfect: it stays, no more clicks
                done[i] = True
                continue
            points[i].append((click.x, click.y, click.label))
            clicked[i][click.y, click.x] = True
            active.append(i)
        iou_step, oracle_step, score_step = {}, {}, {}
        if active:
            multimask = protocol.multimask_first if step == 1 else protocol.multimask_later
            pts = np.array([[p[:2] for p in points[i]] for i in active], np.float32)
            lbl = np.array([[p[2] for p in points[i]] for i in active], np.int64)
            mask_in = None
            if limits.feed_back_logits and step > 1:
                mask_in = np.stack([logits[i] for i in active])[:, None]
            pred = model.predict(embedding, points=pts, labels=lbl, mask_input=mask_in,
                                 multimask=multimask)
            for j, i in enumerate(active):
                best = int(np.argmax(pred.scores[j]))
                ious = batch_iou(pred.masks[j], gts[i], ignores[i])
                preds[i] = pred.masks[j, best]
                logits[i] = pred.low_res_logits[j, best]
                iou_step[i], score_step[i] = float(ious[best]), float(pred.scores[j, best])
                if multimask and step == 1:
                    oracle_step[i] = float(ious.max())
        for i in range(n):
            if i in iou_step:
                row = {"mask": ids[i], "mode": mode, "step": step, "iou": iou_step[i],
                       "score": score_step[i], "point": list(points[i][-1])}
                if i in oracle_step:
                    row["oracle_iou"] = oracle_step[i]
            else:  # converged earlier: carry the previous IoU forward
                row = {"mask": ids[i], "mode": mode, "step": step, "iou": _last_iou(rows, ids[i], mode),
                       "point": None}
            if protocol.save_masks and step in (1, limits.clicks):
                row["pred"] = mask_codec.encode(preds[i])
            rows.append(row)
    return rows


def _last_iou(rows, mask_id, mode) -> float:
    for row in reversed(rows):
        if row["mask"] == mask_id and row["mode"] == mode:
            return row["iou"]
    return 1.0  # perfect before the first click can only mean an all-covering prediction


def aggregate(records: list[SampleRecord], protocol: PointProtocol, seed: int,
              unsupported: frozenset = frozenset()) -> dict:
    """Per-dataset metrics from the records: ``miou@N``, ``miou@1_oracle``, the ``random_``
    variants, each with a ``_ci95`` [lo, hi] pair, and ``noc@85`` / ``noc@90``; none of the
    ``unsupported`` names."""
    by_key: dict[tuple[str, str], dict[int, float]] = {}
    oracle: dict[tuple[str, str], float] = {}
    image: dict[tuple[str, str], str] = {}  # the bootstrap's cluster of each mask
    for rec in records:
        for row in rec.rows:
            key = (row["mode"], f"{rec.sample_id}/{row['mask']}")
            image[key] = rec.sample_id
            by_key.setdefault(key, {})[row["step"]] = row["iou"]
            if "oracle_iou" in row:
                oracle[key] = row["oracle_iou"]
    metrics: dict = {}
    for mode in protocol.first_point:
        prefix = METRIC_PREFIX[mode]
        masks = sorted(k for k in by_key if k[0] == mode)
        if not masks:
            continue
        for n in protocol.n_points:
            if metric_name(mode, n) not in unsupported:
                _put(metrics, metric_name(mode, n), [by_key[k][n] for k in masks], [image[k] for k in masks], seed)
        if protocol.multimask_first:
            with_oracle = [k for k in masks if k in oracle]
            _put(metrics, metric_name(mode, 1, oracle=True), [oracle[k] for k in with_oracle],
                 [image[k] for k in with_oracle], seed)
        for t in protocol.noc_thresholds:
            if f"{prefix}noc@{round(t * 100)}" in unsupported:
                continue
            curves = [[by_key[k][s] for s in range(1, protocol.max_points + 1)] for k in masks]
            metrics[f"{prefix}noc@{round(t * 100)}"] = float(np.mean([noc(c, t) for c in curves]))
    return metrics


def _put(metrics: dict, name: str, values: list[float], images: list[str], seed: int) -> None:
    if not values:
        return
    metrics[name] = float(np.mean(values))
    metrics[f"{name}_ci95"] = list(bootstrap_ci(values, seed, clusters=images))


class PointTask(TaskRunner):
    """Runner for the point protocol (see module docstring)."""

    name = "point"
    options_class = PointProtocol

    def prepare(self, ref, out: Path, model=None) -> PointContext:
        """The context carries how far ``model`` can follow the protocol (its declared
        capabilities); without a model, the whole protocol."""
        limits = (ModelLimits.of(self.proto, model) if model is not None
                  else ModelLimits(self.proto.max_points, self.proto.feed_back_logits))
        return PointContext(ref.name, Path(out), limits=limits)

    def protocol(self, context) -> dict:
        out = self.proto.to_json()
        limits = getattr(context, "limits", None)
        if limits is not None and limits.adapted:
            out.update(feed_back_logits=limits.feed_back_logits, clicks_run=limits.clicks,
                       adapted=limits.adapted)
        return out

    def result_fields(self, records: list[SampleRecord], metrics: dict, context) -> dict:
        unsupported = self._unsupported_metrics(context)
        return {"unsupported_metrics": unsupported} if unsupported else {}

    def _unsupported_metrics(self, context) -> dict[str, str]:
        limits = getattr(context, "limits", None)
        return limits.unsupported_metrics(self.proto) if limits is not None else {}

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """Per first-point mode: mIoU at each number of points, the oracle at 1 point, NoC.
        Headline: 1 centre point, its oracle, 5 centre points and 1 random point."""
        spec = []
        for mode in protocol.get("first_point", []):
            word = "mIoU" if mode == "center" else mode
            for n in protocol.get("n_points", []):
                spec.append(Metric(metric_name(mode, n), f"{word} {n} pt",
                                   headline=(n == 1) or (mode == "center" and n == 5)))
                if n == 1 and protocol.get("multimask_first", True):
                    label = "oracle 1 pt" if mode == "center" else f"{mode} oracle 1 pt"
                    spec.append(Metric(metric_name(mode, 1, oracle=True), label, headline=mode == "center"))
            for t in protocol.get("noc_thresholds", []):
                pct = round(t * 100)
                spec.append(Metric(f"{METRIC_PREFIX[mode]}noc@{pct}",
                                   f"NoC{pct}" if mode == "center" else f"{mode} NoC{pct}",
                                   scale=1, digits=2, higher_is_better=False))
        return spec

    def run_sample(self, model, sample: Sample, context, seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        gts, ids = decode_instances(sample, record, self.proto.include_crowd)
        if not gts:
            return record
        image = load_image_or_record(sample, record)
        if image is None:
            record.errors.extend({"kind": "mask_not_scored", "detail": f"mask {i}"} for i in ids)
            return record
        embedding = model.embed(image)
        record.rows = evaluate_sample(model, embedding, sample, gts, ids, self.proto, seed,
                                      ModelLimits.of(self.proto, model))
        return record

    def aggregate(self, records: list[SampleRecord], context, seed: int) -> dict:
        return aggregate(records, self.proto, seed, frozenset(self._unsupported_metrics(context)))
