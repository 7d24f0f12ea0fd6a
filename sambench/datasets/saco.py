"""SA-Co-format concept segmentation ground truth (SAM 3's benchmark files).

An SA-Co file is COCO JSON in which each ``images`` entry is one *pair*: an image
(``file_name``, ``height``, ``width``) and a noun phrase (``text_input``), with
``is_instance_exhaustive`` saying whether every instance of the phrase is annotated. The pair's
``annotations`` are those instances (none for a negative pair: the phrase is absent). SA-Co/Gold
ships three such files per subset, one per annotator (``..._a``, ``_b``, ``_c``): the pairs are
the same, the masks and flags can differ.

A pair is scored when the first file marks it exhaustive and no other file marks it not
exhaustive (the rule of SAM 3's evaluator); the others are counted (``not_exhaustive``).
Each :class:`~sambench.types.Sample` is one pair; its instances are the first annotator's and
``meta["annotator_sets"]`` holds every annotator's instances, first included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sambench import masks as mask_codec
from sambench.datasets.base import IndexedDataset
from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import load_json
from sambench.errors import SambenchError
from sambench.types import Instance, Sample

PAIR_FIELDS = ("id", "file_name", "height", "width", "text_input", "is_instance_exhaustive")


@dataclass
class GroundTruthFile:
    """One annotator's SA-Co file, indexed by pair id.

    ``annotations[pair_id]`` lists the pair's annotations in the order the evaluator matches
    them: grouped by category id (ascending, categories of the file only), file order within.
    """

    path: Path
    pairs: dict = field(default_factory=dict)  # pair id -> images entry
    annotations: dict = field(default_factory=dict)  # pair id -> [annotation]
    category_ids: list = field(default_factory=list)
    dropped_annotations: int = 0  # annotations of an unknown pair or category

    @classmethod
    def read(cls, path) -> "GroundTruthFile":
        path = Path(path)
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise SambenchError(f"{path} is not an SA-Co file (needs an 'images' list of pairs)")
        gt = cls(path)
        for entry in data["images"]:
            missing = [k for k in PAIR_FIELDS if not isinstance(entry, dict) or k not in entry]
            if missing:
                where = entry.get("id") if isinstance(entry, dict) else entry
                raise SambenchError(f"{path}: pair {where!r} lacks {', '.join(missing)} "
                                    "(an SA-Co images entry is an (image, noun phrase) pair)")
            if entry["id"] in gt.pairs:
                raise SambenchError(f"{path}: pair id {entry['id']!r} appears twice")
            gt.pairs[entry["id"]] = entry
        gt.category_ids = sorted(c["id"] for c in data.get("categories") or [] if isinstance(c, dict) and "id" in c)
        known = set(gt.category_ids)
        by_pair: dict = {}
        for ann in data.get("annotations") or []:
            if not isinstance(ann, dict) or ann.get("image_id") not in gt.pairs or ann.get("category_id") not in known:
                gt.dropped_annotations += 1
                continue
            by_pair.setdefault(ann["image_id"], []).append(ann)
        rank = {c: i for i, c in enumerate(gt.category_ids)}
        gt.annotations = {pid: sorted(anns, key=lambda a: rank[a["category_id"]])  # stable
                          for pid, anns in by_pair.items()}
        return gt

    def exhaustive(self, pair_id) -> bool:
        entry = self.pairs.get(pair_id)
        return bool(entry and entry["is_instance_exhaustive"])


def scored_pairs(files: list[GroundTruthFile]) -> list:
    """Pair ids that are scored: exhaustive in the first file, not non-exhaustive elsewhere."""
    excluded = {pid for gt in files[1:] for pid, entry in gt.pairs.items()
                if not entry["is_instance_exhaustive"]}
    return [pid for pid, entry in files[0].pairs.items()
            if entry["is_instance_exhaustive"] and pid not in excluded]


def instance(ann: dict, height: int, width: int, phrase: str) -> Instance:
    """An annotation as an Instance (RLE; ``iscrowd`` kept: the metric removes crowd)."""
    if "segmentation" not in ann:
        raise SambenchError(f"annotation {ann.get('id')!r} has no segmentation")
    rle = mask_codec.from_annotation(ann["segmentation"], height, width)
    return Instance(id=str(ann.get("id")), rle=rle, category=phrase,
                    category_id=int(ann["category_id"]), iscrowd=bool(ann.get("iscrowd", 0)),
                    meta={"bbox": ann.get("bbox")})


class SacoDataset(IndexedDataset):
    """SA-Co pairs as samples (module docstring); image ids are the pair ids."""

    def __init__(self, name: str, files: list[Path], image_dir: Path):
        if not files:
            raise SambenchError(f"dataset {name}: no SA-Co annotation file given")
        self.name = name
        self.image_dir = Path(image_dir)
        self.files = [GroundTruthFile.read(p) for p in files]
        first = self.files[0]
        for gt in self.files[1:]:
            if set(gt.pairs) != set(first.pairs):
                raise SambenchError(f"{gt.path} and {first.path} hold different pairs: annotator "
                                    "files of one SA-Co subset must list the same (image, phrase) pairs")
        self.image_ids = list(first.pairs)
        self.scored = set(scored_pairs(self.files))

    def sample(self, pair_id) -> Sample:
        entry = self.files[0].pairs[pair_id]
        h, w, phrase = int(entry["height"]), int(entry["width"]), str(entry["text_input"])
        sets, problems = [], []
        for gt in self.files:
            instances = []
            for ann in gt.annotations.get(pair_id, []):
                try:
                    instances.append(instance(ann, h, w, phrase))
                except SambenchError as exc:
                    problems.append({"kind": "bad_segmentation", "detail": f"{gt.path.name}: {exc}"})
            sets.append(instances)
        meta = {"phrase": phrase, "file_name": entry["file_name"], "annotator_sets": sets,
                "exhaustive": pair_id in self.scored, "category_id": self.category_id(entry)}
        return Sample(id=str(pair_id), dataset=self.name, height=h, width=w, instances=sets[0],
                      image_path=self.image_dir / entry["file_name"], meta=meta, problems=problems)


    def category_id(self, entry: dict) -> int:
        """The category predictions of the pair carry: its ``queried_category`` when the file
        knows it, else the file's first category (the metric ignores which, only that it is
        one of the file's, as SAM 3's evaluator drops predictions of other categories)."""
        ids = self.files[0].category_ids
        queried = entry.get("queried_category")
        for value in (queried, int(queried) if isinstance(queried, str) and queried.isdigit() else None):
            if value in ids:
                return value
        return ids[0] if ids else 1


def open_saco(card: DatasetCard, root: Path) -> SacoDataset:
    layout = card.layout
    files = layout.get("annotations")
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files:
        raise SambenchError(f"dataset card {card.name}: layout.annotations must list the SA-Co file(s)")
    return SacoDataset(card.name, [root / f for f in files], root / layout.get("images", "images"))


__all__ = ["GroundTruthFile", "SacoDataset", "scored_pairs", "instance"]
