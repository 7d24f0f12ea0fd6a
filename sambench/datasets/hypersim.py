"""Hypersim (format ``hypersim``): per-frame HDF5 instance maps, read with h5py.

Release layout (apple/ml-hypersim README): ``<scene>/images/scene_cam_XX_geometry_hdf5/
frame.IIII.semantic_instance.hdf5`` (dataset key ``"dataset"``, int map, -1 = no instance)
and the tone-mapped image ``<scene>/images/scene_cam_XX_final_preview/frame.IIII.tonemap.jpg``.
Each instance id ≥ 0 is one mask. Scenes are ``ai_VVV_NNN``; ``layout.volumes`` ``[first,
last]`` and ``exclude_volumes`` select the Evermotion volumes of SAM's split (Table 7).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sambench.datasets.base import IndexedDataset, broken_sample
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract
from sambench.errors import SambenchError
from sambench.types import Sample

SCENE = re.compile(r"ai_(\d{3})_\d{3}$")
FRAME = re.compile(r"frame\.(\d{4})\.semantic_instance\.hdf5$")


def read_hdf5_map(path: Path) -> np.ndarray:
    """The ``"dataset"`` array of a Hypersim HDF5 file as int64."""
    try:
        import h5py
    except ImportError:
        raise SambenchError("reading Hypersim needs h5py: pip install h5py") from None
    if not path.is_file():
        raise SambenchError(f"annotation file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["dataset"]).astype(np.int64)
    except (OSError, KeyError) as exc:
        raise SambenchError(f"unreadable Hypersim file {path}: {exc}") from None


class HypersimDataset(IndexedDataset):
    def __init__(self, name: str, root: Path, volumes=(1, 55), exclude_volumes=(), min_area: int = 0):
        self.name, self.root = name, Path(root)
        self.rule = LabelRule(mode="ids", background=[-1], min_area=min_area)
        first, last = volumes
        self._frames: dict[str, tuple[Path, Path]] = {}
        for scene in sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []:
            match = SCENE.match(scene.name)
            if not match or not first <= int(match.group(1)) <= last or int(match.group(1)) in exclude_volumes:
                continue
            for geo in sorted((scene / "images").glob("scene_cam_*_geometry_hdf5")):
                cam = geo.name[len("scene_"):-len("_geometry_hdf5")]
                preview = geo.with_name(geo.name.replace("_geometry_hdf5", "_final_preview"))
                for h5 in sorted(geo.glob("frame.*.semantic_instance.hdf5")):
                    frame = FRAME.match(h5.name).group(1)
                    self._frames[f"{scene.name}/{cam}/{frame}"] = (h5, preview / f"frame.{frame}.tonemap.jpg")
        if not self._frames:
            raise SambenchError(f"dataset {name}: no ai_VVV_NNN/images/scene_cam_*_geometry_hdf5/"
                                f"frame.*.semantic_instance.hdf5 under {self.root} (volumes {first}-{last})")
        self.image_ids = list(self._frames)

    def sample(self, image_id) -> Sample:
        h5, image = self._frames[image_id]
        try:
            ids = read_hdf5_map(h5)
        except SambenchError as exc:
            return broken_sample(self.name, image_id, image, "unreadable_annotation", str(exc))
        if ids.ndim != 2:
            return broken_sample(self.name, image_id, image, "unreadable_annotation",
                                 f"{h5}: expected a 2-D map, found shape {ids.shape}")
        instances, problems = extract(ids, self.rule)
        return Sample(id=image_id, dataset=self.name, height=ids.shape[0], width=ids.shape[1],
                      instances=instances, image_path=image, problems=problems)


def open_hypersim(card: DatasetCard, root: Path) -> HypersimDataset:
    layout = card.layout
    return HypersimDataset(card.name, root, tuple(layout.get("volumes", (1, 55))),
                           tuple(layout.get("exclude_volumes", ())), int(layout.get("min_area", 0)))
