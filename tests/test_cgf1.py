"""cgF1 (SA-Co's concept segmentation metric): by hand, and equal to SAM 3's evaluator.

The reference, ``sam3.eval.cgf1_eval.CGF1Evaluator`` from the ``sam3`` package, runs in the
reference venv (``.venv-official`` or ``$SAMBENCH_OFFICIAL_PYTHON``; scripts/test.sh installs
it there, so in CI a missing reference fails instead of skipping). Each fixture is a set of
SA-Co ground-truth files and a prediction file written here; every metric the reference prints
must equal ours to 1e-9, through :func:`evaluate_files` and through ``sambench concept-eval
--json``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sambench import masks as mask_codec
from sambench.amg.official import ENV_VAR, official_python
from sambench.metrics.cgf1 import IOU_THRESHOLDS, METRIC_NAMES, REFERENCE_NAMES, accumulate, score_pair
from sambench.tasks.concept_eval import evaluate_files

H, W = 24, 32


def box_mask(x0, y0, x1, y1, h=H, w=W) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_case(folder, pairs, preds, annotators=1, categories=(1,)):
    """``pairs``: [(phrase, exhaustive per annotator, [[(mask, crowd, category)] per annotator])];
    ``preds``: [(pair index, mask or box, score, category)]. Returns (pred path, gt paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    gts = []
    for a in range(annotators):
        images, annotations = [], []
        for k, (phrase, exhaustive, sets) in enumerate(pairs):
            images.append({"id": 100 + k, "file_name": f"img{k % 3}.png", "height": H, "width": W,
                           "text_input": phrase, "is_instance_exhaustive": exhaustive[a]})
            for mask, crowd, category in sets[a]:
                rle = mask_codec.encode(mask)
                annotations.append({"id": len(annotations) + 1, "image_id": 100 + k, "category_id": category,
                                    "segmentation": rle, "bbox": mask_codec.to_bbox(rle),
                                    "area": mask_codec.area(rle), "iscrowd": int(crowd)})
        path = folder / f"gt_{a}.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": [{"id": c, "name": f"c{c}"} for c in categories]}))
        gts.append(str(path))
    results = []
    for k, region, score, category in preds:
        entry = {"image_id": 100 + k, "category_id": category, "score": score}
        if isinstance(region, np.ndarray):
            rle = mask_codec.encode(region)
            entry.update(segmentation=rle, bbox=mask_codec.to_bbox(rle))
        else:
            entry["bbox"] = list(region)
        results.append(entry)
    pred = folder / "pred.json"
    pred.write_text(json.dumps(results))
    return str(pred), gts


def test_by_hand(tmp_path):
    """Three pairs worked out on paper: a positive pair (an exact match and a match of IoU
    80/105, a low-scored prediction ignored), a true negative and a false positive."""
    a, b = box_mask(0, 0, 10, 10), box_mask(12, 0, 22, 10)
    partial = box_mask(12, 0, 22, 8) | box_mask(22, 0, 23, 5)  # 80 px of b + 5 outside
    low = box_mask(0, 12, 8, 20)
    pairs = [("cat", [True], [[(a, False, 1), (b, False, 1)]]),
             ("dog", [True], [[]]),
             ("bird", [True], [[]])]
    preds = [(0, a, 0.9, 1), (0, partial, 0.8, 1), (0, low, 0.3, 1), (2, low, 0.7, 1)]
    got = evaluate_files(*write_case(tmp_path, pairs, preds))
    assert (got["il_tp_count"], got["il_tn_count"], got["il_fp_count"], got["il_fn_count"]) == (1, 1, 1, 0)
    mcc = (1 * 1 - 1 * 0) / ((2 * 1 * 2 * 1) ** 0.5 + 1e-6)
    # IoU 80/105 = 0.762 passes the first six thresholds (0.50 ... 0.75), not the last four.
    def f1(tp, fp, fn):
        p, r = tp / (tp + fp + 1e-4), tp / (tp + fn + 1e-4)
        return 2 * p * r / (p + r + 1e-4)
    pm = [f1(2, 0, 0)] * 6 + [f1(1, 1, 1)] * 4  # the false-positive pair is not a positive pair
    overall = [f1(2, 1, 0)] * 6 + [f1(1, 2, 1)] * 4
    assert got["il_mcc"] == pytest.approx(mcc, abs=1e-12)
    assert got["pmf1"] == pytest.approx(np.mean(pm), abs=1e-12)
    assert got["cgf1"] == pytest.approx(np.mean(pm) * mcc, abs=1e-12)
    assert got["cgf1@0.5"] == pytest.approx(f1(2, 0, 0) * mcc, abs=1e-12)
    assert got["cgf1@0.75"] == pytest.approx(f1(2, 0, 0) * mcc, abs=1e-12)
    assert got["f1"] == pytest.approx(np.mean(overall), abs=1e-12)
    assert got["il_fpr"] == pytest.approx(1 / (1 + 1 + 1e-6), abs=1e-12)
    assert got["positive_macro_f1"] == pytest.approx(np.mean(pm), abs=1e-12)  # one positive pair


