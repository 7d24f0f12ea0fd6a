"""The statistics task: hand-checked mask properties, the size-stratified sample, and
``sambench run --task statistics`` on a COCO-format folder and on SA-1B-format AMG output side
by side, with the documented metric names in results.json and the section in the report."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from sambench import masks as mask_codec
from sambench.cli import main
from sambench.tasks import load_task
from sambench.tasks.statistics import mask_properties, stratified_sample

METRICS = ["masks_per_image_mean", "masks_per_image_median", "images_without_masks", "rel_size_mean",
           "rel_size_median", "concavity_mean", "concavity_median", "concavity_mean_unstratified",
           "center_x_mean", "center_y_mean", "center_distance_mean"]


def test_mask_properties_hand_checked():
    square = np.zeros((20, 30), bool)
    square[5:15, 10:20] = True
    props = mask_properties(square)
    assert props["area"] == 100 and props["concavity"] == 0.0
    assert (props["cx"], props["cy"]) == (15.0, 10.0)  # pixel centres 10.5..19.5 -> 15
    ell = np.zeros((20, 20), bool)
    ell[0:10, 0:2] = True
    ell[8:10, 0:10] = True  # an L of 36 px; its hull is the triangle-ish shape of ~ 64 px
    props = mask_properties(ell)
    assert props["area"] == 36 and 0.3 < props["concavity"] < 0.5
    ring = np.zeros((21, 21), bool)
    yy, xx = np.mgrid[0:21, 0:21]
    ring[((yy - 10) ** 2 + (xx - 10) ** 2 <= 100) & ((yy - 10) ** 2 + (xx - 10) ** 2 > 49)] = True
    # The hull is the filled disc (317 px) plus the boundary pixels its polygon touches.
    assert mask_properties(ring)["concavity"] == pytest.approx(1 - ring.sum() / (ring.sum() + 149), abs=0.04)
    assert mask_properties(ring)["concavity"] >= 1 - ring.sum() / (ring.sum() + 149)


def test_stratified_sample():
    sizes = np.concatenate([np.full(50, 0.05), np.full(5, 0.55), np.full(3, 0.99)])
    chosen = stratified_sample(sizes, 10, 4, np.random.default_rng(0))
    assert len(chosen) == 4 + 4 + 3
    assert len(set(chosen)) == len(chosen)
    assert (sizes[chosen] == 0.05).sum() == 4 and (sizes[chosen] == 0.99).sum() == 3
    again = stratified_sample(sizes, 10, 4, np.random.default_rng(0))
    assert (again == chosen).all()


def write_coco(root):
    root.mkdir(parents=True)
    images, anns = [], []
    for image_id, n in ((1, 3), (2, 0), (3, 12)):
        Image.fromarray(np.zeros((50, 80, 3), np.uint8)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 50, "width": 80})
        for k in range(n):
            mask = np.zeros((50, 80), bool)
            mask[k:k + 10 + 2 * k, 5 * k: 5 * k + 8] = True
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": int(k == 2),
                         "segmentation": mask_codec.encode(mask)})
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                       "categories": [{"id": 1, "name": "x"}]}))


def write_sa1b(root):
    root.mkdir(parents=True)
    for i in range(2):
        anns = []
        for k in range(4 + i):
            mask = np.zeros((40, 60), bool)
            mask[2 * k:2 * k + 20, 3 * k:3 * k + 25] = True
            mask[2 * k + 5:2 * k + 15, 3 * k + 5:3 * k + 20] = False  # a hole: concave
            anns.append({"id": k, "segmentation": mask_codec.encode(mask), "bbox": [0, 0, 1, 1],
                         "area": int(mask.sum()), "predicted_iou": 0.9, "stability_score": 0.96,
                         "crop_box": [0, 0, 60, 40], "point_coords": [[1.0, 1.0]]})
        doc = {"image": {"image_id": i, "width": 60, "height": 40, "file_name": f"sa_{i}.jpg"}, "annotations": anns}
        (root / f"sa_{i}.json").write_text(json.dumps(doc))


def test_statistics_run(tmp_path, capsys):
    write_coco(tmp_path / "coco")
    write_sa1b(tmp_path / "amg")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "version": 1, "tasks": [
        {"task": "statistics", "datasets": [str(tmp_path / "coco"), f"sa1b={tmp_path / 'amg'}"],
         "options": {"concavity_per_bin": 2}}]}))
    out = tmp_path / "run"
    # no --model: statistics uses none, and reads no image (the COCO fixture has no image files)
    assert main(["run", "--suite", str(suite), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"]["name"] == "none" and summary["model"]["params"] == 0
    results = summary["results"]
    coco, amg = results
    assert set(coco["metrics"]) == set(METRICS) == set(amg["metrics"])
    assert coco["n_images"] == 3 and coco["n_masks"] == 13 and coco["counts"] == {"crowd_excluded": 2}
    assert coco["metrics"]["masks_per_image_mean"] == pytest.approx(13 / 3)
    assert coco["metrics"]["images_without_masks"] == pytest.approx(1 / 3)
    assert coco["metrics"]["concavity_mean_unstratified"] == 0.0  # rectangles
    assert amg["n_masks"] == 9 and amg["metrics"]["concavity_mean"] > 0.2
    assert amg["metrics"]["rel_size_mean"] == pytest.approx(np.sqrt((20 * 25 - 10 * 15) / 2400))
    arrays = json.loads((out / "statistics" / "sa1b_statistics.json").read_text())
    assert arrays["masks_per_image"]["fraction"] == [1.0, 0, 0, 0, 0]
    assert sum(arrays["rel_size"]["fraction"]) == pytest.approx(1.0)
    assert np.sum(arrays["center_heatmap"]["fraction"]) == pytest.approx(1.0)
    assert arrays["concavity_sample"] == 2  # every mask in one size stratum, 2 drawn
    html = (out / "report.html").read_text()
    assert "Dataset statistics" in html and "cf. SAM Fig. 6" in html and "cf. SAM Fig. 5" in html


def test_statistics_task_file():
    task = load_task("statistics")
    assert task.runner == "statistics" and task.options["size_bins"] == 10
    from sambench.errors import SambenchError

    with pytest.raises(SambenchError):
        load_task("statistics", options={"size_bins": 0}).build()
