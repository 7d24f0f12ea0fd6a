"""BSDS500 .mat ground truth and Hugging Face parquet datasets."""
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sambench.datasets import load_cards, resolve
from sambench.datasets.base import open_format
from sambench.datasets.cards import DatasetCard
from sambench.errors import SambenchError

from fixtures.datasets.write import assert_masks, image, rect

H, W = 12, 16
BENCH = Path(__file__).parent / "fixtures" / "bsds500_bench_sample"


def write_bsds_mat(path, annotators):
    """A groundTruth .mat as the release stores it: a 1xN cell of structs."""
    from scipy.io import savemat

    cell = np.empty((1, len(annotators)), dtype=object)
    for k, (seg, bnd) in enumerate(annotators):
        cell[0, k] = {"Segmentation": seg.astype(np.uint16), "Boundaries": bnd.astype(np.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"groundTruth": cell})


def test_bsds_segments_and_boundaries(tmp_path):
    left = rect(H, W, 0, 0, H - 1, 7)
    seg1 = np.where(left, 1, 2)
    seg2 = np.ones((H, W), int)
    seg2[4:8, 4:12] = 2
    seg2[9:, :] = 3
    bnd1 = np.zeros((H, W), bool)
    bnd1[:, 7] = True
    write_bsds_mat(tmp_path / "groundTruth" / "test" / "100007.mat", [(seg1, bnd1), (seg2, ~bnd1)])
    image(tmp_path / "images" / "test" / "100007.jpg", H, W)
    ds = open_format(load_cards().get("bsds500"), tmp_path)
    sample = ds.sample("100007")
    assert_masks(sample, {"a0-1": left, "a0-2": ~left, "a1-1": seg2 == 1, "a1-2": seg2 == 2, "a1-3": seg2 == 3})
    assert len(sample.meta["boundaries"]) == 2 and np.array_equal(sample.meta["boundaries"][0], bnd1)


@pytest.mark.skipif(not (BENCH / "groundTruth" / "2018.mat").is_file(), reason="BSDS bench sample not present")
def test_bsds_reads_the_official_ground_truth(tmp_path):
    from scipy.io import loadmat, savemat

    (tmp_path / "groundTruth" / "test").mkdir(parents=True)
    shutil.copy(BENCH / "groundTruth" / "2018.mat", tmp_path / "groundTruth" / "test" / "2018.mat")
    (tmp_path / "groundTruth" / "test" / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    ds = open_format(load_cards().get("bsds500"), tmp_path)
    sample = ds.sample("2018")
    raw = loadmat(str(BENCH / "groundTruth" / "2018.mat"))["groundTruth"]
    assert len(sample.meta["boundaries"]) == raw.shape[1]
    seg0 = raw[0, 0]["Segmentation"][0, 0]
    assert (sample.height, sample.width) == seg0.shape
    first = {i.id: i for i in sample.instances if i.id.startswith("a0-")}
    assert len(first) == len(np.unique(seg0))
    assert np.array_equal(first["a0-1"].mask(), seg0 == 1)
    assert ds.sample("bad").problems[0]["kind"] == "unreadable_annotation"
    # an annotator with Boundaries only: its boundaries count, it gives no masks (counted)
    cell = np.empty((1, 2), dtype=object)
    for k, fields in enumerate((("Segmentation", "Boundaries"), ("Boundaries",))):
        entry = np.empty((1, 1), dtype=[(f, object) for f in fields])
        entry[0, 0]["Boundaries"] = (seg0 == 1).astype(np.uint8)
        if "Segmentation" in fields:
            entry[0, 0]["Segmentation"] = seg0
        cell[0, k] = entry
    savemat(str(tmp_path / "groundTruth" / "test" / "half.mat"), {"groundTruth": cell})
    half = ds.sample("half")
    assert len(half.meta["boundaries"]) == 2 and {i.id[:3] for i in half.instances} == {"a0-"}
    assert [p["kind"] for p in half.problems] == ["no_segmentation"]


def png_bytes(array, mode=None):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(path, rows, schema_cols):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({col: [row[col] for row in rows] for col in schema_cols})
    pq.write_table(table, path, row_group_size=2)


def hf_card(**layout):
    return DatasetCard(name="nuclei-hf", format="hf", layout=layout)


def test_hf_parquet_label_column(tmp_path):
    a, b = rect(H, W, 1, 1, 4, 4), rect(H, W, 6, 6, 10, 12)
    label = np.zeros((H, W), int)
    label[a], label[b] = 1, 2
    rgb = np.full((H, W, 3), 90, np.uint8)
    rows = [{"image": {"bytes": png_bytes(rgb), "path": f"img{k}.png"},
             "annotation": {"bytes": png_bytes(label * (k % 2 + 1)), "path": None}, "name": f"s{k}"}
            for k in range(3)]
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", rows, ["image", "annotation", "name"])
    ds = open_format(hf_card(label="annotation", id="name", rule={"mode": "ids"}), tmp_path)
    assert ds.image_ids == ["s0", "s1", "s2"] and len(ds) == 3
    assert_masks(ds.sample("s2"), {"1": a, "2": b})  # row 2 is in the second row group
    assert_masks(ds.sample("s1"), {"2": a, "4": b})
    assert np.array_equal(ds.sample("s0").load_image(), rgb)


def test_hf_parquet_mask_list(tmp_path):
    a, b = rect(H, W, 0, 0, 2, 2), rect(H, W, 5, 5, 9, 9)
    rows = [{"image": {"bytes": png_bytes(np.zeros((H, W, 3))), "path": None},
             "masks": [{"bytes": png_bytes(a * 255), "path": None}, {"bytes": png_bytes(b * 255), "path": None},
                       {"bytes": png_bytes(np.zeros((H, W))), "path": None}]}]
    write_parquet(tmp_path / "data" / "train-0.parquet", rows, ["image", "masks"])
    ds = open_format(hf_card(masks="masks"), tmp_path)
    (sample,) = list(ds)
    assert sample.id == "0"
    assert_masks(sample, {"0": a, "1": b})
    assert [p["kind"] for p in sample.problems] == ["empty_mask"]


def test_hf_card_without_a_folder_reads_the_hub_through_datasets(tmp_path, monkeypatch):
    card = hf_card(masks="masks", hf_dataset="someone/nuclei")
    registry = load_cards()
    registry.add(card.name, card)
    monkeypatch.setattr("sambench.datasets.load_cards", lambda: registry)
    ref = resolve("nuclei-hf", str(tmp_path / "data"))
    assert str(ref.root) == "hf:someone/nuclei" and ref.present()


def test_hf_missing_columns_is_a_clear_error(tmp_path):
    write_parquet(tmp_path / "x.parquet", [{"image": {"bytes": b"", "path": None}}], ["image"])
    with pytest.raises(SambenchError, match="missing columns"):
        open_format(hf_card(label="label"), tmp_path)


def test_missing_optional_readers_give_one_clear_line(tmp_path, monkeypatch):
    from sambench.datasets.hypersim import read_hdf5_map

    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(SambenchError, match="needs h5py: pip install h5py"):
        read_hdf5_map(tmp_path / "frame.0000.semantic_instance.hdf5")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SambenchError, match="need the datasets library"):
        open_format(hf_card(label="label"), tmp_path)