def test_pair_outcomes():
    keep = np.array([True])
    assert score_pair(np.zeros((0, 0)), np.zeros(0, bool)).outcome == "tn"
    assert score_pair(np.zeros((1, 0)), keep).outcome == "fp"
    assert score_pair(np.zeros((1, 2)), ~keep).outcome == "fn"  # the prediction is below threshold
    tp = score_pair(np.array([[0.8, 0.1]]), keep)
    assert tp.outcome == "tp" and tp.tps.tolist() == [1] * 7 + [0] * 3 and tp.fns.tolist() == [1] * 7 + [2] * 3
    assert len(IOU_THRESHOLDS) == 10


def test_undefined_metrics_are_none():
    """With no positive pair the reference prints -1 for the positive macro-F1: we say None."""
    got = accumulate([score_pair(np.zeros((0, 0)), np.zeros(0, bool))])
    assert got["positive_macro_f1"] is None and got["n_pairs"] == 1


# -- equality with the reference -----------------------------------------------------------------

def _random_mask(rng, h=H, w=W) -> np.ndarray:
    x0, y0 = rng.integers(0, w - 4), rng.integers(0, h - 4)
    mask = box_mask(x0, y0, x0 + rng.integers(3, 12), y0 + rng.integers(3, 10))
    if rng.random() < 0.5:  # not always a rectangle
        mask &= ~box_mask(x0, y0, x0 + 2, y0 + 2)
    return mask


def _jitter(rng, mask):
    out = mask.copy()
    ys, xs = np.nonzero(mask)
    flip = rng.random(len(ys)) < 0.2
    out[ys[flip], xs[flip]] = False
    return out | np.roll(mask, int(rng.integers(-2, 3)), axis=1)


def fixtures(tmp_path):
    rng = np.random.default_rng(7)
    cases = {}
    a, b, c = box_mask(0, 0, 8, 8), box_mask(10, 0, 18, 8), box_mask(0, 10, 8, 18)
    # negatives: TN, FP (one and several predictions), one positive so MCC is defined
    cases["negatives"] = ([("x", [True], [[]]), ("y", [True], [[]]), ("z", [True], [[]]),
                           ("w", [True], [[(a, False, 1)]])],
                          [(1, b, 0.9, 1), (2, a, 0.6, 1), (2, c, 0.95, 1), (3, a, 0.8, 1)], 1)
    cases["empty_predictions"] = ([("x", [True], [[(a, False, 1)]]), ("y", [True], [[]])], [], 1)
    # ties: two predictions equal to one mask, a prediction straddling two equal masks
    cases["ties"] = ([("x", [True], [[(a, False, 1), (b, False, 1)]]),
                      ("y", [True], [[(box_mask(0, 0, 4, 4), False, 1), (box_mask(4, 0, 8, 4), False, 1)]])],
                     [(0, a, 0.9, 1), (0, a, 0.9, 1), (1, box_mask(2, 0, 6, 4), 0.7, 1),
                      (1, box_mask(2, 0, 6, 4), 0.7, 1)], 1)
    # score-threshold boundaries
    cases["threshold"] = ([("x", [True], [[(a, False, 1), (b, False, 1), (c, False, 1)]]),
                           ("y", [True], [[]])],
                          [(0, a, 0.5, 1), (0, b, 0.49999999, 1), (0, c, 0.50000001, 1), (1, a, 0.5, 1)], 1)
    # crowd ground truth: removed, so a prediction on it is a false positive
    cases["crowd"] = ([("x", [True], [[(a, True, 1), (b, False, 1)]]), ("y", [True], [[(c, True, 1)]]),
                       ("z", [True], [[]])],
                      [(0, a, 0.9, 1), (0, b, 0.8, 1), (1, c, 0.9, 1)], 1)
    # three annotators who disagree, and exhaustiveness flags that differ between them
    pairs, preds = [], []
    for k in range(9):
        masks = [_random_mask(rng) for _ in range(int(rng.integers(0, 4)))]
        sets = [[(m, False, 1) for m in masks if rng.random() < 0.8] for _ in range(3)]
        exhaustive = [bool(rng.random() < 0.85) for _ in range(3)]
        pairs.append((f"p{k}", exhaustive, sets))
        for m in masks:
            if rng.random() < 0.7:
                preds.append((k, _jitter(rng, m), float(rng.random()), 1))
        if rng.random() < 0.4:
            preds.append((k, _random_mask(rng), float(rng.random()), 1))
    cases["annotators"] = (pairs, preds, 3)
    # many pairs, two categories (ordering by category id) and predictions of an unknown one
    pairs, preds = [], []
    for k in range(40):
        masks = [(_random_mask(rng), bool(rng.random() < 0.1), int(rng.integers(1, 3)))
                 for _ in range(int(rng.integers(0, 5)))]
        pairs.append((f"q{k}", [True], [masks]))
        for m, _, cat in masks:
            if rng.random() < 0.75:
                preds.append((k, _jitter(rng, m), float(rng.random()), cat))
        for _ in range(int(rng.integers(0, 3))):
            preds.append((k, _random_mask(rng), float(rng.random()), int(rng.integers(1, 4))))
    cases["random"] = (pairs, preds, 1)
    written = {}
    for name, (pairs, preds, annotators) in cases.items():
        written[name] = write_case(tmp_path / name, pairs, preds, annotators, categories=(1, 2))
    return written


