"""Label-map parsers: instance-id PNGs, category maps, binary masks; BBBC038; Hypersim HDF5."""
from dataclasses import replace

import numpy as np
import pytest

from sambench.datasets import load_cards
from sambench.datasets.base import open_format
from sambench.datasets.cards import DatasetCard
from sambench.datasets.labels import LabelRule, extract

from fixtures.datasets.write import assert_masks, image, png, rect

H, W = 12, 16


def card(name: str, **layout) -> DatasetCard:
    """A shipped card with its layout adjusted (or a bare labelmap card)."""
    cards = load_cards()
    if name in cards:
        base = cards.get(name)
        return replace(base, layout={**base.layout, **layout})
    return DatasetCard(name=name, format="labelmap", layout=layout)


def test_ppdls_palette_instance_ids(tmp_path):
    leaf1, leaf2 = rect(H, W, 1, 1, 4, 6), rect(H, W, 6, 8, 10, 14)
    label = np.zeros((H, W), int)
    label[leaf1], label[leaf2] = 3, 7
    for folder in ("Ara2012", "Tobacco"):
        image(tmp_path / folder / f"{folder}_plant001_rgb.png", H, W)
        png(tmp_path / folder / f"{folder}_plant001_label.png", label, "P")
    ds = open_format(card("ppdls"), tmp_path)
    assert ds.image_ids == ["Ara2012/Ara2012_plant001_rgb", "Tobacco/Tobacco_plant001_rgb"]
    sample = ds.sample(ds.image_ids[0])
    assert_masks(sample, {"3": leaf1, "7": leaf2})
    assert sample.problems == [] and sample.load_image().shape == (H, W, 3)


def test_ishape_parts_and_16bit_ids(tmp_path):
    a, b = rect(H, W, 0, 0, 3, 3), rect(H, W, 5, 5, 9, 12)
    label = np.zeros((H, W), int)
    label[a], label[b] = 2001, 2002
    label[11, :] = 500  # below 1000: not an instance (iShape's converter ignores it)
    for subset in ("antenna", "log"):
        image(tmp_path / subset / "val" / "image" / "0.jpg", H, W)
        png(tmp_path / subset / "val" / "instance_map" / "0.png", label, "I;16")
    image(tmp_path / "log" / "train" / "image" / "9.jpg", H, W)  # another split: not used
    ds = open_format(card("ishape"), tmp_path)
    assert ds.image_ids == ["antenna/val/image/0", "log/val/image/0"]
    sample = ds.sample("log/val/image/0")
    assert sample.id == "log/val/image/0" and sample.dataset == "ishape"
    assert_masks(sample, {"2001": a, "2002": b})
    assert {i.category_id for i in sample.instances} == {2}


def test_egohos_categories_include_filter_and_void(tmp_path):
    hand, obj = rect(H, W, 2, 1, 8, 5), rect(H, W, 3, 9, 6, 14)
    label = np.zeros((H, W), int)
    label[hand], label[obj] = 1, 3
    label[0, 0] = 255
    for stem in ("ego4d_001", "thu_002", "epick_003"):
        image(tmp_path / "train" / "image" / f"{stem}.jpg", H, W)
        png(tmp_path / "train" / "label" / f"{stem}.png", label)
    ds = open_format(card("egohos", rule={"mode": "categories", "ignore": [255]}), tmp_path)
    assert ds.image_ids == ["train/image/ego4d_001", "train/image/thu_002"]
    sample = ds.sample("train/image/thu_002")
    assert_masks(sample, {"1": hand, "3": obj})
    assert {i.id: i.category for i in sample.instances} == {"1": "left hand", "3": "left hand 1st-order object"}


def test_gtea_binary_components_and_min_area(tmp_path):
    left, right, speck = rect(H, W, 1, 1, 9, 5), rect(H, W, 2, 9, 10, 14), rect(H, W, 11, 7, 11, 7)
    image(tmp_path / "Images" / "s1_0001.jpg", H, W)
    png(tmp_path / "Masks" / "s1_0001.png", (left | right | speck) * 255)
    ds = open_format(card("gtea", rule={"mode": "binary", "components": True, "min_area": 2}), tmp_path)
    sample = ds.sample("Images/s1_0001")
    assert_masks(sample, {"1-0": left, "1-1": right})
    assert [p["kind"] for p in sample.problems] == ["too_small"]


def test_label_map_missing_or_corrupt_is_a_counted_problem(tmp_path):
    image(tmp_path / "Images" / "a.jpg", H, W)
    image(tmp_path / "Images" / "b.jpg", H, W)
    (tmp_path / "Masks").mkdir()
    (tmp_path / "Masks" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    ds = open_format(card("gtea"), tmp_path)
    missing, corrupt = ds.sample("Images/a"), ds.sample("Images/b")
    assert missing.instances == [] and missing.problems[0]["kind"] == "missing_annotation"
    assert (missing.height, missing.width) == (H, W)  # from the image header
    assert corrupt.problems[0]["kind"] == "unreadable_annotation"
    assert "b.png" in corrupt.problems[0]["detail"]


def test_components_connectivity():
    label = np.zeros((5, 5), int)
    label[0, 0] = label[1, 1] = 4  # diagonal neighbours
    eight, _ = extract(label, LabelRule(mode="ids", components=True, connectivity=8))
    four, _ = extract(label, LabelRule(mode="ids", components=True, connectivity=4))
    assert [i.id for i in eight] == ["4-0"] and [i.id for i in four] == ["4-0", "4-1"]


def test_bbbc038_folder_per_image(tmp_path):
    nuclei = [rect(H, W, 1, 1, 3, 3), rect(H, W, 5, 6, 9, 10)]
    root = tmp_path / "stage1_train"
    image(root / "abc" / "images" / "abc.png", H, W)
    for k, m in enumerate(nuclei):
        png(root / "abc" / "masks" / f"m{k}.png", m * 255)
    png(root / "abc" / "masks" / "zero.png", np.zeros((H, W), int))
    png(root / "abc" / "masks" / "big.png", np.ones((H + 1, W), int) * 255)
    ds = open_format(card("bbbc038v1"), root)
    sample = ds.sample("abc")
    assert_masks(sample, {"m0": nuclei[0], "m1": nuclei[1]})
    assert sorted(p["kind"] for p in sample.problems) == ["empty_mask", "label_size"]


def test_hypersim_hdf5_instances_and_volume_split(tmp_path):
    h5py = pytest.importorskip("h5py")
    a, b = rect(H, W, 0, 0, 5, 7), rect(H, W, 6, 8, 11, 15)
    ids = -np.ones((H, W), np.int32)
    ids[a], ids[b] = 0, 12
    for scene in ("ai_001_002", "ai_020_001", "ai_056_001"):  # volume 20 excluded, 56 out of range
        geo = tmp_path / scene / "images" / "scene_cam_00_geometry_hdf5"
        geo.mkdir(parents=True)
        with h5py.File(geo / "frame.0003.semantic_instance.hdf5", "w") as f:
            f.create_dataset("dataset", data=ids)
        image(tmp_path / scene / "images" / "scene_cam_00_final_preview" / "frame.0003.tonemap.jpg", H, W)
    ds = open_format(card("hypersim"), tmp_path)
    assert ds.image_ids == ["ai_001_002/cam_00/0003"]
    sample = ds.sample("ai_001_002/cam_00/0003")
    assert_masks(sample, {"0": a, "12": b})
    assert sample.image_path.name == "frame.0003.tonemap.jpg" and sample.load_image().shape == (H, W, 3)
