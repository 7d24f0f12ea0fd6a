"""The paper's subsampling rule and frozen sample lists (SAM App. D.1, Table 7 caption).

"Datasets with more than 15k masks were subsampled by picking images at random until about
10k masks": :func:`draw` shuffles the images with a seeded generator and decodes them in that
order; once 15k masks have been seen the dataset is known to be large, and the selection is
the shortest shuffled prefix holding at least 10k masks (so at most ~15k masks are ever
decoded). Smaller datasets are used whole. Counted masks are those a point task prompts
(not crowd, not ignore); images without such masks are left out.

A :class:`SampleList` freezes the (image, instance) ids as JSON so everyone evaluates the same
masks; its sha256 goes into the results. :class:`Selected` is a dataset restricted to a list.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sambench.datasets.base import IndexedDataset
from sambench.errors import SambenchError
from sambench.prompts import stable_rng
from sambench.types import Sample

SCHEMA = "sambench.sample_list/1"
THRESHOLD = 15_000  # more masks than this: subsample (paper)
TARGET = 10_000  # ... to about this many masks (paper)


def prompted_ids(sample: Sample) -> list[str]:
    """Ids of the instances a mask task prompts (crowd and ignore masks are not)."""
    return [inst.id for inst in sample.instances if not (inst.iscrowd or inst.ignore)]


@dataclass
class SampleList:
    """Frozen (image id, instance ids) pairs of one dataset, in dataset order."""

    dataset: str
    seed: int
    images: list[tuple[str, list[str]]]
    subsampled: bool = False
    rule: dict = field(default_factory=lambda: {"threshold": THRESHOLD, "target": TARGET})
    path: Optional[Path] = None

    @property
    def n_masks(self) -> int:
        return sum(len(ids) for _, ids in self.images)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "dataset": self.dataset, "seed": self.seed,
                "subsampled": self.subsampled, "rule": self.rule, "n_images": len(self.images),
                "n_masks": self.n_masks,
                "images": [{"id": image, "instances": ids} for image, ids in self.images]}

    def write(self, path: Path) -> str:
        """Write the list (stable bytes: sorted keys, one image per line); returns its sha256."""
        data = self.to_json()
        images = data.pop("images")
        head = json.dumps(data, sort_keys=True)[:-1]
        lines = ",\n".join(json.dumps(entry, sort_keys=True) for entry in images)
        text = f'{head}, "images": [\n{lines}\n]}}\n'
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.path = path
        return hashlib.sha256(text.encode()).hexdigest()

    def provenance(self, out_dir: Path) -> dict:
        """What a result entry records: the list's path and sha256 (a drawn list is written
        to ``out_dir`` first, so the run's exact masks can be reused with --sample-list)."""
        if self.path is None:
            self.write(Path(out_dir) / f"{self.dataset}.json")
        return {"path": str(self.path), "sha256": file_sha256(self.path), "seed": self.seed,
                "subsampled": self.subsampled, "n_images": len(self.images), "n_masks": self.n_masks}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_sample_list(path: Path) -> SampleList:
    path = Path(path)
    if not path.is_file():
        raise SambenchError(f"sample list not found: {path}")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise SambenchError(f"{path} is not a sambench sample list (schema {data.get('schema')!r})")
        images = [(str(e["id"]), [str(i) for i in e["instances"]]) for e in data["images"]]
        return SampleList(dataset=data["dataset"], seed=int(data["seed"]), images=images,
                          subsampled=bool(data.get("subsampled")), rule=data.get("rule", {}), path=path)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise SambenchError(f"malformed sample list {path}: {exc!r}") from None


def draw(dataset: IndexedDataset, name: str, seed: int, threshold: int = THRESHOLD,
         target: int = TARGET) -> SampleList:
    """Apply the paper's rule (module docstring) with a generator seeded by (seed, name)."""
    order = stable_rng(seed, "subsample", name).permutation(len(dataset.image_ids))
    seen: list[tuple[object, list[str]]] = []
    total = 0
    for index in order:
        image_id = dataset.image_ids[int(index)]
        ids = prompted_ids(dataset.sample(image_id))
        seen.append((image_id, ids))
        total += len(ids)
        if total > threshold:
            break
    else:  # small dataset: every image
        return _in_dataset_order(dataset, name, seed, seen, False, threshold, target)
    chosen, count = [], 0
    for image_id, ids in seen:
        if count >= target:
            break
        chosen.append((image_id, ids))
        count += len(ids)
    return _in_dataset_order(dataset, name, seed, chosen, True, threshold, target)


def _in_dataset_order(dataset, name, seed, pairs, subsampled, threshold, target) -> SampleList:
    position = {image_id: k for k, image_id in enumerate(dataset.image_ids)}
    pairs = sorted((p for p in pairs if p[1]), key=lambda p: position[p[0]])
    return SampleList(dataset=name, seed=seed, images=[(str(i), ids) for i, ids in pairs],
                      subsampled=subsampled, rule={"threshold": threshold, "target": target})


class Selected(IndexedDataset):
    """A dataset restricted to a sample list: its images, and in each only its instances.

    An image of the list missing from the data is a fatal error (the run would silently
    evaluate different masks); a listed instance missing from its image is a counted
    ``listed_mask_missing`` problem.
    """

    def __init__(self, dataset: IndexedDataset, sample_list: SampleList):
        self.dataset, self.sample_list = dataset, sample_list
        self.name = getattr(dataset, "name", sample_list.dataset)
        self.problems = getattr(dataset, "problems", [])
        self._native = {str(i): i for i in dataset.image_ids}
        missing = [image for image, _ in sample_list.images if image not in self._native]
        if missing:
            where = f" ({sample_list.path})" if sample_list.path else ""
            raise SambenchError(f"sample list{where} names {len(missing)} images not in dataset "
                                f"{self.name}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        self._wanted = dict(sample_list.images)
        self.image_ids = [image for image, _ in sample_list.images]

    def sample(self, image_id) -> Sample:
        sample = self.dataset.sample(self._native[image_id])
        sample.id = image_id
        have = {inst.id: inst for inst in sample.instances}
        wanted = self._wanted[image_id]
        sample.instances = [have[i] for i in wanted if i in have]
        sample.problems += [{"kind": "listed_mask_missing", "detail": f"mask {i} of the sample list"}
                            for i in wanted if i not in have]
        return sample
