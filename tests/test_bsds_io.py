"""Reading predictions and BSDS ground truth, user errors, and the edges-eval command."""
import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from sambench.errors import SambenchError
from sambench.metrics import bsds_cli
from sambench.metrics.bsds import (evaluate_arrays, evaluate_dir, load_ground_truth,
                                   load_prediction)

SAMPLE = Path(__file__).parent / "fixtures" / "bsds500_bench_sample"


def write_gt(path: Path, maps=None, segs=None) -> None:
    """A BSDS-style ``groundTruth`` cell of structs (Boundaries and/or Segmentation)."""
    n = len(maps if maps is not None else segs)
    fields = [f for f, v in (("Segmentation", segs), ("Boundaries", maps)) if v is not None]
    cell = np.empty((1, n), dtype=object)
    for k in range(n):
        entry = np.empty((1, 1), dtype=[(f, object) for f in fields])
        if segs is not None:
            entry[0, 0]["Segmentation"] = np.asarray(segs[k], dtype=np.uint16)
        if maps is not None:
            entry[0, 0]["Boundaries"] = np.asarray(maps[k], dtype=np.uint8)
        cell[0, k] = entry
    scipy.io.savemat(str(path), {"groundTruth": cell})


@pytest.fixture
def tiny(tmp_path):
    """Two 40x50 images: a square boundary, predictions at two strengths."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    seg = np.ones((40, 50), dtype=np.uint16)
    seg[10:30, 12:40] = 2
    for name in ("a", "b"):
        bnd = np.zeros((40, 50), dtype=np.uint8)
        bnd[10, 12:40] = bnd[29, 12:40] = bnd[10:30, 12] = bnd[10:30, 39] = 1
        write_gt(gt_dir / f"{name}.mat", maps=[bnd, np.roll(bnd, 1, axis=1)], segs=[seg, seg])
    pred = np.zeros((40, 50), dtype=np.uint8)
    pred[11, 12:40] = 200
    pred[10:30, 13] = 90
    cv2.imwrite(str(pred_dir / "a.png"), pred)
    np.save(pred_dir / "b.npy", pred.astype(np.float64) / 255)
    return pred_dir, gt_dir


def test_png_and_npy_give_the_same_numbers(tiny):
    pred_dir, gt_dir = tiny
    res = evaluate_dir(pred_dir, gt_dir, nthresh=9)
    assert res.image_ids == ["a", "b"]
    np.testing.assert_array_equal(res.counts[0], res.counts[1])
    assert 0 < res.summary()["ods"] < 1


def test_sixteen_bit_png_is_scaled_to_one(tmp_path):
    img = np.array([[0, 65535], [32768, 1]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "x.png"), img)
    np.testing.assert_allclose(load_prediction(tmp_path / "x.png"), img / 65535)
    cv2.imwrite(str(tmp_path / "y.png"), np.array([[0, 255]], dtype=np.uint8))
    assert load_prediction(tmp_path / "y.png").tolist() == [[0.0, 1.0]]


def test_segmentation_only_ground_truth(tiny, tmp_path):
    _, gt_dir = tiny
    gt = load_ground_truth(SAMPLE / "groundTruth" / "3063.mat")
    mat = scipy.io.loadmat(str(SAMPLE / "groundTruth" / "3063.mat"))["groundTruth"]
    write_gt(tmp_path / "seg.mat", segs=[e["Segmentation"][0, 0] for e in mat.flat])
    from_seg = load_ground_truth(tmp_path / "seg.mat")
    assert len(from_seg) == len(gt) == 6
    for a, b in zip(from_seg, gt):
        np.testing.assert_array_equal(a, b)


def test_in_memory_api_equals_the_directory_api(tiny):
    pred_dir, gt_dir = tiny
    res = evaluate_dir(pred_dir, gt_dir, nthresh=5)
    arr = evaluate_arrays([load_prediction(pred_dir / "a.png")],
                          [load_ground_truth(gt_dir / "a.mat")], ["a"], nthresh=5)
    np.testing.assert_array_equal(arr.counts[0], res.counts[0])


@pytest.mark.parametrize("breakage, message", [
    ("no_gt_dir", "ground-truth directory not found"),
    ("no_pred_dir", "prediction directory not found"),
    ("no_match", "no prediction"),
    ("one_missing", "1 of 2 images have no prediction"),
    ("bad_mat", "unreadable ground-truth file"),
    ("truncated_mat", "unreadable ground-truth file"),
    ("seg_bnd_sizes", "(2-D, equal expected)"),
    ("not_bsds_mat", "no 'groundTruth' variable"),
    ("size", "size mismatch for a"),
    ("rgb", "single-channel"),
    ("npy_range", "[0, 1]"),
    ("bad_png", "unreadable prediction image"),
])
def test_bad_input_is_one_clear_error(tiny, breakage, message):
    pred_dir, gt_dir = tiny
    if breakage == "no_gt_dir":
        gt_dir = gt_dir / "nope"
    elif breakage == "no_pred_dir":
        pred_dir = pred_dir / "nope"
    elif breakage == "no_match":
        for p in pred_dir.iterdir():
            p.rename(p.with_name("z" + p.name))
    elif breakage == "one_missing":
        (pred_dir / "b.npy").unlink()
    elif breakage == "bad_mat":
        (gt_dir / "a.mat").write_bytes(b"not a mat file")
    elif breakage == "truncated_mat":  # scipy raises IndexError on this one
        (gt_dir / "a.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    elif breakage == "seg_bnd_sizes":
        write_gt(gt_dir / "a.mat", maps=[np.zeros((40, 50))], segs=[np.ones((40, 51))])
    elif breakage == "not_bsds_mat":
        scipy.io.savemat(str(gt_dir / "a.mat"), {"something": np.zeros(3)})
    elif breakage == "size":
        cv2.imwrite(str(pred_dir / "a.png"), np.zeros((41, 50), dtype=np.uint8))
    elif breakage == "rgb":
        cv2.imwrite(str(pred_dir / "a.png"), np.zeros((40, 50, 3), dtype=np.uint8))
    elif breakage == "npy_range":
        np.save(pred_dir / "b.npy", np.full((40, 50), 3.0))
    elif breakage == "bad_png":
        (pred_dir / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SambenchError) as err:
        evaluate_dir(pred_dir, gt_dir, nthresh=3)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_parameter_errors(tiny):
    pred_dir, gt_dir = tiny
    with pytest.raises(SambenchError, match="matcher"):
        evaluate_dir(pred_dir, gt_dir, nthresh=3, matcher="csa")
    with pytest.raises(SambenchError, match="max_dist"):
        evaluate_dir(pred_dir, gt_dir, nthresh=3, max_dist=0)


def cli(argv):
    parser = argparse.ArgumentParser(prog="sambench")
    bsds_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_json(tiny, capsys):
    pred_dir, gt_dir = tiny
    assert cli(["edges-eval", str(pred_dir), str(gt_dir), "--nthresh", "9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ods", "ois", "ap", "r50", "ods_r", "ods_p", "ods_t", "ois_r", "ois_p"} <= set(out)
    assert out["n_images"] == 2 and out["nthresh"] == 9 and 0 < out["ods"] <= 1


def test_cli_table_and_out_dir(capsys, tmp_path):
    pred_dir = tmp_path / "pred"
    shutil.copytree(SAMPLE / "png", pred_dir)
    code = cli(["edges-eval", str(pred_dir), str(SAMPLE / "groundTruth"), "--nthresh", "2",
                "--workers", "2", "--out", str(tmp_path / "eval")])
    assert code == 0
    table = capsys.readouterr().out
    assert "ODS" in table and "OIS" in table and "R50" in table
    written = {p.name for p in (tmp_path / "eval").iterdir()}
    assert {"eval_bdry.txt", "eval_bdry_thr.txt", "eval_bdry_img.txt", "summary.json",
            "2018_ev1.txt"} <= written


def test_cli_main_prints_one_line_errors(capsys, tmp_path):
    assert bsds_cli.main(["edges-eval", str(tmp_path / "x"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
