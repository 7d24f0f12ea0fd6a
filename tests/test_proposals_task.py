"""The proposals task end to end: ``sambench run --task proposals`` on an LVIS-style
COCO-format folder gives the contract's metric names, counts bad images and crowd masks, and
equals pycocotools' recall (useCats=0, maxDets=[1000]) on the very same proposals, recomputed
here with the task's settings and seed; plus the single-output ablation's settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from sambench import masks as mask_codec
from sambench.amg import AutomaticMaskGenerator
from sambench.amg.testing import amg_checkpoint
from sambench.cli import main
from sambench.metrics.proposals import cocoeval_recall
from sambench.prompts import stable_rng
from sambench.tasks import load_task

SMALL_DECODER = dict(prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=4)
OPTIONS = {"points_per_side": 6}
NAMES = ["ar@1000", "ar@1000_small", "ar@1000_medium", "ar@1000_large", "ar@1000_frequent",
         "ar@1000_common", "ar@1000_rare"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return amg_checkpoint(tmp_path_factory.mktemp("amg") / "amg.pth", "tiny", seed=1, **SMALL_DECODER)


def write_dataset(root, n_images=3, seed=0):
    """Coloured rectangles and ellipses on a plain background, annotated LVIS-style (categories
    with frequency groups, RLE masks), plus a crowd mask, an empty mask, a polygon area that is
    not the pixel count, and one unreadable image."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    images, anns = [], []
    h, w = 120, 160
    y, x = np.mgrid[0:h, 0:w]
    for image_id in range(1, n_images + 1):
        image = np.empty((h, w, 3), np.uint8)
        image[:] = rng.integers(0, 255, 3)
        masks = []
        for k in range(5):  # k = 3: a large rectangle; k = 4 (drawn last): the crowd mask
            cy, cx = rng.uniform(0.3, 0.7, 2) * (h, w)
            ry, rx = rng.uniform(0.4, 0.45, 2) * (h, w) if k == 3 else rng.uniform(0.04, 0.25, 2) * (h, w)
            mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1 if k % 2 else \
                (abs(y - cy) < ry) & (abs(x - cx) < rx)
            image[mask] = rng.integers(0, 255, 3)
            masks.append(mask)
        for k, mask in enumerate(masks):
            visible = mask & ~np.any(masks[k + 1:], axis=0) if k < len(masks) - 1 else mask
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": k % 3 + 1,
                         "segmentation": mask_codec.encode(visible),
                         "area": float(visible.sum()) + (2.5 if k == 1 else 0.0), "iscrowd": int(k == 4)})
        anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "area": 0.0, "iscrowd": 0,
                     "segmentation": mask_codec.encode(np.zeros((h, w), bool))})
        name = f"{image_id:04d}.png"
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        if image_id == n_images:
            (root / name).write_text("not a png")
        else:
            Image.fromarray(image).save(root / name)
    cats = [{"id": 1, "name": "a", "frequency": "f"}, {"id": 2, "name": "b", "frequency": "c"},
            {"id": 3, "name": "c", "frequency": "r"}]
    gt = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations.json").write_text(json.dumps(gt))
    return gt


def reference_proposals(checkpoint, root, gt, seed: int) -> list[dict]:
    """The task's proposals, recomputed: same AMG options, same random generator, same ranking."""
    import sambench
    from sambench.tasks.proposals import ProposalsProtocol
    from sambench.types import read_image

    model = sambench.load_model("sam", checkpoint=str(checkpoint))
    proto = ProposalsProtocol(**OPTIONS)
    out = []
    for img in gt["images"][:-1]:  # the last image is unreadable: no proposals
        rng = stable_rng(seed, "proposals", root.name, str(img["id"]))
        image = read_image(root / img["file_name"])
        data = AutomaticMaskGenerator(model, **proto.amg_options()).generate_data(image, rng)
        keep = data["areas"] > 0
        scores = (data["iou_preds"][keep].astype(np.float64) + data["stability_score"][keep]) / 2
        rles = [r for r, k in zip(data["rles"], keep) if k]
        for i in np.argsort(-scores, kind="mergesort")[:1000]:
            out.append({"image_id": img["id"], "category_id": 1, "score": float(scores[i]), "segmentation": rles[i]})
    return out


def test_proposals_run_equals_pycocotools(checkpoint, tmp_path, capsys):
    root = tmp_path / "lvis-like"
    gt = write_dataset(root)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "p", "version": 1, "tasks": [
        {"task": "proposals", "datasets": [str(root)], "options": OPTIONS}]}))
    out = tmp_path / "run"
    assert main(["run", "--model", f"sam:{checkpoint}", "--suite", str(suite), "--out", str(out), "--json",
                 "--seed", "3"]) == 0
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    metrics = entry["metrics"]
    assert [n for n in NAMES if n in metrics] == NAMES and metrics["proposals_per_image"] > 1
    assert entry["counts"]["image"] == 1 and entry["counts"]["crowd_excluded"] == 3
    assert entry["protocol"]["points_per_side"] == 6 and entry["protocol"]["box_nms_thresh"] == 0.9
    assert entry["protocol"]["ground_truth"] == "annotation file"

    reference = cocoeval_recall(gt, reference_proposals(checkpoint, root, gt, seed=3), 1000)
    for name in NAMES:
        bucket = name.split("_", 1)[1] if "_" in name else "all"
        assert reference[bucket] is not None
        assert abs(metrics[name] - reference[bucket]) <= 1e-9, (name, metrics[name], reference[bucket])
    print("proposals task vs pycocotools:", {n: round(metrics[n], 4) for n in NAMES})
    assert any(v > 0 for k, v in metrics.items() if k in NAMES)  # something was found
    html = (out / "report.html").read_text()
    assert "Object proposals" in html and "proposals / image" in html


def test_single_output_settings(checkpoint, tmp_path):
    task = load_task("proposals-single-output")
    assert task.runner == "proposals" and task.version == 1
    assert task.options["points_per_side"] == 128 and task.options["box_nms_thresh"] == 0.95
    assert task.options["multimask_output"] is False and task.options["rank_by"] == "random"
    default = load_task("proposals")
    assert default.options["points_per_side"] == 64 and default.options["pred_iou_thresh"] == 0.0
    assert default.options["max_proposals"] == 1000 and default.options["crop_n_layers"] == 0

    import sambench
    from sambench.datasets import resolve

    root = tmp_path / "data"
    write_dataset(root, n_images=2)
    runner = load_task("proposals-single-output", options={"points_per_side": 4}).build()
    context = runner.prepare(resolve(str(root)), tmp_path / "out")
    sample = next(iter(resolve(str(root)).open()))
    model = sambench.load_model("sam", checkpoint=str(checkpoint))
    first = runner.run_sample(model, sample, context, 0)
    assert first.rows and all(row["n_proposals"] <= 16 for row in first.rows)  # one mask per point
    assert runner.run_sample(model, sample, context, 0).to_json() == first.to_json()  # seeded random ranking


def test_bad_options():
    from sambench.errors import SambenchError

    for options in [{"rank_by": "logit"}, {"max_proposals": 0}, {"nms_score": "x"}, {"grid": 3}]:
        with pytest.raises(SambenchError):
            load_task("proposals", options=options).build()
