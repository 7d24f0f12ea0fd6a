"""Run a suite: plan (task × dataset), score samples, write records, aggregate, summarise.

Records are one JSON file per sample under ``records/<task>/<dataset>/``, written atomically;
a rerun into the same directory skips samples whose record exists, so a killed run resumes
without recomputing or duplicating, and the final numbers equal an uninterrupted run's
(random prompts are seeded per mask, not by order). ``run.json`` pins the configuration and
the checkpoint's and datasets' content so a resume cannot silently mix two different runs;
the run directory's lock, pins and record recovery live in :mod:`sambench.rundir`.
"""
from __future__ import annotations

import logging
import sys
import time
from collections import Counter, deque
from itertools import islice
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from tqdm import tqdm

from sambench import datasets, distributed, rundir, validate
from sambench.cache import CachedModel, EmbeddingCache, supports_cache
from sambench.datasets.base import IndexedDataset
from sambench.errors import SambenchError
from sambench.models import ModelInfo, load_model
from sambench.paths import record_path
from sambench.results import SCHEMA, atomic_write_json, provenance
from sambench.tasks import Suite, TaskRunner, TaskSpec
from sambench.types import Sample, SampleRecord

log = logging.getLogger("sambench")


class NoModel:
    """The model of a run whose tasks use none (``uses_model = False``, e.g. statistics)."""

    name = "none"

    def info(self) -> ModelInfo:
        return ModelInfo(name="none", family="none", checkpoint=None, sha256=None, params=0,
                         config={"note": "no model: the run's tasks do not use one"})

    def embed(self, *args, **kwargs):
        raise SambenchError("this run has no model (--model): its tasks were said to need none")

    def predict(self, *args, **kwargs):
        return self.embed()


def device_used(model) -> str:
    """The device the model really runs on: its ``device`` attribute, else the CPU (models
    such as grabcut and sobel have no other); what results.json records as ``run.device``."""
    device = getattr(model, "device", None)
    return str(device) if device is not None else "cpu"


@dataclass
class RunConfig:
    model: Optional[str]  # None: no task of the suite uses a model
    suite: Suite
    out: Path
    seed: int = 0
    limit: Optional[int] = None
    device: str = "cpu"
    dtype: str = "float32"
    data_root: Optional[str] = None
    explicit_datasets: bool = False  # named on the command line: a missing folder is an error
    command: str = ""
    model_options: Optional[dict] = None
    cache: Optional[str] = None  # embedding cache folder (default: $SAMBENCH_CACHE/embeddings)
    use_cache: bool = True
    sample_lists: Optional[dict] = None  # dataset name -> frozen sample list file (--sample-list)
    restart: bool = False  # start the run directory over (--restart)
    verify_data: bool = False  # pin the images' content hashes, not only sizes and mtimes

    def fingerprint(self) -> dict:
        """What must not change between a run and its resume."""
        fp = {"model": self.model, "model_options": self.model_options or {},
              "suite": self.suite.name, "suite_version": self.suite.version,
              "tasks": [{"name": t.name, "version": t.version, "datasets": t.datasets,
                         "options": t.options} for t in self.suite.tasks],
              "seed": self.seed, "limit": self.limit, "dtype": self.dtype,
              "max_pixels": validate.max_pixels()}
        if self.sample_lists:
            fp["sample_lists"] = {name: datasets.sampling.file_sha256(path)
                                  for name, path in sorted(self.sample_lists.items())}
        return fp




def _check_some_data(plan: list, data_root: Optional[str]) -> None:
    """A run whose datasets are all absent is a mistake (a mistyped --data-root), not a report
    of absent rows: say where we looked and what we expected there."""
    absent = [ref for _, _, ref in plan if not ref.present()]
    if not plan or len(absent) < len(plan):
        return
    names = list(dict.fromkeys(ref.root.name for ref in absent))
    where = f"--data-root {data_root}" if data_root else "their folders"
    raise SambenchError(f"none of the {len(names)} datasets of this run is present under {where}: expected "
                        f"folders such as {', '.join(names[:3])} (see `sambench datasets list"
                        f"{' --data-root ' + str(data_root) if data_root else ''}` for every name and folder)")


