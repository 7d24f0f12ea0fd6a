"""Hugging Face datasets through the ``datasets`` library, against the COCO path on the same data.

A synthetic COCO folder is rewritten as a Hugging Face dataset (image + COCO RLE per instance),
saved with ``save_to_disk`` and as parquet; every sample must decode pixel for pixel as the COCO
reader decodes it, and a point-task run must give the same numbers. Nothing touches the network.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from sambench import masks as mask_codec  # noqa: E402
from sambench.datasets import resolve, synth  # noqa: E402
from sambench.datasets.cards import DatasetCard  # noqa: E402
from sambench.datasets.hf import HFDataset, HFStream, _Rows, load, spec_card  # noqa: E402
from sambench.errors import SambenchError  # noqa: E402

FEATURES = datasets.Features({
    "image_id": datasets.Value("int64"),
    "image": datasets.Image(),
    "segmentation": datasets.List({"size": datasets.List(datasets.Value("int64")), "counts": datasets.Value("string")}),
    "annotation_ids": datasets.List(datasets.Value("int64")),
    "iscrowd": datasets.List(datasets.Value("int64")),
    "category_id": datasets.List(datasets.Value("int64")),
})


def coco_to_rows(root: Path) -> dict:
    """The COCO folder's images and annotations as columns (segmentation as compressed RLE)."""
    data = json.loads((root / "annotations.json").read_text())
    by_image = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    columns = {key: [] for key in FEATURES}
    for img in data["images"]:
        anns = by_image[img["id"]]
        columns["image_id"].append(img["id"])
        columns["image"].append({"bytes": (root / "images" / img["file_name"]).read_bytes(), "path": None})
        columns["segmentation"].append([mask_codec.from_annotation(a["segmentation"], img["height"], img["width"])
                                        for a in anns])
        columns["annotation_ids"].append([a["id"] for a in anns])
        columns["iscrowd"].append([a.get("iscrowd", 0) for a in anns])
        columns["category_id"].append([a["category_id"] for a in anns])
    return columns


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The same data three ways: COCO folder, save_to_disk folder, parquet folder (all three
    folders named alike: the dataset name seeds the random first points)."""
    base = tmp_path_factory.mktemp("hf")
    coco = synth.write_dataset(base / "coco" / "shapes", name="shapes", domain="shapes", n_images=3, seed=1)
    rows = datasets.Dataset.from_dict(coco_to_rows(coco), features=FEATURES)
    rows.save_to_disk(str(base / "saved" / "shapes"))
    (base / "parquet" / "shapes" / "data").mkdir(parents=True)
    rows.to_parquet(str(base / "parquet" / "shapes" / "data" / "train-00000-of-00001.parquet"))
    return {"coco": Path(coco), "saved": base / "saved" / "shapes", "parquet": base / "parquet" / "shapes"}


def as_pixels(dataset) -> dict:
    out = {}
    for sample in dataset:
        masks = {inst.id: (inst.mask(), inst.iscrowd, inst.category_id) for inst in sample.instances}
        out[str(sample.id)] = (sample.load_image(), (sample.height, sample.width), masks)
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        image_a, size_a, masks_a = a[key]
        image_b, size_b, masks_b = b[key]
        assert np.array_equal(image_a, image_b) and size_a == size_b
        assert masks_a.keys() == masks_b.keys() and masks_a
        for k in masks_a:
            assert np.array_equal(masks_a[k][0], masks_b[k][0]) and masks_a[k][1:] == masks_b[k][1:]


@pytest.mark.parametrize("kind", ["saved", "parquet"])
def test_hf_folders_decode_exactly_as_the_coco_path(layouts, kind):
    coco = resolve(str(layouts["coco"])).open()
    ref = resolve(f"hf:{layouts[kind]}")
    hf = ref.open()
    assert isinstance(hf, HFDataset) and hf.source["loader"] == "datasets"
    assert_same(as_pixels(coco), as_pixels(hf))


def test_streaming_gives_the_same_samples(layouts):
    files = [str(p) for p in sorted((layouts["parquet"] / "data").glob("*.parquet"))]
    card = DatasetCard(name="s", format="hf")
    stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    streamed = HFStream("s", stream, {}, card.layout)
    indexed = HFDataset("s", datasets.load_dataset("parquet", data_files=files, split="train"), {}, card.layout, None)
    assert_same(as_pixels(streamed), as_pixels(indexed))


def test_hub_spec_pins_config_split_revision_and_streaming(monkeypatch):
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or datasets.Dataset.from_dict({}))
    card, root = spec_card("someone/cells:fold1@validation")
    assert (card.name, str(root)) == ("cells-fold1-validation", "hf:someone/cells")
    card.layout["revision"] = "0123abc"
    monkeypatch.setenv("SAMBENCH_STREAM", "1")
    _, source = load(card, root)
    assert calls == [(("someone/cells", "fold1"), {"split": "validation", "revision": "0123abc", "streaming": True})]
    assert source["repo"] == "someone/cells" and source["revision"] == "0123abc"
    with pytest.raises(SambenchError, match="REPO_ID"):
        spec_card("a/b/c")


def test_unloadable_hub_dataset_is_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("offline mode is enabled")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    card, root = spec_card("someone/cells")
    with pytest.raises(SambenchError, match="cannot load someone/cells: ConnectionError"):
        load(card, root)


def test_missing_or_ambiguous_columns_are_clear_errors():
    with pytest.raises(SambenchError, match="no annotation column"):
        _Rows("x", {}, ["image", "text"], None)
    with pytest.raises(SambenchError, match="missing columns"):
        _Rows("x", {"masks": "objects"}, ["image", "masks"], None)


def run_point(model: str, dataset: str, out: Path) -> dict:
    from sambench.cli import main

    assert main(["run", "--task", "point", "--model", model, "--dataset", dataset, "--limit", "3",
                 "--out", str(out), "--no-cache", "--no-report", "--json"]) == 0
    (entry,) = json.loads((out / "results.json").read_text())["results"]
    return entry


def assert_same_numbers(model, layouts, tmp_path):
    coco = run_point(model, str(layouts["coco"]), tmp_path / "coco")
    assert coco["n_masks"] > 0 and coco["metrics"]["random_miou@1"] > 0
    for kind in ("saved", "parquet"):
        entry = run_point(model, f"hf:{layouts[kind]}", tmp_path / kind)
        assert entry["metrics"] == coco["metrics"] and entry["n_masks"] == coco["n_masks"]
        assert entry["source"]["loader"] == "datasets" and entry["source"]["fingerprint"]


def test_point_task_numbers_equal_across_layouts(layouts, tmp_path):
    import stand_in  # noqa: F401  (registers test-disk, a fast prompt-sensitive model)

    assert_same_numbers("test-disk", layouts, tmp_path)


@pytest.mark.slow
def test_grabcut_point_numbers_equal_across_layouts(layouts, tmp_path):
    assert_same_numbers("grabcut", layouts, tmp_path)


def test_a_streamed_hub_dataset_runs_in_order_but_is_never_subsampled(layouts, monkeypatch, tmp_path):
    files = [str(p) for p in sorted((layouts["parquet"] / "data").glob("*.parquet"))]
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda repo, config, **kw: real("parquet", data_files=files, split="train", streaming=True))
    monkeypatch.setenv("SAMBENCH_STREAM", "1")
    ref = resolve("hf:someone/shapes")
    stream = ref.open()
    assert isinstance(stream, HFStream) and [s.id for s in stream] == [s.id for s in resolve(str(layouts["coco"])).open()]
    (tmp_path / "list.json").write_text("{}")
    with pytest.raises(SambenchError, match="streamed"):
        ref.open(sample_list=str(tmp_path / "list.json"))
