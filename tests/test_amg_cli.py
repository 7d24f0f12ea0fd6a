"""``sambench amg``: SA-1B JSON per image, readable by the sa1b adapter, resumable, bad images
counted (exit 1 after the others are done), images without masks written and counted."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sambench.amg.export import image_id
from sambench.amg.testing import amg_checkpoint, shapes_image
from sambench.cli import main
from sambench.datasets.sa1b import Sa1bDataset

SMALL_DECODER = dict(prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return amg_checkpoint(tmp_path_factory.mktemp("amg") / "amg.pth", "tiny", seed=1, **SMALL_DECODER)


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(shapes_image(90, 120, 1)).save(folder / "sa_1.jpg", quality=95)
    Image.fromarray(shapes_image(60, 80, 2)).save(folder / "sub" / "sa_2.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "sa_3.png")
    (folder / "sa_4.jpg").write_text("not an image")
    return folder


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr().out
    return code, out


def test_amg_writes_sa1b_json(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "amg"
    args = ["amg", "--model", f"sam:{checkpoint}", str(images), "--out", str(out), "--points-per-side", "16",
            "--pred-iou-thresh", "0.5", "--json"]
    code, stdout = run(args, capsys)
    summary = json.loads(stdout)
    assert code == 1  # one unreadable image, reported after the others
    assert summary["written"] == 3 and summary["failed"] == 1 and summary["failed_images"][0].endswith("sa_4.jpg")
    assert summary["masks"] > 0
    doc = json.loads((out / "sa_1.json").read_text())
    assert doc["image"] == {"image_id": 1, "width": 120, "height": 90, "file_name": "../images/sa_1.jpg"}
    ann = doc["annotations"][0]
    assert set(ann) == {"id", "segmentation", "bbox", "area", "predicted_iou", "stability_score", "crop_box",
                        "point_coords"}
    assert isinstance(ann["segmentation"]["counts"], str) and ann["crop_box"] == [0, 0, 120, 90]
    assert (out / "sub" / "sa_2.json").is_file() and (out / "sa_3.json").is_file()

    # The sa1b adapter reads it back: same masks, AMG fields in the instance meta.
    dataset = Sa1bDataset("amg", out)
    assert sorted(dataset.image_ids) == ["sa_1", "sa_3", "sub/sa_2"]
    sample = dataset.sample("sa_1")
    assert (sample.height, sample.width) == (90, 120) and not sample.problems
    assert len(sample.instances) == len(doc["annotations"])
    assert sample.instances[0].meta["predicted_iou"] == ann["predicted_iou"]
    assert sample.instances[0].area == ann["area"]
    assert sample.load_image().shape == (90, 120, 3)

    # Resume: nothing is recomputed; the bad image is tried again and still counted.
    code, stdout = run(args, capsys)
    again = json.loads(stdout)
    assert code == 1 and again["skipped"] == 3 and again["written"] == 0 and again["failed"] == 1


def test_images_without_masks_are_written_and_counted(checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(shapes_image(60, 80, 2)).save(tmp_path / "in" / "sa_7.png")
    code, stdout = run(["amg", "--model", f"sam:{checkpoint}", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                        "--points-per-side", "4", "--pred-iou-thresh", "10", "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["written"] == 1 and summary["empty"] == 1 and summary["masks"] == 0
    assert json.loads((tmp_path / "out" / "sa_7.json").read_text())["annotations"] == []
    sample = Sa1bDataset("amg", tmp_path / "out").sample("sa_7")
    assert sample.instances == [] and (sample.height, sample.width) == (60, 80)


def test_amg_cli_errors(checkpoint, tmp_path, capsys):
    assert main(["amg", "--model", f"sam:{checkpoint}", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "no such image" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["amg", "--model", f"sam:{checkpoint}", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    grid = tmp_path / "grid.txt"
    grid.write_text("0.5 0.5\n2 2\n")
    (tmp_path / "one").mkdir()
    Image.fromarray(shapes_image(40, 40, 0)).save(tmp_path / "one" / "a.png")
    assert main(["amg", "--model", f"sam:{checkpoint}", str(tmp_path / "one"), "--out", str(tmp_path / "o"),
                 "--point-grid", str(grid)]) == 2
    assert "point grid" in capsys.readouterr().err


def test_explicit_grid_and_ids(checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(shapes_image(60, 80, 2)).save(tmp_path / "in" / "photo.png")
    grid = tmp_path / "grid.npy"
    np.save(grid, np.array([[0.25, 0.25], [0.75, 0.75]]))
    code, stdout = run(["amg", "--model", f"sam:{checkpoint}", str(tmp_path / "in" / "photo.png"), "--out",
                        str(tmp_path / "out"), "--point-grid", str(grid), "--pred-iou-thresh", "0",
                        "--stability-score-thresh", "0"], capsys)
    assert code == 0 and "1 images written" in stdout
    doc = json.loads((tmp_path / "out" / "photo.json").read_text())
    assert doc["image"]["image_id"] == "photo"
    points = {tuple(a["point_coords"][0]) for a in doc["annotations"]}
    assert points <= {(20.0, 15.0), (60.0, 45.0)}
    assert image_id(tmp_path / "000000397133.jpg") == 397133