OFFICIAL = """
import contextlib, io, json, sys
from sam3.eval.cgf1_eval import CGF1Evaluator
out = {}
for name, (pred, gts, iou_type) in json.load(open(sys.argv[1])).items():
    with contextlib.redirect_stdout(io.StringIO()):
        out[name] = CGF1Evaluator(gt_path=gts, iou_type=iou_type).evaluate(pred)
print(json.dumps(out))
"""


def official_cgf1(cases: dict, folder) -> dict:
    python = official_python()
    probe = python and subprocess.run([python, "-c", "import sam3.eval.cgf1_eval"], capture_output=True, text=True)
    if not python or probe.returncode != 0:
        why = f"the reference sam3 package is not importable ({probe.stderr.strip()[-300:] if probe else 'no venv'})"
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    spec = folder / "cases.json"
    spec.write_text(json.dumps(cases))
    done = subprocess.run([python, "-c", OFFICIAL, str(spec)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_equal(ours: dict, reference: dict, iou_type: str, name: str) -> None:
    for metric in METRIC_NAMES:
        ref = reference[f"cgF1_eval_{iou_type}_{REFERENCE_NAMES[metric]}"]
        if ref == -1:
            assert ours[metric] is None, (name, metric)
        else:
            assert ours[metric] == pytest.approx(ref, abs=1e-9), (name, metric, ours[metric], ref)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cgf1")
    written = fixtures(folder)
    cases = {f"{name}/{iou}": (pred, gts, iou) for name, (pred, gts) in written.items() for iou in ("segm", "bbox")}
    return cases, official_cgf1(cases, folder)


def test_equals_reference(compared):
    cases, reference = compared
    for key, (pred, gts, iou_type) in cases.items():
        assert_equal(evaluate_files(pred, gts, iou_type), reference[key], iou_type, key)


def test_fixtures_exercise_the_rules(compared):
    """The fixtures reach what they are named for (a check that cannot pass vacuously)."""
    cases, _ = compared
    neg = evaluate_files(*cases["negatives/segm"][:2])
    assert neg["il_tn_count"] == 1 and neg["il_fp_count"] == 2
    assert evaluate_files(*cases["empty_predictions/segm"][:2])["il_fn_count"] == 1
    multi = evaluate_files(*cases["annotators/segm"][:2])
    assert multi["not_exhaustive"] > 0 and sum(1 for n in multi["oracle_choice"][1:] if n) > 0
    rand = evaluate_files(*cases["random/segm"][:2])
    assert rand["predictions_not_scored"]["unknown_category"] > 0  # category 3 is not in the files
    assert rand["n_pairs"] == 40


def test_cli_json_equals_reference(compared):
    cases, reference = compared
    pred, gts, _ = cases["annotators/segm"]
    done = subprocess.run([sys.executable, "-m", "sambench", "concept-eval", pred, *gts, "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_equal(json.loads(done.stdout), reference["annotators/segm"], "segm", "cli")


def test_bad_prediction_is_one_line(tmp_path):
    pred, gts = write_case(tmp_path, [("x", [True], [[(box_mask(0, 0, 4, 4), False, 1)]])], [])
    with open(pred, "w") as f:
        json.dump([{"image_id": 100, "category_id": 1, "score": float("nan"),
                    "segmentation": mask_codec.encode(box_mask(0, 0, 4, 4))}], f)
    done = subprocess.run([sys.executable, "-m", "sambench", "concept-eval", pred, *gts],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "score" in done.stderr and "prediction 0" in done.stderr
