"""The RefCOCO-layout adapter on a fixture written here: COCO instances + refs as JSON, parquet
and a pickle read with the plain-types-only unpickler (which must refuse anything else)."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from sambench.cli import main
from sambench.datasets import resolve
from sambench.datasets.refcoco import load_plain_pickle, load_refs
from sambench.errors import SambenchError

H, W = 32, 48


def rect_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


REFS = [
    {"ref_id": 10, "ann_id": 1, "image_id": 100, "split": "val", "category_id": 1,
     "sentences": [{"raw": "The left dog.", "sent": "the left dog", "sent_id": 1},
                   {"raw": "brown dog", "sent": "brown dog", "sent_id": 2}]},
    {"ref_id": 11, "ann_id": 2, "image_id": 100, "split": "val", "category_id": 2,
     "sentences": [{"sent": "the cat on the right", "sent_id": 3}]},
    {"ref_id": 12, "ann_id": 1, "image_id": 100, "split": "val", "category_id": 1,
     "sentences": [{"raw": "dog near the cat", "sent_id": 4}]},
    {"ref_id": 13, "ann_id": 4, "image_id": 200, "split": "testA", "category_id": 1,
     "sentences": [{"raw": "a dog", "sent_id": 5}]},
    {"ref_id": 14, "ann_id": 99, "image_id": 100, "split": "val", "category_id": 1,
     "sentences": [{"raw": "a ghost", "sent_id": 6}]},
]


@pytest.fixture
def refcoco_root(tmp_path):
    root = tmp_path / "refcoco"
    (root / "images").mkdir(parents=True)
    images = []
    for image_id in (100, 200, 300):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(np.full((H, W, 3), image_id % 255, np.uint8)).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
    anns = [{"id": 1, "image_id": 100, "category_id": 1, "segmentation": rect_polygon(2, 2, 20, 20), "iscrowd": 0},
            {"id": 2, "image_id": 100, "category_id": 2, "segmentation": rect_polygon(26, 4, 44, 28), "iscrowd": 0},
            {"id": 3, "image_id": 100, "category_id": 1, "segmentation": rect_polygon(4, 24, 14, 30), "iscrowd": 0},
            {"id": 4, "image_id": 200, "category_id": 1, "segmentation": rect_polygon(5, 5, 30, 25), "iscrowd": 0}]
    (root / "instances.json").write_text(json.dumps({
        "images": images, "annotations": anns,
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]}))
    return root


def check_val_split(dataset):
    assert dataset.image_ids == [100] and len(dataset) == 1
    assert dataset.unmatched_refs == 1  # ref 14 names an annotation the file does not have
    (sample,) = list(dataset)
    by_id = {inst.id: inst for inst in sample.instances}
    assert set(by_id) == {"1", "2", "3"}  # every object of the image, referred or not
    assert by_id["1"].meta["expressions"] == ["The left dog.", "brown dog", "dog near the cat"]
    assert by_id["1"].meta["ref_ids"] == [10, 12]
    assert by_id["2"].meta["expressions"] == ["the cat on the right"]  # 'sent' when 'raw' is missing
    assert "expressions" not in by_id["3"].meta


def test_refs_as_json_through_the_card(refcoco_root):
    (refcoco_root / "refs(unc).json").write_text(json.dumps(REFS))
    ref = resolve(f"refcoco={refcoco_root}")
    assert ref.card.format == "refcoco"
    check_val_split(ref.open())


def test_refs_as_parquet(refcoco_root):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame(REFS).to_parquet(refcoco_root / "refs(unc).parquet")
    assert load_refs(refcoco_root / "refs(unc).parquet")[0]["sentences"][0]["raw"] == "The left dog."
    check_val_split(resolve(f"refcoco={refcoco_root}").open())


def test_refs_as_a_plain_pickle(refcoco_root):
    (refcoco_root / "refs(unc).p").write_bytes(pickle.dumps(REFS, protocol=2))
    check_val_split(resolve(f"refcoco={refcoco_root}").open())


def test_python2_byte_strings_are_decoded(tmp_path):
    # protocol 2, written by hand as Python 2 would: {'raw': 'caf\xc3\xa9'} with str (not unicode)
    data = b"\x80\x02}q\x00U\x03rawq\x01U\x05caf\xc3\xa9q\x02s."
    (tmp_path / "py2.p").write_bytes(data)
    assert load_plain_pickle(tmp_path / "py2.p") == {"raw": "café"}


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickles_with_objects_are_refused_without_running_them(refcoco_root, tmp_path):
    marker = tmp_path / "ran"
    (refcoco_root / "refs(unc).p").write_bytes(pickle.dumps(REFS + [{"x": Evil(marker)}]))
    with pytest.raises(SambenchError, match="refusing to load .*references .*open; only plain types"):
        resolve(f"refcoco={refcoco_root}").open()
    assert not marker.exists()
    from collections import OrderedDict

    (tmp_path / "od.p").write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(SambenchError, match="collections.OrderedDict"):
        load_plain_pickle(tmp_path / "od.p")
    (tmp_path / "set.p").write_bytes(pickle.dumps({1, 2}, protocol=2))  # sets need a global before protocol 4
    with pytest.raises(SambenchError, match="refusing"):
        load_plain_pickle(tmp_path / "set.p")


def test_bad_refs_files(refcoco_root):
    (refcoco_root / "refs(unc).json").write_text(json.dumps([{"ref_id": 1}]))
    with pytest.raises(SambenchError, match="ref 0 lacks ann_id, image_id, sentences"):
        resolve(f"refcoco={refcoco_root}").open()
    (refcoco_root / "refs(unc).json").write_text(json.dumps({"not": "refs"}))
    with pytest.raises(SambenchError, match="expected a list of refs"):
        resolve(f"refcoco={refcoco_root}").open()
    (refcoco_root / "refs(unc).json").unlink()
    with pytest.raises(SambenchError, match="refs file not found"):
        resolve(f"refcoco={refcoco_root}").open()
    (refcoco_root / "refs(unc).json").write_text(json.dumps([dict(REFS[0], split="train")]))
    with pytest.raises(SambenchError, match="no usable refs for split 'val'"):
        resolve(f"refcoco={refcoco_root}").open()


def test_text_task_on_referring_expressions(refcoco_root, tmp_path, capsys):
    """The composed route on RefCOCO-layout data: one unit per (annotation, sentence)."""
    (refcoco_root / "refs(unc).json").write_text(json.dumps(REFS))
    dets = [{"image_id": 100, "phrase": "the left dog.", "box": [2, 2, 20, 20], "score": 0.8},
            {"image_id": 100, "phrase": "the cat on the right", "box": [26, 4, 44, 28], "score": 0.7}]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "run"
    assert main(["run", "--task", "text", "--dataset", f"refcoco={refcoco_root}", "--model", "grabcut",
                 "--text-detections", str(tmp_path / "dets.json"), "--out", str(out), "--no-cache",
                 "--no-report", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    assert entry["n_images"] == 1 and entry["n_masks"] == 2  # the two referred objects
    assert entry["counts"] == {"no_detection": 2}  # 4 sentences, 2 with a box
    assert entry["metrics"]["det_coverage"] == 0.5
    rows = json.loads(next((out / "records" / "text" / "refcoco").glob("*.json")).read_text())["rows"]
    assert {r["source"] for r in rows} == {"expressions"}
    assert sorted({r["phrase"] for r in rows if r["mode"] == "det"}) == [
        "The left dog.", "brown dog", "dog near the cat", "the cat on the right"]
