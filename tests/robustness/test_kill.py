"""Fault injection: kill -9 at seeded moments of point, instances and edges runs, then resume:
the metrics equal an uninterrupted run's and no temporary file is left. Also two concurrent
runs into one folder: one is refused (lock), the other's numbers are right.

Cheap runs on the bundled synthetic data: the test-disk stand-in model (point), grabcut
(instances, ground-truth boxes as detections) and sobel (edges). The slow set has 21 kills; CI runs one per task.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TASKS = ("point", "instances", "edges")
SLOW_SEEDS = {"point": range(8), "instances": range(7), "edges": range(6)}  # 21 kills


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kill-cache")
    return {**os.environ, "SAMBENCH_CACHE": str(cache),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def detections(env, tmp_path_factory) -> Path:
    """Ground-truth boxes of synth-shapes as a detector's output (score 1 - 0.01 * rank)."""
    code = ("import json, sys; from sambench.datasets import resolve; "
            "print(resolve('synth-shapes').root / 'annotations.json')")
    path = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    data = json.loads(Path(path).read_text())
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": round(1 - 0.01 * (k % 50), 3)} for k, a in enumerate(data["annotations"])]
    out = tmp_path_factory.mktemp("dets") / "dets.json"
    out.write_text(json.dumps(dets))
    return out


def command(task: str, out: Path, detections: Path) -> list[str]:
    base = [sys.executable, str(HERE / "run_entry.py"), "run", "--task", task, "--no-report", "--json",
            "--out", str(out)]
    if task == "edges":
        return base + ["--model", "sobel", "--dataset", "synth-edges"]
    if task == "instances":
        return base + ["--model", "grabcut", "--dataset", "synth-shapes", "--limit", "2", "--no-cache",
                       "--detections", str(detections)]
    return base + ["--model", "test-disk", "--dataset", "synth-shapes", "--limit", "4", "--no-cache"]


def numbers(out: Path) -> list:
    results = json.loads((out / "results.json").read_text())
    return [{k: e.get(k) for k in ("task", "dataset", "n_images", "n_masks", "counts", "metrics")}
            for e in results["results"]]


@pytest.fixture(scope="module")
def reference(env, detections, tmp_path_factory):
    """The uninterrupted run of each task."""
    refs = {}
    for task in TASKS:
        out = tmp_path_factory.mktemp(f"ref-{task}")
        subprocess.run(command(task, out, detections), env=env, capture_output=True, check=True)
        refs[task] = numbers(out)
    return refs


def kill_and_resume(task: str, seed: int, tmp: Path, env, detections, reference) -> str:
    """Kill the run when the seeded k-th record has appeared plus a seeded delay, resume it,
    compare. Returns where the kill landed (for the figures)."""
    rng = random.Random(f"{task}-{seed}")
    out = tmp / f"{task}-{seed}"
    n_images = reference[task][0]["n_images"]
    k, delay = rng.randint(0, n_images), rng.uniform(0, 0.4)  # k = n_images: during aggregation
    proc = subprocess.Popen(command(task, out, detections), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    records = out / "records"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if k == 0 and (out / "run.json").exists() or k and len(list(records.rglob("*.json"))) >= k:
            break
        time.sleep(0.005)
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(records.rglob("*.json"))) if records.exists() else 0
    resumed = subprocess.run(command(task, out, detections), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert numbers(out) == reference[task]
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    return "after the end" if finished else f"{done}/{n_images} records"


@pytest.mark.parametrize("task", TASKS)
def test_kill_and_resume_ci(task, tmp_path, env, detections, reference):
    kill_and_resume(task, 100, tmp_path, env, detections, reference)


@pytest.mark.slow
@pytest.mark.parametrize("task,seed", [(t, s) for t in TASKS for s in SLOW_SEEDS[t]])
def test_kill_and_resume_full(task, seed, tmp_path, env, detections, reference):
    where = kill_and_resume(task, seed, tmp_path, env, detections, reference)
    print(f"kill {task} seed {seed}: {where}")


def test_concurrent_runs_one_is_refused(tmp_path, env, detections, reference):
    """The first run is paused (SIGSTOP) while it holds the folder, so the two surely overlap."""
    out = tmp_path / "shared"
    first = subprocess.Popen(command("point", out, detections), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    while not (out / "run.json").exists():
        assert first.poll() is None
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(command("point", out, detections), env=env, capture_output=True, text=True)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2
    assert f"is in use by pid {first.pid}" in second.stderr
    assert first.wait() == 0
    assert numbers(out) == reference["point"]