def run(config: RunConfig) -> Optional[dict]:
    """Execute the suite and write ``results.json``; returns the results dict (on rank 0;
    other ranks of a torchrun job return None after scoring their shard)."""
    started = time.time()
    dist = distributed.init(config.device)
    # Resolve every name and load the model before touching the run directory, so a typo
    # fails fast and leaves nothing behind.
    plan = []
    for task in config.suite.tasks:
        runner = task.build()
        for name in task.datasets:
            ref = datasets.resolve(name, config.data_root)
            if config.explicit_datasets and not ref.present():
                raise SambenchError(f"dataset {ref.name}: folder not found: {ref.root}")
            plan.append((task, runner, ref))
    _check_some_data(plan, config.data_root)
    if config.model is None:
        if any(runner.uses_model for _, runner, _ in plan):
            raise SambenchError("this run needs a model: pass --model NAME[:CHECKPOINT]")
        model = NoModel()
    else:
        model = load_model(config.model, device=dist.device(config.device), dtype=config.dtype,
                           **(config.model_options or {}))
        if device_used(model) != dist.device(config.device) and dist.is_main:
            log.warning("model %s runs on %s only: --device %s is not used (and not recorded)",
                        config.model, device_used(model), config.device)
    unsupported = {}  # runner id -> why this model cannot answer the task (reported, not scored)
    for task, runner, _ in plan:
        reason = runner.unsupported(model)
        if reason and id(runner) not in unsupported:
            unsupported[id(runner)] = reason
            if dist.is_main:
                log.warning("task %s not run: %s", task.name, reason)
    if unsupported and all(id(runner) in unsupported for _, runner, _ in plan):
        raise SambenchError("nothing to run: " + "; ".join(dict.fromkeys(unsupported.values())))
    cache = None
    if config.use_cache and supports_cache(model):
        cache = EmbeddingCache(Path(config.cache) if config.cache else datasets.cache_dir() / "embeddings")
        model = CachedModel(model, cache)
    if cache is not None:
        rundir.writable_dir(cache.root, "embedding cache (--cache)")
    info = model.info().to_json()
    lock = rundir.prepare(config, info, {ref.name: ref.root for _, _, ref in plan}) if dist.is_main else None
    try:
        return _run_plan(config, plan, model, dist, unsupported, cache, info, started)
    finally:
        if lock is not None:
            lock.release()


def _run_plan(config: RunConfig, plan, model, dist, unsupported: dict, cache, info: dict,
              started: float) -> Optional[dict]:
    """Score and aggregate every task x dataset of the plan into the run directory."""
    dist.barrier()
    results = [_evaluate(config, task, runner, ref, model, dist, unsupported.get(id(runner)))
               for task, runner, ref in plan]
    if not dist.is_main:
        return None
    if info.get("checkpoint"):
        info["checkpoint"] = str(info["checkpoint"])
    summary = {"schema": SCHEMA,
               "run": provenance(config.command, config.seed, device_used(model), config.dtype),
               "suite": {"name": config.suite.name, "version": config.suite.version},
               "model": info, "results": results}
    summary["run"]["world_size"] = dist.world_size
    if config.model_options:
        summary["run"]["model_options"] = config.model_options
    if cache is not None:
        stats = {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(cache.stats).items()}
        summary["run"]["embedding_cache"] = {"dir": str(cache.root), **stats}  # this rank's
    summary["run"]["duration_s"] = round(time.time() - started, 2)
    for entry in results:
        bad = rundir.non_finite(entry)
        if bad:
            raise SambenchError(f"model {config.model} gave a non-finite value (NaN or infinity) in the "
                                f"{entry['task']}/{entry['dataset']} result ({bad.lstrip('.')}); check the checkpoint")
    atomic_write_json(config.out / "results.json", summary)
    return summary


def _open(config: RunConfig, ref):
    """The dataset restricted to its --sample-list, or to the paper's subsample drawn from the seed."""
    return ref.open(seed=config.seed, sample_list=(config.sample_lists or {}).get(ref.name), subsample=True)


def _pending(config: RunConfig, dataset, done) -> Iterator[tuple[int, Sample]]:
    """(index, sample) of the images up to ``--limit``, in dataset order, that ``done(index, id)``
    leaves; an indexed dataset builds only those samples, a stream (no ids up front) reads every row."""
    if isinstance(dataset, IndexedDataset):
        return ((i, dataset.sample(image_id)) for i, image_id in enumerate(dataset.image_ids[:config.limit])
                if not done(i, str(image_id)))
    return ((i, s) for i, s in enumerate(islice(dataset, config.limit)) if not done(i, s.id))


def _image_ids(config: RunConfig, dataset) -> list[str]:
    """The ids of the images up to ``--limit``, in dataset order (a stream is read again for them)."""
    if isinstance(dataset, IndexedDataset):
        return [str(i) for i in dataset.image_ids[:config.limit]]
    return [s.id for s in islice(dataset, config.limit)]


def _record_path(config: RunConfig, task: TaskSpec, ref, sample_id: str) -> Path:
    return record_path(config.out, task.name, ref.name, sample_id)


def _prefetched(pairs: Iterator[tuple[int, Sample]], depth: int = 2) -> Iterator[tuple[int, Sample]]:
    """Decode upcoming images in a background thread while the model works on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        queue: deque = deque()
        for pair in pairs:
            queue.append((pair, pool.submit(pair[1].preload)))
            if len(queue) > depth:
                done, future = queue.popleft()
                future.result()
                yield done
        while queue:
            done, future = queue.popleft()
            future.result()
            yield done


def _evaluate(config: RunConfig, task: TaskSpec, runner: TaskRunner, ref, model, dist,
              unsupported: Optional[str]) -> Optional[dict]:
    """One task on one dataset: every rank scores its share, then rank 0, once all are done,
    computes the result entry (other ranks return None). The dataset is opened, and the
    runner's context prepared, once for both steps and released after."""
    dataset, context = None, None
    if unsupported is None:
        if ref.present():
            context = runner.prepare(ref, config.out / task.name, model)
            dataset = _open(config, ref)
            _score_shard(config, task, runner, model, ref, dataset, context, dist)
        elif dist.is_main:
            log.warning("dataset %s absent (no folder %s): reported as absent", ref.name, ref.root)
    dist.barrier()
    if not dist.is_main:
        return None
    return _aggregate_dataset(config, task, runner, ref, dataset, context, unsupported)


