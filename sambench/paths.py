"""Where a run keeps its files: one rule shared by the engine (which writes them) and the
report (which reads them).

``<run>/records/<task>/<dataset>/<safe id>.json`` holds one sample's record; ``<run>/<task>/``
holds what a runner writes for a dataset (COCO results, edge maps, statistics arrays).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path


def safe_name(sample_id: str) -> str:
    """A file name for a sample id (ids may contain '/' or other characters)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)
    if clean != sample_id or len(clean) > 120:
        clean = f"{clean[:100]}-{hashlib.sha1(sample_id.encode()).hexdigest()[:10]}"
    return clean


def record_dir(run_dir: Path, task: str, dataset: str) -> Path:
    return Path(run_dir) / "records" / task / dataset


def record_path(run_dir: Path, task: str, dataset: str, sample_id: str) -> Path:
    return record_dir(run_dir, task, dataset) / f"{safe_name(sample_id)}.json"
