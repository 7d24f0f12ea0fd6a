"""Published numbers (reports/reference/published.yaml) matched to a run's task and datasets.

They are data, not code, so a new table from a paper is a YAML edit; each entry carries its
source so a reader can check every reference row.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import yaml

from sambench.errors import SambenchError
from sambench.resources import asset_dir


@lru_cache(maxsize=1)
def load_references() -> tuple[dict, ...]:
    path = asset_dir("reports") / "reference" / "published.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SambenchError(f"cannot read the published reference results {path}: {exc}") from None
    return tuple(data.get("references") or [])


def box_source(protocol: Optional[dict]) -> Optional[str]:
    """The boxes a run prompted with: ``gt`` for ground-truth boxes, else the detector named
    by the protocol's ``box_source`` (None when the run did not name one)."""
    protocol = protocol or {}
    if protocol.get("prompt") == "gt-box":
        return "gt"
    return protocol.get("box_source")


def rows_for(task: str, dataset: str, protocol: Optional[dict] = None) -> list[tuple[dict, dict]]:
    """(entry, row) pairs of published per-dataset rows for this task and dataset.

    An entry that names its ``boxes`` (the detector whose boxes prompted the model) shows only
    for a run prompted with the same boxes (:func:`box_source` of the run's ``protocol``):
    AP with other boxes is another experiment, not a reference.
    """
    boxes = box_source(protocol)
    return [(ref, row) for ref in load_references()
            if ref["task"] == task and "rows" in ref and not ref.get("aggregate")
            and dataset in ref["datasets"] and ref.get("boxes", boxes) == boxes
            for row in ref["rows"]]


def aggregate_refs(task: str, datasets: list[str]) -> list[tuple[dict, list[str]]]:
    """Published means over a dataset suite (e.g. SA-23) with the run's datasets among its
    members: (entry, members present in the run)."""
    out = []
    for ref in load_references():
        if ref["task"] == task and ref.get("aggregate"):
            present = [d for d in ref["datasets"] if d in datasets]
            if present:
                out.append((ref, present))
    return out


def delta_ref(task: str, metric: str) -> Optional[dict]:
    """Published per-dataset differences between two methods for this metric (SAM Fig. 9a)."""
    for ref in load_references():
        if ref["task"] == task and ref.get("kind") == "delta" and ref.get("metric") == metric:
            return ref
    return None
