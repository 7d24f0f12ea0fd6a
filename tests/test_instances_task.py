"""The instances task end to end: detections in, masks out, AP equal to the reference APIs.

A scripted box model makes every mask predictable from its box, so the tests compute the
expected masks on their own and score them with pycocotools / the LVIS API directly: the
runner's whole path (box conversion, per-image limit, refinement, records, results JSON,
evaluator, metric names) must give exactly those numbers.
"""
import json

import numpy as np
import pytest
from PIL import Image

from sambench import masks as mask_codec
from sambench.cli import main
from sambench.datasets import resolve
from sambench.errors import SambenchError
from sambench.models import MODELS
from sambench.models.base import ModelInfo, batch_prompts, unbatch
from sambench.tasks.instances import InstancesTask
from sambench.types import Prediction
from test_instances_eval import COCO_NAMES, H, W, lvis_api_results, make_gt, pycocotools_stats


def box_mask(box, shape, ellipse=False) -> np.ndarray:
    """Pixels whose centre lies in the XYXY box (or in the ellipse inscribed in it)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    x0, y0, x1, y1 = box
    if not ellipse:
        return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


class BoxModel:
    """Scripted: 3 masks per box (shrunk, the box, grown; the box scores highest, with low-res
    logits tagged 1, 2, 3); single-mask output is the box, except when given a mask input,
    where it is the ellipse inscribed in the box. Every call is logged."""

    calls: list = []

    def info(self):
        return ModelInfo("box", "test")

    def embed(self, image):
        return image.shape[:2]

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        batch = batch_prompts(points, labels, box, mask_input)
        BoxModel.calls.append({"B": batch.size, "multimask": multimask, "points": batch.points,
                               "mask_input": None if mask_input is None else batch.mask_input[:, 0, 0, 0].copy()})
        out = []
        for b in batch.boxes:
            if multimask:
                pad = np.array([-2, -2, 2, 2])
                out.append([box_mask(b - pad, embedding), box_mask(b, embedding), box_mask(b + pad, embedding)])
            else:
                out.append([box_mask(b, embedding, ellipse=batch.mask_input is not None)])
        masks = np.array(out, bool)
        k = masks.shape[1]
        scores = np.tile(np.array([0.3, 0.9, 0.5] if multimask else [0.7 if mask_input is not None else 0.8],
                                  np.float32), (batch.size, 1))
        logits = np.broadcast_to(np.arange(1, k + 1, dtype=np.float32)[None, :, None, None],
                                 (batch.size, k, 256, 256)).copy()
        return unbatch(Prediction(masks, scores, logits), batch)


if "test-box" not in MODELS:
    MODELS.add("test-box", lambda checkpoint=None, device="cpu", dtype="float32": BoxModel(), "test stand-in for boxes")


def write_dataset(root, gt: dict):
    """A COCO-style folder (annotations.json + images/) for a GT dict."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for img in gt["images"]:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), np.uint8)).save(root / "images" / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(gt))
    return root


def make_detections(gt: dict, seed=0) -> list[dict]:
    """Jittered GT boxes (some with the wrong category), false positives, integer boxes."""
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in gt["categories"]]
    dets = []
    for ann in gt["annotations"]:
        x, y, w, h = mask_codec.to_bbox(mask_codec.from_annotation(ann["segmentation"], H, W))
        jx, jy, jw, jh = rng.integers(-2, 3, size=4)
        cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice(cats))
        dets.append({"image_id": ann["image_id"], "category_id": cat,
                     "bbox": [float(x + jx), float(y + jy), float(max(1, w + jw)), float(max(1, h + jh))],
                     "score": round(float(rng.random()), 3)})
    for img in gt["images"]:
        for _ in range(3):
            x0, y0 = rng.integers(0, W - 20), rng.integers(0, H - 20)
            dets.append({"image_id": img["id"], "category_id": int(rng.choice(cats)),
                         "bbox": [float(x0), float(y0), 18.0, 15.0], "score": round(float(rng.random()), 3)})
    return dets


def expected_results(gt, dets, max_dets=100, refine=True) -> list[dict]:
    """What the runner must produce: per image the top max_dets known detections, each the
    ellipse (refined) or the box (not refined) of its XYXY box, with the detector's score."""
    images = {img["id"] for img in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    out = []
    for image_id in sorted(images):
        mine = [d for d in dets if d["image_id"] == image_id and d["category_id"] in cats]
        mine = sorted(mine, key=lambda d: -d["score"])[:max_dets]
        for d in mine:
            x, y, w, h = d["bbox"]
            mask = box_mask(np.array([x, y, x + w, y + h], np.float32), (H, W), ellipse=refine)
            out.append({"image_id": image_id, "category_id": d["category_id"],
                        "segmentation": mask_codec.encode(mask), "score": d["score"]})
    return out


def run(*args):
    return main(["run", "--model", "test-box", "--no-cache", "--no-report", *args])


@pytest.fixture
def coco_case(tmp_path):
    gt = make_gt(2)
    root = write_dataset(tmp_path / "cocoish", gt)
    dets = make_detections(gt)
    unknown = [{"image_id": 999999, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9},
               {"image_id": 999998, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9},
               {"image_id": gt["images"][0]["id"], "category_id": 555, "bbox": [1, 1, 5, 5], "score": 0.9}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets + unknown))
    return gt, root, dets, det_file


