"""Text-to-mask (SAM paper §7.5, App. D.5; docs/protocols.md), measured.

The paper only showed pictures. Here every ground-truth instance with a phrase gives one
evaluation unit per phrase, scored in each mode of the protocol:

- ``text``: the phrase's ℓ2-normalised embedding alone (one text prompt token); needs a model
  with a text path and the text encoder it was trained with (:mod:`sambench.text`);
- ``text+point``: the embedding plus the instance's centre point (the deepest interior pixel,
  :func:`sambench.prompts.center_point`), the paper's "text + 1 point" fix;
- ``det`` / ``det+point``: the composed route: the top-scoring box a text-conditioned detector
  gave for (image, phrase) (:mod:`sambench.tasks.text_detections`), alone or with the centre
  point, so detector + SAM pipelines are scored on the same units; a unit without a box scores
  IoU 0 and is counted (``no_detection``);
- ``chance`` (always, no model): a random object's mask of the same image (uniform over its
  non-crowd instances, the target included; seeded per unit) as the prediction.

Phrases (option ``phrases``): ``expressions`` (referring expressions, RefCOCO layout,
:mod:`sambench.datasets.refcoco`), ``description`` (instance metadata, e.g. the synthetic
datasets' "the red triangle"), ``category`` (the category name, any COCO/LVIS-format dataset;
ambiguous when an image has several instances of it, which rows flag), or ``auto``: per image,
expressions if any instance has them, else descriptions, else category names.

Per mode, the most confident of the model's outputs is scored (``multimask`` says per mode
whether it returns 3 masks or 1). Metrics (:mod:`sambench.metrics.referring`), prefixed by the
mode (``text_``, ``text+point_``, ``det_``, ``det+point_``, ``chance_``): ``miou`` (+ ``_ci95``),
``ciou`` (Σ intersection / Σ union), ``p@0.5`` / ``p@0.7`` / ``p@0.9`` (IoU ≥ t); with a
detections file also ``det_coverage`` (fraction of units that had a box).

The ``text`` mode is also scored as concept segmentation (cgF1, :mod:`sambench.metrics.cgf1`,
docs/concepts.md), which needs phrases that are *absent* from an image. Per image, every
distinct phrase of its instances is a positive pair (ground truth: all its instances of that
phrase), and ``negatives`` phrases of the dataset's vocabulary that no instance of the image
carries are negative pairs (drawn per image from the run seed; ``all``: every absent phrase).
The model's most confident mask per pair is scored with its predicted IoU, as SA-Co scores a
prediction (kept at >= 0.5), and reported as ``text_cgf1``, ``text_il_mcc``, ``text_pmf1``
and the rest of the concept metrics. Only category and description phrases make pairs: a
referring expression names one object, so its absence from an image is undefined.
"""
from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.metrics.cgf1 import SCORE_THRESHOLD, PairScore, results_metrics, score_annotators
from sambench.metrics.iou import ci_protocol
from sambench.metrics.referring import intersection_union, referring_metrics
from sambench.models.base import supports_text
from sambench.prompts import center_point, stable_rng
from sambench.tasks import (DatasetContext, Metric, TaskRunner, best_masks, decode_instances,
                            load_image_or_record)
from sambench.tasks.text_detections import load_text_detections, phrase_key
from sambench.types import Sample, SampleRecord

log = logging.getLogger("sambench")

MODES = ("text", "text+point", "det", "det+point")
PREFIX = {"text": "text_", "text+point": "text+point_", "det": "det_", "det+point": "det+point_",
          "chance": "chance_"}
PHRASES = ("auto", "expressions", "description", "category")
CONCEPT_SOURCES = ("description", "category")  # phrases whose absence from an image is defined
MODE_LABELS = {"text": "", "text+point": "text + 1 pt ", "det": "det. box ", "det+point": "det. box + 1 pt ",
               "chance": "chance "}
HEADLINE_MODES = ("text", "text+point", "det", "chance")
DEFAULT_MULTIMASK = {"text": True, "text+point": False, "det": False, "det+point": False}
# (metric, label, a headline of the concept route); the text and det routes headline cgF1 only
CGF1_METRICS = (("cgf1", "cgF1", True), ("cgf1@0.5", "cgF1@0.5", False), ("cgf1@0.75", "cgF1@0.75", False),
                ("il_mcc", "IL_MCC", True), ("pmf1", "pmF1", True), ("positive_macro_f1", "pos. macro-F1", False),
                ("precision", "precision", False), ("recall", "recall", False), ("il_f1", "IL_F1", False),
                ("il_fpr", "IL_FPR", False))


