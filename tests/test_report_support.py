"""Fixtures and helpers shared by the report tests (imported by test_report_*.py; no tests here).

Runs come from the fast ``test-disk`` stand-in on three synthetic images; the edges, proposals,
instances and an unknown task's results are hand-written entries, since those tasks are built
elsewhere and only their metric names matter to the report. They are written as results of
older versions were (no ``runner`` or ``metric_spec``), so the report's fallback to the task
file's runner and options is exercised too.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sambench.cli import main

from stand_in import DiskModel  # noqa: F401  (registers the test-disk model)

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")

OTHER_TASKS = [
    {"task": "edges", "task_version": 1, "dataset": "bsds500", "split": "test", "n_images": 200, "n_masks": 0,
     "protocol": {}, "status": "ok",
     "metrics": {"ods": 0.741, "ois": 0.760, "ap": 0.702, "r50": 0.901}},
    {"task": "proposals", "task_version": 1, "dataset": "lvis-v1", "split": "val", "n_images": 50, "n_masks": 900,
     "protocol": {}, "status": "ok",
     "metrics": {"ar@1000": 0.55, "ar@1000_small": 0.40, "ar@1000_medium": 0.75, "ar@1000_large": 0.82,
                 "ar@1000_frequent": 0.56, "ar@1000_common": 0.58, "ar@1000_rare": 0.60}},
    {"task": "instances", "task_version": 1, "dataset": "coco2017", "split": "val2017", "n_images": 50,
     "n_masks": 400, "protocol": {"box_source": "vitdet-h"}, "status": "ok",
     "metrics": {"ap": 0.44, "ap50": 0.66, "ap75": 0.47, "ap_small": 0.28, "ap_medium": 0.49, "ap_large": 0.60}},
    {"task": "instances-gtbox", "task_version": 1, "dataset": "coco2017", "split": "val2017", "n_images": 50,
     "n_masks": 400, "protocol": {"prompt": "gt-box", "center_point": True}, "status": "ok",
     "metrics": {"gtbox_miou": 0.77, "gtbox_miou_ci95": [0.75, 0.79], "gtbox_miou_small": 0.65,
                 "gtbox_miou_medium": 0.79, "gtbox_miou_large": 0.84, "gtbox+point_miou": 0.80,
                 "gtbox+point_miou_ci95": [0.78, 0.82], "gtbox+point_miou_small": 0.70}},
    {"task": "custom-task", "task_version": 1, "dataset": "synth-shapes", "split": "val", "n_images": 3,
     "n_masks": 0, "protocol": {}, "status": "ok",
     "metrics": {"masks_per_image": 12.3, "mean_area_fraction": 0.041, "center_bias": [0.5, 0.49]}},
]


def point_run(synth_dir: Path, out: Path, seed: int = 0) -> Path:
    """A real point-task run of the stand-in model on 2 synthetic images (≈1 s)."""
    code = main(["run", "--model", "test-disk", "--task", "point", "--no-cache", "--no-report",
                 "--dataset", str(synth_dir), "--out", str(out), "--seed", str(seed), "--limit", "2"])
    assert code == 0
    return out


def edit_results(run_dir: Path, fn) -> None:
    path = Path(run_dir) / "results.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=1))


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for generated in ("report.html", "report.pdf"):
        (dst / generated).unlink(missing_ok=True)
    return dst


def worse_copy(src: Path, dst: Path, drop: float = 0.1, name: str = "disk-worse") -> Path:
    """A copy of a run as if another model scored every mask ``drop`` IoU lower at 1 center
    point, with its results recomputed from the edited records: a known paired difference."""
    from sambench.tasks.point import PointProtocol, aggregate
    from sambench.types import SampleRecord

    copy_run(src, dst)
    folder = dst / "records" / "point" / "synth-shapes"
    records = []
    for path in sorted(folder.glob("*.json")):
        rec = json.loads(path.read_text())
        for row in rec["rows"]:
            if row["mode"] == "center" and row["step"] == 1:
                row["iou"] = max(0.0, row["iou"] - drop)
        path.write_text(json.dumps(rec))
        records.append(SampleRecord.from_json(rec))

    def update(data):
        data["model"]["name"] = name
        data["run"]["id"] = "worse"
        data["results"][0]["metrics"] = aggregate(records, PointProtocol(), data["run"]["seed"])

    edit_results(dst, update)
    return dst


_BASE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def base_run(synth_dir, tmp_path_factory) -> Path:
    """Read-only: copy it (copy_run) before changing anything. Made once per session even
    though each test module imports the fixture (pytest would make one per module)."""
    if "run" not in _BASE:
        _BASE["run"] = point_run(synth_dir, tmp_path_factory.mktemp("report") / "base")
    return _BASE["run"]


@pytest.fixture
def full_run(base_run, tmp_path) -> Path:
    """The point run plus hand-written entries of every other task."""
    run = copy_run(base_run, tmp_path / "full")
    edit_results(run, lambda data: data["results"].extend(json.loads(json.dumps(OTHER_TASKS))))
    return run


def render(html_path: Path, tmp: Path, height: int = 4000) -> tuple[str, np.ndarray, list[str]]:
    """Open a page in headless Chromium without network: (DOM, screenshot RGB, console lines)."""
    shot = tmp / f"{html_path.stem}.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", f"--window-size=1200,{height}", f"--screenshot={shot}", "--dump-dom",
           html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    problems = [line for line in proc.stderr.splitlines()
                if re.search(r"CONSOLE|Uncaught|Failed to load resource|net::ERR_", line)]
    from PIL import Image

    return proc.stdout, np.asarray(Image.open(shot).convert("RGB")), problems


def data_uri_pngs(html: str) -> list:
    """Every <img> source decoded; each must be a data URI holding a valid PNG."""
    from PIL import Image

    images = []
    for src in re.findall(r'<img[^>]*\ssrc="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,"), src[:80]
        png = base64.b64decode(src.split(",", 1)[1])
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
        images.append(Image.open(io.BytesIO(png)))
    return images
