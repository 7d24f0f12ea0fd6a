"""Task runners and suites.

A runner (``TaskRunner``) knows how to score one sample and how to aggregate records into
metrics. Optional hooks: ``begin_dataset(ref, out_dir)`` before a dataset is scored or
aggregated (``out_dir`` = ``<run>/<task>``, for files a runner writes), and
``result_fields(records, metrics) -> dict`` for extra keys of the dataset's results entry
(arrays the report draws, e.g. the edges task's ``pr_curve``), given the metrics ``aggregate``
computed. Tasks and suites themselves are data:
``tasks/<name>.yaml`` names a runner, a version and default options; a suite lists (task,
datasets, option overrides). A task's version goes into every result so old and new numbers are
visibly comparable or not.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import yaml

from sambench.errors import SambenchError
from sambench.registry import Registry
from sambench.resources import asset_dir
from sambench.types import Sample, SampleRecord


class TaskRunner(Protocol):
    def __init__(self, options: dict): ...

    def protocol(self) -> dict: ...

    def run_sample(self, model, sample: Sample, seed: int) -> SampleRecord: ...

    def aggregate(self, records: list[SampleRecord], seed: int) -> dict: ...


RUNNERS: Registry[type] = Registry("task runner")


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
        _import_runners()
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


def load_task(name: str, datasets: Optional[list[str]] = None, options: Optional[dict] = None) -> TaskSpec:
    data = _read_yaml(task_names().get(name))
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


def _import_runners() -> None:
    import importlib

    for module in ("sambench.tasks.point", "sambench.tasks.instances", "sambench.tasks.proposals",
                   "sambench.tasks.statistics", "sambench.tasks.edges", "sambench.tasks.text",
                   "sambench.tasks.concept"):
        importlib.import_module(module)


def parse_protocol(protocol_class, options: dict, task: str):
    """Build a runner's protocol dataclass from task options; unknown keys are a user error."""
    known = set(protocol_class.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise SambenchError(f"{task} task: unknown options {sorted(unknown)} (known: {sorted(known)})")
    return protocol_class(**options)


def open_choice(default, source: str, values: list):
    """A protocol field the paper leaves open: its default, where that default comes from, and
    the values ``sambench sensitivity`` tries (dataclass field metadata ``open``)."""
    factory = (lambda: list(default)) if isinstance(default, list) else None
    meta = {"open": True, "source": source, "values": list(values)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def open_choices(protocol) -> dict[str, dict]:
    """The open choices of a protocol dataclass (class or instance): name -> {source, values}."""
    return {f.name: {"source": f.metadata["source"], "values": list(f.metadata["values"])}
            for f in fields(protocol) if f.metadata.get("open")}


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


def load_image_or_record(sample: Sample, record: SampleRecord) -> Optional[np.ndarray]:
    """The sample's image, or None with an ``image`` error recorded (the CLI logs it)."""
    try:
        return sample.load_image()
    except SambenchError as exc:
        record.errors.append({"kind": "image", "detail": str(exc)})
        return None


__all__ = ["RUNNERS", "TaskSpec", "Suite", "load_task", "load_suite", "task_names",
           "suite_names", "parse_protocol", "decode_instances", "load_image_or_record",
           "open_choice", "open_choices"]
