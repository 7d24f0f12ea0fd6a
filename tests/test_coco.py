"""COCO adapter: polygons, RLE (compressed and uncompressed), crowd, and bad annotations."""
import json

import numpy as np
import pytest
from PIL import Image

from sambench import masks as mask_codec
from sambench.datasets.coco import CocoDataset
from sambench.errors import SambenchError

H, W = 12, 16


def write_coco(tmp_path, annotations, categories=({"id": 1, "name": "thing"},)):
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    data = {"images": [{"id": 7, "file_name": "a.png", "height": H, "width": W}],
            "annotations": annotations, "categories": list(categories)}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return CocoDataset("toy", tmp_path / "ann.json", tmp_path / "images")


def test_polygon_rle_and_crowd_round_trip(tmp_path):
    rect = np.zeros((H, W), bool)
    rect[2:6, 3:9] = True  # what the polygon below rasterises to (COCO pixel convention)
    blob = np.zeros((H, W), bool)
    blob[7:11, 10:15] = True
    blob[8, 12] = False  # a hole: only RLE can say this
    crowd = np.zeros((H, W), bool)
    crowd[0:3, 12:16] = True
    flat = crowd.ravel(order="F").astype(np.uint8)
    runs, prev, count = [], 0, 0
    for v in flat:  # uncompressed RLE by hand: counts alternate starting with zeros
        if v != prev:
            runs.append(count)
            prev, count = v, 0
        count += 1
    runs.append(count)
    ds = write_coco(tmp_path, [
        {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0,
         "segmentation": [[3, 2, 9, 2, 9, 6, 3, 6]]},
        {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": mask_codec.encode(blob)},
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [H, W], "counts": runs}},
    ])
    (sample,) = list(ds)
    assert (sample.id, sample.height, sample.width) == ("7", H, W)
    by_id = {i.id: i for i in sample.instances}
    assert np.array_equal(by_id["1"].mask(), rect)
    assert np.array_equal(by_id["2"].mask(), blob)
    assert np.array_equal(by_id["3"].mask(), crowd) and by_id["3"].iscrowd
    assert by_id["1"].category == "thing"
    assert sample.load_image().shape == (H, W, 3)


def test_bad_annotations_are_counted_problems(tmp_path):
    ds = write_coco(tmp_path, [
        {"id": 1, "image_id": 7, "category_id": 1, "segmentation": [[1, 1, 1, 1, 1, 1]]},  # zero area
        {"id": 2, "image_id": 7, "category_id": 1, "segmentation": {"size": [5, 5], "counts": "11"}},
        {"id": 3, "image_id": 7, "category_id": 99, "segmentation": [[0, 0, 4, 0, 4, 4]]},
        {"id": 4, "image_id": 7, "category_id": 1},
    ])
    (sample,) = list(ds)
    assert sample.instances == []
    assert [p["kind"] for p in sample.problems] == ["empty_mask", "bad_segmentation",
                                                    "unknown_category", "no_segmentation"]
    assert "differs from image size" in sample.problems[1]["detail"]


def test_malformed_json_and_missing_file_are_clear_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SambenchError, match="malformed JSON"):
        CocoDataset("x", tmp_path / "bad.json", tmp_path)
    with pytest.raises(SambenchError, match="not found"):
        CocoDataset("x", tmp_path / "missing.json", tmp_path)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SambenchError, match="not a COCO instances file"):
        CocoDataset("x", tmp_path / "list.json", tmp_path)


def test_missing_image_raises_on_load(tmp_path):
    ds = write_coco(tmp_path, [])
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(SambenchError, match="image not found"):
        next(iter(ds)).load_image()


def test_synthetic_dataset_reads_back(synth_dir):
    ds = CocoDataset("s", synth_dir / "annotations.json", synth_dir / "images")
    samples = list(ds)
    assert len(samples) == 3
    levels = {i.meta["level"] for s in samples for i in s.instances}
    assert levels == {"whole", "part", "subpart"}
    for s in samples:
        assert s.load_image().shape == (240, 320, 3)
        for inst in s.instances:
            assert inst.area >= 24