def cgf1_metric_spec(prefix: str, label: str, factors_headline: bool) -> list[Metric]:
    """cgF1 and its factors as ``prefix`` + name (the concept task's routes, the text task's
    text mode): cgF1 is a headline, IL_MCC and pmF1 too with ``factors_headline``."""
    return [Metric(f"{prefix}{name}", f"{label}{text}", headline=name == "cgf1" or (factors_headline and headline))
            for name, text, headline in CGF1_METRICS]


@dataclass
class TextProtocol:
    """Every choice of the protocol, recorded in results.json's ``protocol``."""

    modes: list[str] = field(default_factory=lambda: ["text", "text+point"])
    phrases: str = "auto"  # auto | expressions | description | category
    text_encoder: Optional[str] = None  # NAME[:ARG]; None: the one the checkpoint records
    text_detections: Optional[str] = None  # JSON file of the det modes (text_detections.py)
    multimask: dict = field(default_factory=lambda: dict(DEFAULT_MULTIMASK))
    thresholds: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9])
    chance: bool = True
    include_crowd: bool = False  # crowd / ignore masks are neither units nor chance picks
    batch_size: Optional[int] = None  # prompts per predict call (None: all of an image); speed only
    negatives: Union[int, str] = 5  # absent phrases per image for cgF1 of mode text: N, "all", or 0 (none)

    def __post_init__(self):
        if not self.modes or any(m not in MODES for m in self.modes):
            raise SambenchError(f"text task: modes {self.modes!r} must be a non-empty list of {', '.join(MODES)}")
        if self.phrases not in PHRASES:
            raise SambenchError(f"text task: phrases {self.phrases!r} is not one of {', '.join(PHRASES)}")
        unknown = set(self.multimask) - set(MODES)
        if unknown:
            raise SambenchError(f"text task: multimask has unknown modes {sorted(unknown)}")
        self.multimask = {**DEFAULT_MULTIMASK, **self.multimask}
        if not all(isinstance(t, (int, float)) and 0 < t <= 1 for t in self.thresholds):
            raise SambenchError(f"text task: thresholds must be in (0, 1], got {self.thresholds!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise SambenchError(f"text task: batch_size must be a positive integer, got {self.batch_size!r}")
        uses_boxes = any(m.startswith("det") for m in self.modes)
        if uses_boxes and not self.text_detections:
            raise SambenchError("text task: modes det / det+point need a detections file "
                                "(--text-detections FILE, docs/text.md)")
        if self.text_detections and not uses_boxes:
            raise SambenchError("text task: a detections file is given but no det / det+point mode")
        if self.text_detections:
            load_text_detections(self.text_detections)  # a bad file fails before any work
        if not (self.negatives == "all" or (type(self.negatives) is int and self.negatives >= 0)):
            raise SambenchError(f"text task: negatives must be a count >= 0 or 'all', got {self.negatives!r}")

    @property
    def scores_concepts(self) -> bool:
        """Whether mode text is also scored as concept segmentation (cgF1)."""
        return "text" in self.modes and self.negatives != 0 and self.phrases != "expressions"

    def to_json(self) -> dict:
        out = {"modes": self.modes, "phrases": self.phrases, "text_encoder": self.text_encoder,
               "multimask": {m: self.multimask[m] for m in self.modes},
               "thresholds": self.thresholds, "chance": self.chance, "include_crowd": self.include_crowd,
               "unit": "one per (ground-truth instance, phrase)",
               "scored_mask": "the most confident output",
               "point": "centre: deepest interior pixel of the ground-truth mask",
               "chance_rule": "a uniformly drawn non-crowd instance of the same image (target included), "
                              "seeded per unit"}
        if self.text_detections:
            dets = load_text_detections(self.text_detections)
            out.update(text_detections=str(self.text_detections), text_detections_sha256=dets.sha256,
                       box_rule="top-scoring box per (image, phrase); none: IoU 0")
        if self.scores_concepts:
            out.update(negatives=self.negatives, concept_pairs=(
                "mode text, category / description phrases: per image one pair per distinct phrase of its "
                "instances (ground truth: all of them) and the negatives, phrases of the dataset's vocabulary "
                "that no instance of the image carries, drawn per image from the run seed; the most confident "
                f"mask per pair, scored with its predicted IoU, kept at >= {SCORE_THRESHOLD}"))
        return out


@dataclass
class Unit:
    """One (instance, phrase) pair to score."""

    gt: int  # index into the image's decoded instances
    mask: str  # instance id
    phrase: str
    k: int  # index of the phrase among the instance's phrases
    source: str  # expressions | description | category
    ambiguous: bool = False  # another instance of the image has the same phrase


def category_phrase(category: str) -> str:
    """A category name as a phrase: LVIS's ``bat_(animal)`` → ``bat (animal)``."""
    return " ".join(category.replace("_", " ").split())


def phrase_source(sample: Sample, option: str) -> str:
    """The phrase source of one image: the option, or for ``auto`` the richest one present."""
    if option != "auto":
        return option
    if any(inst.meta.get("expressions") for inst in sample.instances):
        return "expressions"
    if any(inst.meta.get("description") for inst in sample.instances):
        return "description"
    return "category"


def instance_phrases(inst, source: str) -> list[str]:
    if source == "expressions":
        return [p for p in inst.meta.get("expressions") or [] if isinstance(p, str) and p.strip()]
    if source == "description":
        text = inst.meta.get("description")
        return [text] if isinstance(text, str) and text.strip() else []
    return [category_phrase(inst.category)] if inst.category.strip() else []


def make_units(sample: Sample, ids: list[str], option: str, record: SampleRecord) -> list[Unit]:
    """The units of one image; instances without a phrase are counted (``no_phrase``) unless the
    source is referring expressions, where most objects are simply not referred to."""
    source = phrase_source(sample, option)
    by_id = {inst.id: inst for inst in sample.instances}
    units = []
    for index, mask_id in enumerate(ids):
        phrases = instance_phrases(by_id[mask_id], source)
        if not phrases and source != "expressions":
            record.errors.append({"kind": "no_phrase", "detail": f"mask {mask_id} has no {source}"})
        units += [Unit(index, mask_id, p, k, source) for k, p in enumerate(phrases)]
    counts: dict[str, set] = {}
    for unit in units:
        counts.setdefault(unit.phrase.lower(), set()).add(unit.mask)
    for unit in units:
        unit.ambiguous = len(counts[unit.phrase.lower()]) > 1
    return units


def _centre(gt: np.ndarray) -> list[int]:
    click = center_point(gt)
    if click is None:  # an empty mask is dropped by the adapters; keep a defined fallback
        return [gt.shape[1] // 2, gt.shape[0] // 2]
    return [click.x, click.y]


@dataclass
class Vocabulary:
    """What the concept pairs need from the whole dataset, read once before scoring: per phrase
    source the distinct phrases (key → phrase as first written), and per image the phrase keys
    of all its instances and their number (a run that scores fewer masks of an image, e.g. a
    sample list, cannot tell which phrases are absent)."""

    phrases: dict = field(default_factory=dict)  # source -> {key: phrase}, keys sorted
    present: dict = field(default_factory=dict)  # image id -> {source: frozenset of keys}
    n_instances: dict = field(default_factory=dict)  # image id -> number of instances

    def to_json(self) -> dict:
        return {source: {"phrases": len(keys), "sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest()}
                for source, keys in self.phrases.items()}


def build_vocabulary(dataset, option: str) -> Vocabulary:
    """The :class:`Vocabulary` of ``dataset`` (every sample, in dataset order) for the phrase
    option ``option`` (``auto``: both concept sources)."""
    sources = CONCEPT_SOURCES if option == "auto" else (option,)
    vocab = Vocabulary({source: {} for source in sources})
    for sample in dataset:
        present = {}
        for source in sources:
            keys = set()
            for inst in sample.instances:
                for phrase in instance_phrases(inst, source):
                    keys.add(phrase_key(phrase))
                    vocab.phrases[source].setdefault(phrase_key(phrase), phrase)
            present[source] = frozenset(keys)
        vocab.present[sample.id] = present
        vocab.n_instances[sample.id] = len(sample.instances)
    vocab.phrases = {source: dict(sorted(words.items())) for source, words in vocab.phrases.items()}
    return vocab


def draw_negatives(vocab: Vocabulary, sample: Sample, source: str, count: Union[int, str], seed: int) -> list[str]:
    """``count`` phrases of ``source`` that no instance of the image carries (``all``: every
    one), in vocabulary order, drawn from the run seed and the image alone."""
    present = vocab.present[sample.id][source]
    absent = [key for key in vocab.phrases[source] if key not in present]
    if count != "all" and count < len(absent):
        rng = stable_rng(seed, sample.dataset, sample.id, "negatives")
        absent = [absent[i] for i in sorted(rng.choice(len(absent), count, replace=False))]
    return [vocab.phrases[source][key] for key in absent]


@dataclass
class TextContext(DatasetContext):
    encoder_info: Optional[dict] = None  # the text encoder run_sample used, for the protocol
    vocabulary: Optional[Vocabulary] = None  # for the concept pairs (protocol.scores_concepts)


@functools.lru_cache(maxsize=2)
def _load_encoder(spec: str, device: str, dim: int):
    from sambench.text import load_text_encoder

    return load_text_encoder(spec, device=device, dim=dim)


def text_encoder_for(model, option: Optional[str]):
    """The text encoder for ``model``: ``option`` (NAME[:ARG]), else the one its checkpoint
    records; a different name than the recorded one is refused (another embedding space).
    Shared by the text task and the concept task's text route."""
    from sambench.registry import split_spec

    name = model.info().name
    if not supports_text(model):
        raise SambenchError(f"text task: model {name} has no text path, so modes text / text+point "
                            "cannot run; score a text-conditioned detector's boxes with it instead "
                            "(--text-detections FILE) or use a checkpoint with a text path (docs/text.md)")
    recorded = getattr(model, "text_encoder", None)
    spec = option or recorded
    if not spec:
        raise SambenchError(f"text task: model {name} does not record which text encoder its text path "
                            "was trained with (safetensors metadata 'text_encoder' or a <checkpoint>.json "
                            "sidecar); pass --text-encoder NAME[:ARG]")
    if recorded and split_spec(recorded)[0] != split_spec(spec)[0]:
        raise SambenchError(f"text task: model {name} was trained with text encoder {recorded!r}; "
                            f"--text-encoder {spec} gives embeddings of another space")
    encoder = _load_encoder(spec, str(getattr(model, "device", "cpu")), model.text_dim)
    if encoder.dim != model.text_dim:
        raise SambenchError(f"text task: text encoder {spec} gives {encoder.dim}-d embeddings, "
                            f"model {name} takes {model.text_dim}")
    return encoder


class TextTask(TaskRunner):
    """Runner for the text-to-mask protocol (see module docstring)."""

    name = "text"
    options_class = TextProtocol

    def protocol(self, context: Optional[TextContext]) -> dict:
        out = {**self.proto.to_json(), "ci95": ci_protocol()}
        if context is not None and context.encoder_info is not None:
            out["text_encoder_used"] = context.encoder_info
        if context is not None and context.vocabulary is not None:
            out["negative_vocabulary"] = context.vocabulary.to_json()
        return out

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """Per mode and the chance level: mIoU (headline), cIoU and P@t; detector coverage;
        cgF1 (headline) and its factors of mode text when negatives are drawn."""
        spec = []
        modes = [*protocol.get("modes", []), *(["chance"] if protocol.get("chance", True) else [])]
        for mode in modes:
            word, prefix = MODE_LABELS[mode], PREFIX[mode]
            spec.append(Metric(f"{prefix}miou", f"{word}mIoU", headline=mode in HEADLINE_MODES))
            spec.append(Metric(f"{prefix}ciou", f"{word}cIoU"))
            spec += [Metric(f"{prefix}p@{t}", f"{word}P@{t}") for t in protocol.get("thresholds", [])]
        if any(m.startswith("det") for m in protocol.get("modes", [])):
            spec.append(Metric("det_coverage", "det. boxes"))
        if "concept_pairs" in protocol:  # written only when mode text is scored by cgF1
            spec += cgf1_metric_spec(PREFIX["text"], "", False)
        return spec

    def prepare(self, ref, out: Path, model=None) -> TextContext:
        """The phrase vocabulary of the whole split, when mode text is also scored by cgF1."""
        context = TextContext(ref.name, Path(out))
        if self.proto.scores_concepts and (model is None or supports_text(model)):
            context.vocabulary = build_vocabulary(ref.open(subsample=False), self.proto.phrases)
        return context

    def unsupported(self, model) -> Optional[str]:
        """Why ``model`` cannot run these modes (the engine then reports the task as
        ``unsupported`` instead of failing the suite), or None."""
        if any(m in ("text", "text+point") for m in self.proto.modes) and not supports_text(model):
            return (f"model {model.info().name} has no text path (text prompts need a checkpoint trained "
                    "with one; a text-conditioned detector's boxes can be scored with --text-detections FILE)")
        return None

    def encoder(self, model):
        """The text encoder for ``model`` under this task's ``text_encoder`` option."""
        return text_encoder_for(model, self.proto.text_encoder)

    # -- scoring -------------------------------------------------------------------------
    def run_sample(self, model, sample: Sample, context: Optional[TextContext], seed: int) -> SampleRecord:
        record = SampleRecord(sample.id)
        gts, ids = decode_instances(sample, record, self.proto.include_crowd)
        units = make_units(sample, ids, self.proto.phrases, record) if gts else []
        if not units:
            return record
        text_modes = [m for m in self.proto.modes if m.startswith("text")]
        encoder = self.encoder(model) if text_modes else None  # fail before decoding the image
        if encoder is not None and context is not None:
            context.encoder_info = encoder.info()
        image = load_image_or_record(sample, record)
        if image is None:
            record.errors.extend({"kind": "phrase_not_scored", "detail": f"mask {u.mask}: {u.phrase!r}"}
                                 for u in units)
            return record
        embedding = model.embed(image)
        points = None
        if any(m.endswith("+point") for m in self.proto.modes):
            centres = {i: _centre(gts[i]) for i in sorted({u.gt for u in units})}
            points = np.array([[centres[u.gt]] for u in units], np.float32)  # (U, 1, 2)
        text = encoder.encode([u.phrase for u in units]) if encoder is not None else None
        for mode in self.proto.modes:
            with_point = mode.endswith("+point")
            prompts = {"points": points if with_point else None,
                       "labels": np.ones(points.shape[:2], np.int64) if with_point else None}
            if mode.startswith("text"):
                record.rows += self._score(model, embedding, units, gts, mode, dict(prompts, text=text))
                if mode == "text" and context is not None and context.vocabulary is not None:
                    record.rows += self._concept_rows(model, embedding, encoder, sample, units, gts, context,
                                                      record, seed)
            else:
                record.rows += self._score_boxes(model, embedding, sample, units, gts, mode, prompts, record)
        if self.proto.chance:
            record.rows += self._chance_rows(sample, units, gts, ids, seed)
        return record

    def _row(self, unit: Unit, mode: str, mask: Optional[np.ndarray], gt: np.ndarray, **extra) -> dict:
        if mask is None:
            inter, union = 0, int(np.count_nonzero(gt))
        else:
            inter, union = intersection_union(mask, gt)
        row = {"mask": unit.mask, "phrase": unit.phrase, "k": unit.k, "source": unit.source,
               "mode": mode, "iou": inter / union if union else 1.0, "inter": inter, "union": union}
        if unit.ambiguous:
            row["ambiguous"] = True
        row.update(extra)
        return row

    def _score(self, model, embedding, units, gts, mode, prompts) -> list[dict]:
        preds = best_masks(model, embedding, len(units), self.proto.multimask[mode],
                           self.proto.batch_size, **prompts)
        rows = []
        for j, (unit, (mask, score)) in enumerate(zip(units, preds)):
            extra = {"score": score}
            if prompts.get("points") is not None:
                extra["point"] = prompts["points"][j, 0].astype(int).tolist()
            rows.append(self._row(unit, mode, mask, gts[unit.gt], **extra))
        return rows

    def _score_boxes(self, model, embedding, sample, units, gts, mode, prompts, record) -> list[dict]:
        detections = load_text_detections(self.proto.text_detections)
        found = [detections.lookup(sample.id, u.phrase) for u in units]
        have = [j for j, det in enumerate(found) if det is not None]
        rows: list[Optional[dict]] = [None] * len(units)
        if have:
            boxes = np.array([found[j][0] for j in have], np.float32)
            sub = {k: (None if v is None else v[have]) for k, v in prompts.items()}
            preds = best_masks(model, embedding, len(have), self.proto.multimask[mode],
                               self.proto.batch_size, box=boxes, **sub)
            for j, (mask, score) in zip(have, preds):
                box, det_score, _ = found[j]
                extra = {"score": score, "box": box, "det_score": det_score}
                if sub.get("points") is not None:
                    extra["point"] = prompts["points"][j, 0].astype(int).tolist()
                rows[j] = self._row(units[j], mode, mask, gts[units[j].gt], **extra)
        for j, unit in enumerate(units):
            if rows[j] is None:
                rows[j] = self._row(unit, mode, None, gts[unit.gt], missing=True)
                if mode == next(m for m in self.proto.modes if m.startswith("det")):  # count once per unit
                    record.errors.append({"kind": "no_detection", "detail": f"mask {unit.mask}: {unit.phrase!r}"})
        return rows

    def _concept_rows(self, model, embedding, encoder, sample, units, gts, context, record, seed) -> list[dict]:
        """The image's concept pairs (see module docstring): one row per pair with its cgF1
        counts; none when its phrases are expressions or not all of its masks are scored."""
        source, vocab = units[0].source, context.vocabulary
        if source not in vocab.phrases:
            return []
        if len(sample.instances) != vocab.n_instances.get(sample.id):
            record.errors.append({"kind": "concept_not_scored",
                                  "detail": "the run scores a subset of the image's masks, so absent phrases are unknown"})
            return []
        positives: dict[str, tuple[str, set]] = {}
        for unit in units:
            positives.setdefault(phrase_key(unit.phrase), (unit.phrase, set()))[1].add(unit.gt)
        phrases = [phrase for phrase, _ in positives.values()]
        truths = [sorted(indices) for _, indices in positives.values()]
        negatives = draw_negatives(vocab, sample, source, self.proto.negatives, seed)
        phrases, truths = phrases + negatives, truths + [[] for _ in negatives]
        preds = best_masks(model, embedding, len(phrases), self.proto.multimask["text"], self.proto.batch_size,
                           text=encoder.encode(phrases))
        rows = []
        for phrase, truth, (mask, score) in zip(phrases, truths, preds):
            annotation = ([mask_codec.encode(gts[i]) for i in truth], [False] * len(truth))
            pair, _ = score_annotators([annotation], [mask_codec.encode(mask)], [score])
            rows.append({"mode": "concept", "phrase": phrase, "source": source, "negative": not truth,
                         "n_gt": len(truth), "score": score, "pair": pair.to_json()})
        return rows

    def _chance_rows(self, sample, units, gts, ids, seed) -> list[dict]:
        rows = []
        for unit in units:
            rng = stable_rng(seed, sample.dataset, sample.id, unit.mask, str(unit.k), "chance")
            pick = int(rng.integers(len(gts)))
            rows.append(self._row(unit, "chance", gts[pick], gts[unit.gt], picked=ids[pick]))
        return rows

    # -- aggregation ---------------------------------------------------------------------
    def aggregate(self, records: list[SampleRecord], context: Optional[TextContext], seed: int) -> dict:
        by_mode: dict[str, list[dict]] = {}
        images: dict[str, list[str]] = {}  # the bootstrap's cluster of each unit
        for rec in records:
            for row in rec.rows:
                by_mode.setdefault(row["mode"], []).append(row)
                images.setdefault(row["mode"], []).append(rec.sample_id)
        metrics: dict = {}
        for mode in [*self.proto.modes, "chance"]:
            rows = by_mode.get(mode, [])
            metrics.update(referring_metrics([r["inter"] for r in rows], [r["union"] for r in rows],
                                             self.proto.thresholds, seed, PREFIX[mode], images.get(mode, [])))
        if by_mode.get("concept"):
            metrics.update(results_metrics([PairScore.from_json(r["pair"]) for r in by_mode["concept"]],
                                           PREFIX["text"]))
        det_modes = [m for m in self.proto.modes if m.startswith("det")]
        if det_modes and by_mode.get(det_modes[0]):
            rows = by_mode[det_modes[0]]
            metrics["det_coverage"] = float(np.mean([not r.get("missing") for r in rows]))
            self._log_unused_detections(records, rows)
        return metrics

    def _log_unused_detections(self, records, rows) -> None:
        from sambench.tasks.text_detections import phrase_key

        scored = {rec.sample_id for rec in records}
        asked = {(rec.sample_id, phrase_key(row["phrase"])) for rec in records for row in rec.rows}
        detections = load_text_detections(self.proto.text_detections)
        unused = [k for k in detections.best if k[0] in scored and k not in asked]
        if unused:
            log.warning("text: %d (image, phrase) pairs of %s match no evaluated unit (e.g. %s): not scored",
                        len(unused), detections.path, unused[:3])


__all__ = ["TextTask", "TextProtocol", "make_units", "category_phrase", "text_encoder_for"]
