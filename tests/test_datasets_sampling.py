"""The >15k → ~10k subsampling rule, frozen sample lists, and runs that use them."""
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from sambench.cli import main
from sambench.datasets import DatasetRef, load_cards
from sambench.datasets.base import IndexedDataset
from sambench.datasets.sampling import Selected, draw, read_sample_list
from sambench.errors import SambenchError
from sambench.types import Instance, Sample

from fixtures.datasets.write import image, png, rect
from stand_in import DiskModel  # noqa: F401  (registers the test-disk model)

H, W = 32, 48


class CountingDataset(IndexedDataset):
    """Images with a given number of instances each; counts how many samples were built."""

    def __init__(self, per_image):
        self.name = "toy"
        self.per_image = per_image
        self.image_ids = [f"img{k:03d}" for k in range(len(per_image))]
        self.built = 0

    def sample(self, image_id):
        self.built += 1
        n = self.per_image[self.image_ids.index(image_id)]
        rle = {"size": [2, 2], "counts": "04"}
        instances = [Instance(id=str(k), rle=rle) for k in range(n)]
        instances.append(Instance(id="crowd", rle=rle, iscrowd=True))  # never counted
        return Sample(id=image_id, dataset="toy", height=2, width=2, instances=instances)


def test_small_dataset_is_used_whole():
    ds = CountingDataset([3, 0, 5, 2])
    chosen = draw(ds, "toy", seed=0)
    assert not chosen.subsampled
    assert chosen.images == [("img000", ["0", "1", "2"]), ("img002", ["0", "1", "2", "3", "4"]),
                             ("img003", ["0", "1"])]  # dataset order; no mask-less image; no crowd


def test_large_dataset_is_drawn_to_about_target_and_stops_early():
    ds = CountingDataset([10] * 400)  # 4000 masks, threshold scaled down to 1500
    chosen = draw(ds, "toy", seed=0, threshold=1500, target=1000)
    assert chosen.subsampled and chosen.n_masks == 1000 and len(chosen.images) == 100
    assert ds.built == 151  # decoded only until the threshold was passed
    again = draw(CountingDataset([10] * 400), "toy", seed=0, threshold=1500, target=1000)
    other = draw(CountingDataset([10] * 400), "toy", seed=1, threshold=1500, target=1000)
    assert again.images == chosen.images and other.images != chosen.images
    order = [int(i[3:]) for i, _ in chosen.images]
    assert order == sorted(order)


def test_sample_list_file_round_trip_and_selection(tmp_path):
    ds = CountingDataset([2, 3, 1])
    chosen = draw(ds, "toy", seed=0)
    chosen.images[1] = ("img001", ["0", "2", "9"])  # keep two masks, name a missing one
    digest = chosen.write(tmp_path / "toy.json")
    assert digest == hashlib.sha256((tmp_path / "toy.json").read_bytes()).hexdigest()
    loaded = read_sample_list(tmp_path / "toy.json")
    assert loaded.images == chosen.images and loaded.dataset == "toy"
    view = Selected(ds, loaded)
    sample = view.sample("img001")
    assert [i.id for i in sample.instances] == ["0", "2"]
    assert sample.problems == [{"kind": "listed_mask_missing", "detail": "mask 9 of the sample list"}]
    loaded.images.append(("img777", ["0"]))
    with pytest.raises(SambenchError, match="names 1 images not in dataset toy: img777"):
        Selected(ds, loaded)


def test_malformed_sample_list(tmp_path):
    (tmp_path / "x.json").write_text('{"schema": "something else"}')
    with pytest.raises(SambenchError, match="not a sambench sample list"):
        read_sample_list(tmp_path / "x.json")


def write_bbbc(root, n=3):
    """A BBBC038 tree: n images, image k has k+1 nuclei."""
    for k in range(n):
        image(root / f"id{k}" / "images" / f"id{k}.png", H, W, seed=k)
        for j in range(k + 1):
            png(root / f"id{k}" / "masks" / f"n{j}.png", rect(H, W, 2 + 7 * j, 3, 6 + 7 * j, 12) * 255)


def test_cli_sample_then_run_with_the_list(tmp_path, capsys):
    root = tmp_path / "bbbc038v1"
    write_bbbc(root)
    out_list = tmp_path / "list.json"
    assert main(["datasets", "sample", "bbbc038v1", "--root", str(root), "--out", str(out_list), "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "3 images, 6 masks (whole dataset" in printed
    data = json.loads(out_list.read_text())
    assert data["dataset"] == "bbbc038v1" and data["seed"] == 4 and data["n_masks"] == 6
    data["images"] = [{"id": "id2", "instances": ["n0", "n2"]}]  # a hand-made list: 2 masks of 1 image
    out_list.write_text(json.dumps(data))
    run = tmp_path / "run"
    args = ["run", "--model", "test-disk", "--task", "point", "--no-cache", "--no-report",
            "--dataset", f"bbbc038v1={root}", "--sample-list", str(out_list), "--out", str(run)]
    assert main(args) == 0
    (entry,) = json.loads((run / "results.json").read_text())["results"]
    assert entry["n_images"] == 1 and entry["n_masks"] == 2
    assert entry["sample_list"]["sha256"] == hashlib.sha256(out_list.read_bytes()).hexdigest()
    assert entry["sample_list"]["path"] == str(out_list)
    out_list.write_text(out_list.read_text().replace('"n2"', '"n1"'))  # another list: no silent resume
    assert main(args) == 2
    assert "different settings (sample_lists)" in capsys.readouterr().err


def test_sample_list_for_a_dataset_not_in_the_run(tmp_path, capsys):
    root = tmp_path / "bbbc038v1"
    write_bbbc(root, n=1)
    assert main(["datasets", "sample", "bbbc038v1", "--root", str(root), "--out", str(tmp_path / "l.json")]) == 0
    assert main(["run", "--model", "test-disk", "--suite", "demo", "--no-cache", "--no-report",
                 "--sample-list", str(tmp_path / "l.json"), "--out", str(tmp_path / "run")]) == 2
    assert "which this run does not evaluate" in capsys.readouterr().err


def test_run_without_a_list_records_the_draw(tmp_path):
    root = tmp_path / "bbbc038v1"
    write_bbbc(root, n=2)
    card = load_cards().get("bbbc038v1")
    ds = DatasetRef("bbbc038v1", card, root).open(seed=0, subsample=True)
    assert ds.sample_list is not None and ds.sample_list.n_masks == 3
    assert DatasetRef("bbbc038v1", card, root).open().sample_list is None  # default: whole split
    whole = DatasetRef("bbbc038v1", replace(card, subsample=None), root).open(subsample=True)
    assert whole.sample_list is None
    prov = ds.sample_list.provenance(tmp_path / "lists")
    assert prov["path"] == str(tmp_path / "lists" / "bbbc038v1.json") and prov["n_masks"] == 3
    assert np.isclose(len(prov["sha256"]), 64)