def test_pipeline_equals_pycocotools_and_counts_unknown_detections(coco_case, tmp_path):
    gt, root, dets, det_file = coco_case
    out = tmp_path / "run"
    assert run("--task", "instances", "--dataset", str(root), "--detections", str(det_file), "--out", str(out)) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    ref = pycocotools_stats(gt, expected_results(gt, dets), tmp_path)
    diffs = [abs(entry["metrics"][n] - ref[i]) for i, n in enumerate(COCO_NAMES)]
    assert max(diffs) <= 1e-9 and 0 < entry["metrics"]["ap"] < 1
    assert entry["counts"]["detections_unknown_image"] == 2
    assert entry["counts"]["detections_unknown_category"] == 1
    assert entry["protocol"]["evaluator"] == "coco" and entry["protocol"]["max_dets"] == 100
    assert entry["protocol"]["refine"] and not entry["protocol"]["refine_multimask"]
    assert len(entry["protocol"]["detections_sha256"]) == 64
    assert entry["n_masks"] == len(expected_results(gt, dets))
    # The COCO results JSON in the run directory re-scores to the same numbers.
    written = json.loads((out / "instances" / "cocoish_segm.json").read_text())
    assert set(written[0]) == {"image_id", "category_id", "segmentation", "score"}
    again = pycocotools_stats(gt, written, tmp_path)
    assert max(abs(entry["metrics"][n] - again[i]) for i, n in enumerate(COCO_NAMES)) <= 1e-9
    # A rerun into the same directory (every record present) aggregates to the same numbers.
    assert run("--task", "instances", "--dataset", str(root), "--detections", str(det_file), "--out", str(out)) == 0
    assert json.loads((out / "results.json").read_text())["results"][0]["metrics"] == entry["metrics"]


def runner_for(root, det_file, tmp_path, **options):
    """A runner and the context it prepared for the dataset at ``root``."""
    task = InstancesTask({"detections": str(det_file), **options})
    return task, task.prepare(resolve(str(root)), tmp_path / "out")


def test_refinement_feeds_back_the_most_confident_mask(coco_case, tmp_path):
    gt, root, dets, det_file = coco_case
    sample = next(iter(resolve(str(root)).open()))
    n = len([d for d in dets if str(d["image_id"]) == sample.id])
    BoxModel.calls.clear()
    task, context = runner_for(root, det_file, tmp_path)
    refined = task.run_sample(BoxModel(), sample, context, 0)
    # One batched call per pass: multimask first, then single-mask on the top mask's logits (tag 2).
    assert [(c["B"], c["multimask"]) for c in BoxModel.calls] == [(n, True), (n, False)]
    assert BoxModel.calls[0]["mask_input"] is None and (BoxModel.calls[1]["mask_input"] == 2).all()
    task, context = runner_for(root, det_file, tmp_path, refine=False)
    plain = task.run_sample(BoxModel(), sample, context, 0)
    for a, b in zip(refined.rows, plain.rows):
        assert a["mask"] == b["mask"] and a["segmentation"] != b["segmentation"]
        x, y, w, h = next(d["bbox"] for i, d in enumerate(json.loads(det_file.read_text()))
                          if f"det{i}" == a["mask"])
        box = np.array([x, y, x + w, y + h], np.float32)
        assert (mask_codec.decode(a["segmentation"]) == box_mask(box, (H, W), ellipse=True)).all()
        assert (mask_codec.decode(b["segmentation"]) == box_mask(box, (H, W))).all()
        assert a["pred_iou"] == pytest.approx(0.7) and b["pred_iou"] == pytest.approx(0.9)
        assert a["score"] == a["det_score"]


def test_score_option_max_dets_and_batch_size(coco_case, tmp_path):
    gt, root, dets, det_file = coco_case
    sample = next(iter(resolve(str(root)).open()))
    BoxModel.calls.clear()
    task, context = runner_for(root, det_file, tmp_path, score="detector*pred_iou", max_dets=2, batch_size=1)
    record = task.run_sample(BoxModel(), sample, context, 0)
    assert len(record.rows) == 2 and len(BoxModel.calls) == 4  # 2 boxes × 2 passes, one box per call
    top = sorted((d["score"] for d in dets if str(d["image_id"]) == sample.id), reverse=True)[:2]
    assert [r["det_score"] for r in record.rows] == top
    assert all(r["score"] == pytest.approx(r["det_score"] * 0.7) for r in record.rows)
    assert context.counts["detections_over_max_dets"] > 0