def _score_shard(config: RunConfig, task: TaskSpec, runner: TaskRunner, model, ref, dataset, context,
                 dist) -> None:
    """Score this rank's images that have no record yet (resume) and write their records."""
    todo = _pending(config, dataset, lambda i, sample_id: not dist.owns(i)
                    or rundir.read_record(_record_path(config, task, ref, sample_id), sample_id) is not None)
    bar = tqdm(desc=f"{task.name}/{ref.name}", unit="img", disable=not sys.stderr.isatty(), leave=False)
    if runner.uses_images:
        todo = _prefetched(todo)
    for _, sample in todo:
        t0 = time.perf_counter()
        record = runner.run_sample(model, sample, context, config.seed)
        record.seconds = round(time.perf_counter() - t0, 4)
        for err in record.errors:
            if err["kind"] != "crowd_excluded":
                log.warning("%s/%s sample %s: %s: %s", task.name, ref.name, sample.id,
                            err["kind"], err["detail"])
        bad = rundir.non_finite(record.to_json())
        if bad:
            raise SambenchError(f"model {config.model} gave a non-finite value (NaN or infinity) on "
                                f"{task.name}/{ref.name} sample {sample.id} (record{bad}); check the checkpoint")
        atomic_write_json(_record_path(config, task, ref, sample.id), record.to_json())
        bar.update(1)
    bar.close()


def n_masks(records: list[SampleRecord]) -> int:
    """Distinct (image, mask) pairs the rows name; an image whose rows name no mask (per-image
    rows: edges, concept pairs) counts once. Rows without a mask beside rows with one (the text
    task's concept pairs) add nothing."""
    named = {(r.sample_id, row["mask"]) for r in records for row in r.rows if "mask" in row}
    unnamed = {r.sample_id for r in records if r.rows and not any("mask" in row for row in r.rows)}
    return len(named) + len(unnamed)


def _aggregate_dataset(config: RunConfig, task: TaskSpec, runner: TaskRunner, ref, dataset, context,
                       unsupported: Optional[str] = None) -> dict:
    """Read every record of a dataset in dataset order and compute its result entry
    (``dataset`` None: the folder is absent). Records are found by image id; no sample is
    rebuilt."""
    protocol = runner.protocol(context)
    entry = {"task": task.name, "task_version": task.version, "runner": task.runner, "dataset": ref.name,
             "split": ref.card.split, "root": str(ref.root), "n_images": 0, "n_masks": 0,
             "protocol": protocol, "metrics": {},
             "metric_spec": [m.to_json() for m in runner.metric_spec(protocol)]}
    if unsupported:
        entry.update(status="unsupported", reason=unsupported)
        return entry
    if dataset is None:
        entry["status"] = "absent"
        return entry
    records: list[SampleRecord] = []
    for image_id in _image_ids(config, dataset):
        record = rundir.read_record(_record_path(config, task, ref, image_id), image_id)
        if record is None:
            raise SambenchError(f"no record for {ref.name} sample {image_id}: a rank stopped early "
                                "or it was damaged; rerun the same command to resume")
        records.append(record)
    entry["status"] = "ok"
    if isinstance(dataset, IndexedDataset) and dataset.sample_list is not None:  # a frozen list or a draw
        entry["sample_list"] = dataset.sample_list.provenance(config.out / "sample_lists")
    source = getattr(getattr(dataset, "dataset", dataset), "source", None)
    if source:  # where remote rows came from (Hugging Face: repository, revision, fingerprint)
        entry["source"] = source
    entry["n_images"] = len(records)
    entry["n_masks"] = n_masks(records)
    problems = list(getattr(dataset, "problems", []))  # of the files: duplicated ids, orphans
    for p in problems:
        log.warning("%s/%s: %s: %s", task.name, ref.name, p["kind"], p["detail"])
    counts = (Counter(e["kind"] for r in records for e in r.errors) + Counter(context.counts)
              + Counter(p["kind"] for p in problems))
    entry["counts"] = dict(sorted(counts.items()))
    examples = {}  # one example per kind, naming the sample (and annotation) it came from
    for r in records:
        for e in r.errors:
            examples.setdefault(e["kind"], f"sample {r.sample_id}: {e.get('detail', '')}")
    for p in problems:
        examples.setdefault(p["kind"], p["detail"])
    if examples:
        entry["count_examples"] = dict(sorted(examples.items()))
    entry["metrics"] = runner.aggregate(records, context, config.seed)
    extra = runner.result_fields(records, entry["metrics"], context)
    entry.update({k: v for k, v in extra.items() if k not in entry})
    entry["seconds"] = round(sum(r.seconds for r in records), 2)
    return entry
