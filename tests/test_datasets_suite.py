"""End to end: `sambench run --suite sa23-point` on a data root holding a few of the 23."""
import json

import numpy as np

from sambench.cli import main
from sambench.tasks import load_suite

from fixtures.datasets.write import image, json_file, png, rect

H, W = 32, 48


def build_data_root(root):
    """Three of the 23 datasets in their release layouts: BBBC038 (folder per image), GTEA
    (binary hand masks) and TrashCan (COCO JSON)."""
    bbbc = root / "bbbc038v1"
    image(bbbc / "n1" / "images" / "n1.png", H, W)
    png(bbbc / "n1" / "masks" / "a.png", rect(H, W, 4, 4, 14, 16) * 255)
    png(bbbc / "n1" / "masks" / "b.png", rect(H, W, 18, 20, 28, 40) * 255)
    gtea = root / "gtea"
    image(gtea / "Images" / "s1_0001.jpg", H, W)
    png(gtea / "Masks" / "s1_0001.png", (rect(H, W, 2, 2, 20, 14) | rect(H, W, 4, 24, 26, 44)) * 255)
    trash = root / "trashcan" / "instance_version"
    image(trash / "train" / "t.jpg", H, W)
    json_file(trash / "instances_train_trashcan.json", {
        "images": [{"id": 1, "file_name": "t.jpg", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "trash_plastic"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": [[6.0, 6.0, 30.0, 6.0, 30.0, 24.0, 6.0, 24.0]]}]})


def test_sa23_runs_on_the_present_subset_and_reports_the_rest_absent(tmp_path, capsys):
    build_data_root(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["run", "--suite", "sa23-point", "--data-root", str(tmp_path / "data"), "--model", "grabcut",
                 "--limit", "1", "--no-cache", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    entries = {e["dataset"]: e for e in results["results"]}
    assert list(entries) == load_suite("sa23-point").tasks[0].datasets  # all 23, in suite order
    present = {"bbbc038v1": 2, "gtea": 2, "trashcan": 1}
    for name, entry in entries.items():
        if name in present:
            assert entry["status"] == "ok" and entry["n_masks"] == present[name], name
            assert 0 <= entry["metrics"]["miou@1"] <= 1
            assert entry["sample_list"]["n_masks"] == present[name] and not entry["sample_list"]["subsampled"]
            assert (out / "sample_lists" / f"{name}.json").is_file()
        else:
            assert entry["status"] == "absent" and entry["metrics"] == {} and entry["n_masks"] == 0, name
    assert np.isfinite(entries["gtea"]["metrics"]["miou@1"])
    assert (out / "report.html").is_file()
