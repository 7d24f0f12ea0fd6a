"""Task runners and suites.

A runner (:class:`TaskRunner`) turns one sample into a record and a dataset's records into
metrics. It holds only its validated options; what it knows about the dataset being scored is
the *context* that ``prepare`` returns and the engine hands back to every hook (detectron2's
``DatasetEvaluator`` lifecycle, with the state passed around, not kept). Per dataset::

    context = runner.prepare(ref, out, model)     # once: load what scoring needs
    record = runner.run_sample(model, sample, context, seed)   # per image, any rank
    metrics = runner.aggregate(records, context, seed)         # rank 0, all records
    entry.update(runner.result_fields(records, metrics, context))  # arrays for the report
    entry["protocol"] = runner.protocol(context)

Each runner declares its metrics once (:class:`Metric`, ``metric_spec``); results entries carry
them for the report and leaderboard. Tasks and suites are data: ``tasks/<name>.yaml`` names a
runner, a version (in every result) and default options; a suite lists (task, datasets, option
overrides).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import yaml

from sambench.errors import SambenchError
from sambench.options import open_choice, open_choices  # noqa: F401 (part of this API)
from sambench.registry import Registry
from sambench.resources import asset_dir
from sambench.types import Sample, SampleRecord


@dataclass(frozen=True)
class Metric:
    """One metric a runner reports: its key in ``metrics``, how it is shown (results.json keeps
    the raw value), which way is better, and whether it is a headline number (report summary,
    leaderboard; the first headline ranks)."""

    name: str
    label: str
    scale: float = 100
    digits: int = 1
    higher_is_better: bool = True
    headline: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DatasetContext:
    """What a runner knows about the dataset being scored (``prepare`` makes it; runners that
    need more subclass it): ``out`` = ``<run>/<task>`` for the files it writes, ``counts`` for
    results.json (e.g. detections left out)."""

    name: str
    out: Path
    counts: dict = field(default_factory=dict)


class TaskRunner:
    """The runner contract, with a default for every hook the engine calls."""

    name: ClassVar[str] = ""  # the registry name, used in messages
    options_class: ClassVar[Optional[type]] = None  # the protocol dataclass built from options
    uses_model: ClassVar[bool] = True  # False: a run of only this task needs no --model
    uses_images: ClassVar[bool] = True  # False: the engine does not decode images ahead

    def __init__(self, options: dict):
        self.proto = parse_protocol(self.options_class, options, self.name) if self.options_class else None

    def unsupported(self, model) -> Optional[str]:
        """Why ``model`` cannot answer this task (reported, not scored), or None."""
        return None

    def prepare(self, ref, out: Path, model=None) -> DatasetContext:
        """Load what scoring dataset ``ref`` needs, before any sample of it is scored; ``model``
        (None outside a run) is there for runners whose protocol follows its capabilities."""
        return DatasetContext(ref.name, Path(out))

    def run_sample(self, model, sample: Sample, context: DatasetContext, seed: int) -> SampleRecord:
        raise NotImplementedError

    def aggregate(self, records: list[SampleRecord], context: DatasetContext, seed: int) -> dict:
        raise NotImplementedError

    def result_fields(self, records: list[SampleRecord], metrics: dict, context: DatasetContext) -> dict:
        """Extra keys of the results entry (arrays the report draws), given ``metrics``."""
        return {}

    def protocol(self, context: Optional[DatasetContext]) -> dict:
        """Every setting of the protocol, for results.json (``context`` None: not scored)."""
        return asdict(self.proto) if self.proto is not None else {}

    @classmethod
    def metric_spec(cls, protocol: dict) -> list[Metric]:
        """The metrics a run under ``protocol`` (what :meth:`protocol` returned) reports."""
        return []


RUNNERS: Registry[type] = Registry("task runner")
RUNNERS.register("point", "sambench.tasks.point:PointTask", "single-point valid mask (SAM §7.1)")
RUNNERS.register("edges", "sambench.tasks.edges:EdgesTask", "zero-shot edge detection (SAM §7.2)")
RUNNERS.register("proposals", "sambench.tasks.proposals:ProposalsTask", "object proposals, mask AR (SAM §7.3)")
RUNNERS.register("instances", "sambench.tasks.instances:InstancesTask",
                 "box-prompted instance segmentation (SAM §7.4)")
RUNNERS.register("text", "sambench.tasks.text:TextTask", "text to mask (SAM §7.5)")
RUNNERS.register("statistics", "sambench.tasks.statistics:StatisticsTask", "dataset mask statistics (SAM §5)")
RUNNERS.register("concept", "sambench.tasks.concept:ConceptTask", "concept segmentation, cgF1 (SAM 3, SA-Co)")


@dataclass
class TaskSpec:
    """One task of a suite: a runner, its version, options and the datasets it runs on."""

    name: str
    runner: str
    version: int
    datasets: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    bundled: list[str] = field(default_factory=list)  # synthetic datasets `--task NAME` runs on alone

    def build(self) -> TaskRunner:
        return RUNNERS.get(self.runner)(self.options)


@dataclass
class Suite:
    name: str
    version: int
    tasks: list[TaskSpec]
    description: str = ""
    model: Optional[str] = None  # the suite's default model (the demo's bundled one)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SambenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SambenchError(f"{path}: expected a mapping at the top level")
    return data


def _task_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(asset_dir("tasks").glob("*.yaml"))}


def task_names() -> Registry[Path]:
    reg: Registry[Path] = Registry("task")
    for name, path in _task_files().items():
        if "runner" in _read_yaml(path):
            reg.add(name, path)
    return reg


def suite_names() -> Registry[Path]:
    reg: Registry[Path] = Registry("suite")
    for name, path in _task_files().items():
        if "tasks" in _read_yaml(path):
            reg.add(name, path)
    return reg


TASK_KEYS = {"runner", "version", "description", "options", "datasets", "bundled"}


def load_task(name: str, datasets: Optional[list[str]] = None, options: Optional[dict] = None) -> TaskSpec:
    path = task_names().get(name)
    data = _read_yaml(path)
    unknown = set(data) - TASK_KEYS
    if unknown:
        raise SambenchError(f"{path}: unknown keys {sorted(unknown)} (a task file has {sorted(TASK_KEYS)}; "
                            "its name is the file name)")
    merged = dict(data.get("options") or {})
    merged.update(options or {})
    return TaskSpec(name=name, runner=data["runner"], version=int(data.get("version", 1)),
                    datasets=list(datasets or data.get("datasets") or []), options=merged,
                    description=data.get("description", ""), bundled=list(data.get("bundled") or []))


def load_suite(name_or_file: str) -> Suite:
    path = Path(name_or_file)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = suite_names().get(name_or_file)
    data = _read_yaml(path)
    if "tasks" not in data:
        raise SambenchError(f"{path} is not a suite (no 'tasks' list)")
    tasks = []
    for entry in data["tasks"]:
        if not isinstance(entry, dict) or "task" not in entry:
            raise SambenchError(f"{path}: each suite entry needs a 'task' key")
        tasks.append(load_task(entry["task"], entry.get("datasets"), entry.get("options")))
    return Suite(name=data.get("name", path.stem), version=int(data.get("version", 1)),
                 tasks=tasks, description=data.get("description", ""), model=data.get("model"))


def runner_of(entry: dict) -> Optional[str]:
    """The runner behind a results entry (results written before entries named it: the
    runner its task file names, if that task still exists)."""
    if "runner" in entry:
        return entry["runner"]
    return load_task(entry["task"]).runner if entry["task"] in task_names() else None


def entry_metrics(entry: dict) -> list[Metric]:
    """The metrics a results entry declares (older entries: their runner's spec for the
    protocol they recorded, over the task file's options)."""
    if "metric_spec" in entry:
        return [Metric(**m) for m in entry["metric_spec"]]
    if entry["task"] not in task_names():
        return []
    task = load_task(entry["task"])
    return RUNNERS.get(task.runner).metric_spec({**task.options, **(entry.get("protocol") or {})})


def parse_protocol(protocol_class, options: dict, task: str):
    """Build a runner's protocol dataclass from task options; unknown keys are a user error
    (values are checked by the dataclass's ``__post_init__``)."""
    known = set(protocol_class.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise SambenchError(f"{task} task: unknown options {sorted(unknown)} (known: {sorted(known)})")
    return protocol_class(**options)


def decode_instances(sample: Sample, record: SampleRecord, include_crowd: bool):
    """Decode the instances a mask task scores; count crowd/ignore and adapter problems.

    An instance with an empty mask is never prompted (it would have no click and a perfect
    IoU): it is counted as ``empty_mask``, which the engine logs.
    """
    for problem in sample.problems:
        record.errors.append(dict(problem))
    gts, ids = [], []
    for inst in sample.instances:
        if (inst.iscrowd or inst.ignore) and not include_crowd:
            record.errors.append({"kind": "crowd_excluded", "detail": f"mask {inst.id}"})
            continue
        mask = inst.mask()
        if not mask.any():
            record.errors.append({"kind": "empty_mask", "detail": f"mask {inst.id}: no pixel, not prompted"})
            continue
        gts.append(mask)
        ids.append(inst.id)
    return gts, ids


def best_masks(model, embedding, n: int, multimask: bool, batch_size: Optional[int] = None,
               refine_multimask: Optional[bool] = None, **prompts):
    """(mask, predicted IoU) of the most confident output for each of ``n`` batched prompts
    (``model.predict`` keywords, None: not given), ``batch_size`` at a time (speed only). With
    ``refine_multimask`` set, each batch gets one more pass (SAM App. D.4): the kept mask's
    low-res logits with the same prompts, in that output mode."""
    step = batch_size or n
    for start in range(0, n, step):
        part = {k: v[start:start + step] for k, v in prompts.items() if v is not None}
        pred = model.predict(embedding, multimask=multimask, **part)
        rows = np.arange(len(pred.scores))
        best = np.argmax(pred.scores, axis=1)
        if refine_multimask is not None:
            pred = model.predict(embedding, mask_input=pred.low_res_logits[rows, best][:, None],
                                 multimask=refine_multimask, **part)
            best = np.argmax(pred.scores, axis=1)
        for mask, score in zip(pred.masks[rows, best], pred.scores[rows, best]):
            yield mask, float(score)


def load_image_or_record(sample: Sample, record: SampleRecord) -> Optional[np.ndarray]:
    """The sample's image, or None with an ``image`` error recorded (the CLI logs it)."""
    try:
        return sample.load_image()
    except SambenchError as exc:
        record.errors.append({"kind": "image", "detail": str(exc)})
        return None


__all__ = ["RUNNERS", "Metric", "DatasetContext", "TaskRunner", "runner_of", "entry_metrics", "TaskSpec",
           "Suite", "load_task", "load_suite", "task_names", "suite_names", "parse_protocol",
           "decode_instances", "best_masks", "load_image_or_record", "open_choice", "open_choices"]