def test_lvis_format_ground_truth_is_scored_with_the_lvis_rules(tmp_path, monkeypatch):
    gt = make_gt(4, lvis=True)
    root = write_dataset(tmp_path / "lvisish", gt)
    dets = make_detections(gt, seed=3)
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    out = tmp_path / "run"
    assert run("--task", "instances", "--dataset", str(root), "--detections", str(det_file), "--out", str(out)) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    assert entry["protocol"]["evaluator"] == "lvis" and entry["protocol"]["max_dets"] == 300
    ref = lvis_api_results(gt, expected_results(gt, dets, 300), tmp_path, monkeypatch)
    pairs = {"ap": "AP", "ap50": "AP50", "ap75": "AP75", "ap_small": "APs", "ap_medium": "APm",
             "ap_large": "APl", "ap_rare": "APr", "ap_common": "APc", "ap_frequent": "APf", "ar@300": "AR@300"}
    assert max(abs(entry["metrics"][ours] - ref[theirs]) for ours, theirs in pairs.items()) <= 1e-9


def test_gt_box_prompts_report_miou_by_size(tmp_path):
    gt = make_gt(6)
    root = write_dataset(tmp_path / "gtbox", gt)
    out = tmp_path / "run"
    BoxModel.calls.clear()
    assert run("--task", "instances-gtbox", "--dataset", str(root), "--out", str(out)) == 0
    entry = json.loads((out / "results.json").read_text())["results"][0]
    ious, by_size = [], {"small": [], "medium": [], "large": []}
    for ann in gt["annotations"]:
        if ann["iscrowd"]:
            continue
        mask = mask_codec.decode(mask_codec.from_annotation(ann["segmentation"], H, W))
        x, y, w, h = mask_codec.to_bbox(mask_codec.encode(mask))
        pred = box_mask(np.array([x, y, x + w, y + h], np.float32), (H, W), ellipse=True)
        iou = (pred & mask).sum() / (pred | mask).sum()
        ious.append(iou)
        area = mask.sum()
        by_size["small" if area < 32 ** 2 else "medium" if area < 96 ** 2 else "large"].append(iou)
    m = entry["metrics"]
    assert m["gtbox_miou"] == pytest.approx(np.mean(ious), abs=1e-12)
    for size, values in by_size.items():
        assert m[f"gtbox_miou_{size}"] == pytest.approx(np.mean(values), abs=1e-12)
    assert entry["counts"]["crowd_excluded"] == len(gt["images"])
    assert (out / "instances-gtbox" / "gtbox_gtbox_segm.json").is_file()


def test_gt_box_with_centre_point(tmp_path):
    gt = make_gt(7, n_images=2)
    root = write_dataset(tmp_path / "gtbox", gt)
    out = tmp_path / "run"
    assert main(["run", "--model", "test-box", "--no-cache", "--no-report", "--suite",
                 str(write_suite(tmp_path, {"center_point": True})), "--dataset", str(root),
                 "--out", str(out)]) == 0
    m = json.loads((out / "results.json").read_text())["results"][0]["metrics"]
    assert {"gtbox_miou", "gtbox+point_miou", "gtbox+point_miou_large"} <= set(m)
    points = [c["points"] for c in BoxModel.calls if c["points"] is not None]
    assert points and all(p.shape[1:] == (1, 2) for p in points)


def write_suite(tmp_path, options):
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({"name": "s", "tasks": [{"task": "instances-gtbox", "options": options}]}))
    return path


def test_bad_input_is_one_clear_error(coco_case, tmp_path, capsys):
    gt, root, dets, det_file = coco_case
    base = ["--dataset", str(root), "--out", str(tmp_path / "x")]
    assert run("--task", "instances", *base) == 2
    assert "needs a detections file" in capsys.readouterr().err
    assert run("--task", "point", "--detections", str(det_file), *base) == 2
    assert "--detections: no task of this run has the option 'detections'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, -3, 2], "score": 0.5}]))
    assert run("--task", "instances", "--detections", str(bad), *base) == 2
    assert "detection 0" in capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps([{"image_id": 424242, "category_id": 1, "bbox": [0, 0, 3, 2], "score": 0.5}]))
    with pytest.raises(SambenchError, match="wrong --detections file"):
        runner_for(root, elsewhere, tmp_path)


def test_an_unreadable_image_counts_its_detections(coco_case, tmp_path):
    gt, root, dets, det_file = coco_case
    first = gt["images"][0]
    (root / "images" / first["file_name"]).write_bytes(b"not a png")
    sample = next(iter(resolve(str(root)).open()))
    task, context = runner_for(root, det_file, tmp_path)
    record = task.run_sample(BoxModel(), sample, context, 0)
    assert not record.rows and [e["kind"] for e in record.errors] == ["image", "detections_not_scored"]
