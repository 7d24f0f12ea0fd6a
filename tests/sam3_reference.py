"""Run in the reference venv (it has the sam3 package and torchvision): our sam3 adapter against
direct calls of the package's own predictors on the same reduced random weights.

``python tests/sam3_reference.py OUT_DIR`` writes a reduced random ``sam3.pt`` to OUT_DIR and
prints one JSON object: per case the largest differences between the adapter's outputs and the
package's, and how much each case produced (so a case that produced nothing is visible).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sambench.models import load_model
from sambench.models.sam3 import write_random_sam3
from sambench.models.sam3.build import Sam3Config
from sambench.models.sam3.model import cpu_safe

REDUCED = Sam3Config(vit_embed_dim=64, vit_depth=2, vit_heads=2, vit_global_blocks=(1,), text_width=64, text_heads=2,
                     text_layers=1, detr_layers=1, feedforward=64, num_queries=20, geometry_layers=1,
                     tracker_layers=1, fuser_layers=1)


def image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 40, np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        img[y:y + 20, x:x + 20] = rng.integers(60, 255, 3)
    return img


def diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max()) if a.size else 0.0


def main(out: Path) -> dict:
    torch.manual_seed(0)
    ckpt = write_random_sam3(out / "sam3.pt", REDUCED, seed=3)
    # Hole filling off: random weights give logits of salt-and-pepper noise, whose thousands of
    # background components the package's CPU labelling counts one by one (minutes per mask).
    # It is the package's own post-processing, run identically on both sides; that the option
    # reaches it is checked on the default model below.
    ours = load_model("sam3", checkpoint=str(ckpt), confidence_threshold=0.0, max_hole_area=0)
    package, processor = ours.model, ours.processor
    default = load_model("sam3", checkpoint=str(ckpt))
    report = {"checkpoint": str(ckpt), "cases": {},
              "default_max_hole_area": default.model.inst_interactive_predictor._transforms.max_hole_area,
              "default_info": default.info().to_json()["config"]}
    del default
    for k, (h, w) in enumerate([(120, 160), (90, 70)]):
        img = image(h, w, k)
        emb = ours.embed(img)
        with cpu_safe("cpu"):
            state = processor.set_image(Image.fromarray(img))
        feats = diff(emb.state["backbone_out"]["vision_features"], state["backbone_out"]["vision_features"])
        first = ours.predict(emb, points=[[w / 3, h / 2]], labels=[1], multimask=True)
        cases = {
            "point_multimask": dict(point_coords=np.array([[w / 3, h / 2]]), point_labels=np.array([1]),
                                    multimask_output=True),
            "points_single": dict(point_coords=np.array([[w / 3, h / 2], [w / 2, h / 4]]),
                                  point_labels=np.array([1, 0]), multimask_output=False),
            "box": dict(box=np.array([5, 6, w - 10, h - 12]), multimask_output=True),
            "box_point": dict(box=np.array([5, 6, w - 10, h - 12]), point_coords=np.array([[w / 2, h / 2]]),
                              point_labels=np.array([1]), multimask_output=False),
            "mask_point": dict(point_coords=np.array([[w / 3, h / 2]]), point_labels=np.array([1]),
                               mask_input=first.low_res_logits[np.argmax(first.scores)][None],
                               multimask_output=False),
        }
        for name, kw in cases.items():
            with cpu_safe("cpu"):
                masks, scores, low = package.predict_inst(state, **kw)
            mine = ours.predict(emb, points=kw.get("point_coords"), labels=kw.get("point_labels"), box=kw.get("box"),
                                mask_input=kw.get("mask_input"), multimask=kw["multimask_output"])
            report["cases"][f"{name}/{h}x{w}"] = {
                "masks_differ": int(np.count_nonzero(mine.masks != (masks > 0))), "scores": diff(mine.scores, scores),
                "low_res": diff(mine.low_res_logits, low), "foreground": int(np.count_nonzero(mine.masks)),
                "k": int(mine.masks.shape[0])}
        # a batch of three single-point prompts in one call equals three calls
        pts = np.array([[[w / 3, h / 2]], [[w / 2, h / 3]], [[2 * w / 3, 2 * h / 3]]], np.float32)
        batched = ours.predict(emb, points=pts, labels=np.ones((3, 1), np.int64), multimask=True)
        singles = [ours.predict(emb, points=p, labels=[1], multimask=True) for p in pts]
        report["cases"][f"batch/{h}x{w}"] = {
            "scores": max(diff(batched.scores[i], s.scores) for i, s in enumerate(singles)),
            "low_res": max(diff(batched.low_res_logits[i], s.low_res_logits) for i, s in enumerate(singles)),
            "masks_differ": int(sum(np.count_nonzero(batched.masks[i] != s.masks) for i, s in enumerate(singles)))}
        concept = ours.predict_concept(emb, "red square")
        with cpu_safe("cpu"):  # the package's own embedding, text features added to a copy of its state
            direct = processor.set_text_prompt("red square", {**state, "backbone_out": dict(state["backbone_out"])})
        report["cases"][f"concept/{h}x{w}"] = {
            "n": int(len(concept.scores)), "n_reference": int(len(direct["scores"])),
            "scores": diff(concept.scores, direct["scores"].numpy()),
            "boxes": diff(concept.boxes, direct["boxes"].numpy()),
            "masks_differ": int(np.count_nonzero(concept.masks != direct["masks"].squeeze(1).numpy())),
            "features": feats}
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
