"""Speed of the instances task: all boxes of an image in one predict call vs one call per box.

Runs the whole task (embed, both prompt passes, RLE encoding, then COCO AP over the dataset)
twice with any registered model: ``batched`` (the default protocol, ``batch_size`` unset) and
``per-box`` (``batch_size: 1``), and reports images/s, the split between embedding and the rest,
and the accuracy alongside: the AP of each run and the share of identical masks (they differ
only by the model's own nondeterminism or batch-size-dependent numerics).

Without ``--dataset`` it writes a synthetic COCO-format dataset and detections made from its
ground-truth boxes (jittered, some relabelled) plus random false positives, ``--boxes`` per image.

    python benchmarks/bench_instances.py --model grabcut [--images 4] [--boxes 20]
    python benchmarks/bench_instances.py --model sam:sam_vit_b_01ec64.pth --device cuda \\
        --dataset coco2017=/data/coco --detections coco_vitdet.json --images 50 --json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sambench.bench import Timed
from sambench.datasets import resolve
from sambench.models import load_model
from sambench.tasks.instances import InstancesTask


def synthetic_case(folder: Path, n_images: int, boxes: int, seed: int) -> tuple[str, Path]:
    """A synthetic dataset and ``boxes`` detections per image (COCO results format)."""
    from sambench.datasets import synth

    root = folder / "synth-shapes"
    synth.write_dataset(root, name="synth-shapes", domain="shapes", n_images=n_images, seed=seed)
    gt = json.loads((root / "annotations.json").read_text())
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in gt["categories"]]
    sizes = {img["id"]: (img["width"], img["height"]) for img in gt["images"]}
    dets = []
    for image_id, (w, h) in sizes.items():
        anns = [a for a in gt["annotations"] if a["image_id"] == image_id][:boxes]
        for a in anns:
            x, y, bw, bh = np.asarray(a["bbox"], float) + rng.normal(0, 2, 4)
            dets.append({"image_id": image_id, "category_id": a["category_id"] if rng.random() < 0.8
                         else int(rng.choice(cats)), "bbox": [x, y, max(bw, 2.0), max(bh, 2.0)],
                         "score": float(rng.random())})
        for _ in range(boxes - len(anns)):
            bw, bh = rng.uniform(8, w / 3), rng.uniform(8, h / 3)
            dets.append({"image_id": image_id, "category_id": int(rng.choice(cats)),
                         "bbox": [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh],
                         "score": float(rng.random()) * 0.5})
    det_file = folder / "detections.json"
    det_file.write_text(json.dumps(dets))
    return str(root), det_file


def run_task(model, spec: str, det_file: Path, out: Path, limit: int, options: dict) -> dict:
    """The whole task on the first ``limit`` images; seconds by stage and the metrics."""
    ref = resolve(spec)
    task = InstancesTask({"detections": str(det_file), **options})
    context = task.prepare(ref, out)
    timed = Timed(model)
    samples = [s for _, s in zip(range(limit), ref.open(subsample=False))]
    for s in samples:
        s.preload()  # image decoding is not what is measured
    t0 = time.perf_counter()
    records = [task.run_sample(timed, s, context, 0) for s in samples]
    t1 = time.perf_counter()
    metrics = task.aggregate(records, context, 0)
    t2 = time.perf_counter()
    n_boxes = sum(len(r.rows) for r in records)
    return {"images": len(samples), "boxes": n_boxes, "images_per_s": len(samples) / (t2 - t0),
            "embed_s": timed.encode, "prompt_s": (t1 - t0) - timed.encode, "aggregate_s": t2 - t1,
            "ap": metrics.get("ap"), "masks": [row["segmentation"] for r in records for row in r.rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="NAME[:CHECKPOINT] of any registered model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--dataset", help="NAME=ROOT or a COCO-style folder (default: synthetic)")
    parser.add_argument("--detections", help="COCO results JSON (required with --dataset)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--boxes", type=int, default=20, help="detections per synthetic image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.dataset and not args.detections:
        parser.error("--dataset needs --detections")
    model = load_model(args.model, device=args.device, dtype=args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.dataset:
            spec, det_file = args.dataset, Path(args.detections)
        else:
            spec, det_file = synthetic_case(tmp, args.images, args.boxes, args.seed)
        run_task(model, spec, det_file, tmp / "warmup", 1, {})  # lazy initialisation, caches
        modes = {"batched": {}, "per-box": {"batch_size": 1}}
        out = {name: run_task(model, spec, det_file, tmp / name, args.images, opts)
               for name, opts in modes.items()}
    batched, single = out["batched"].pop("masks"), out["per-box"].pop("masks")
    summary = {"model": args.model, "device": args.device, "dtype": args.dtype, **out,
               "speedup": out["batched"]["images_per_s"] / out["per-box"]["images_per_s"],
               "identical_masks": sum(a == b for a, b in zip(batched, single)) / max(1, len(batched))}
    aps = [m["ap"] for m in out.values()]
    if None not in aps:
        summary["ap_abs_diff"] = abs(aps[0] - aps[1])
    if args.json:
        print(json.dumps(summary))
        return
    print(f"model {args.model} on {args.device} ({args.dtype}); "
          f"{out['batched']['images']} images, {out['batched']['boxes']} boxes")
    print(f"{'mode':9s} {'img/s':>8s} {'embed s':>8s} {'prompt s':>9s} {'AP s':>6s} {'AP':>7s}")
    for name, m in out.items():
        ap = "" if m["ap"] is None else f"{100 * m['ap']:.2f}"
        print(f"{name:9s} {m['images_per_s']:8.3f} {m['embed_s']:8.2f} {m['prompt_s']:9.2f} "
              f"{m['aggregate_s']:6.2f} {ap:>7s}")
    print(f"batched / per-box: {summary['speedup']:.2f}x; identical masks: "
          f"{100 * summary['identical_masks']:.1f}%"
          + (f"; |ΔAP| = {100 * summary['ap_abs_diff']:.3f}" if "ap_abs_diff" in summary else ""))


if __name__ == "__main__":
    main()
