"""YouTube-VIS-style video instance JSON, frames evaluated as images (format ``ytvis``; OVIS).

``videos[]`` carry ``id``, ``height``, ``width`` and ``file_names`` (one per frame, relative
to the image folder); ``annotations[]`` are tracks with ``video_id``, ``category_id``,
``iscrowd`` and ``segmentations`` (one RLE or polygon list per frame, ``null`` where the
object is absent). Every frame is a sample (id = its file name) whose instances are the
tracks present in it (instance id = track id). A present-but-empty mask, a mask of the wrong
size or an unknown category is a counted problem, as in the COCO parser.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sambench.datasets.base import IndexedDataset
from sambench.datasets.cards import DatasetCard
from sambench.datasets.coco import load_json, segmentation_rle
from sambench.errors import SambenchError
from sambench.types import Instance, Sample


class YtvisDataset(IndexedDataset):
    def __init__(self, name: str, annotation_file: Path, image_dir: Path):
        self.name, self.image_dir = name, Path(image_dir)
        data = load_json(annotation_file)
        try:
            self.categories = {c["id"]: c["name"] for c in data.get("categories", [])}
            tracks = defaultdict(list)
            for ann in data["annotations"]:
                tracks[ann["video_id"]].append(ann)
            self._frames = {}
            for video in data["videos"]:
                for index, file_name in enumerate(video["file_names"]):
                    self._frames[file_name] = (video, index, tracks.get(video["id"], []))
        except (KeyError, TypeError) as exc:
            raise SambenchError(f"malformed video-instance file {annotation_file}: missing {exc}") from None
        self.image_ids = list(self._frames)

    def sample(self, image_id) -> Sample:
        video, index, tracks = self._frames[image_id]
        h, w = int(video["height"]), int(video["width"])
        instances, problems = [], []
        for ann in tracks:
            segs = ann.get("segmentations") or []
            seg = segs[index] if index < len(segs) else None
            if seg is None:
                continue
            ann_id = str(ann.get("id"))
            cat = ann.get("category_id")
            if self.categories and cat not in self.categories:
                problems.append({"kind": "unknown_category", "detail": f"track {ann_id} has category_id {cat}"})
                continue
            rle, problem = segmentation_rle(seg, h, w, f"track {ann_id}")
            if problem:
                problems.append(problem)
                continue
            instances.append(Instance(id=ann_id, rle=rle, category=self.categories.get(cat, str(cat)),
                                      category_id=int(cat or 0), iscrowd=bool(ann.get("iscrowd", 0)),
                                      meta={"video_id": video["id"], "frame": index}))
        return Sample(id=image_id, dataset=self.name, height=h, width=w, instances=instances,
                      image_path=self.image_dir / image_id, problems=problems,
                      meta={"video_id": video["id"], "frame": index})


def open_ytvis(card: DatasetCard, root: Path) -> YtvisDataset:
    layout = card.layout
    if "annotations" not in layout:
        raise SambenchError(f"dataset card {card.name}: format ytvis needs layout.annotations")
    return YtvisDataset(card.name, root / layout["annotations"], root / layout.get("images", ""))
