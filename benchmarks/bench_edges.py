"""Speed of the edges task per image: SAM edge-map generation on CPU, and the BSDS metric.

Images are the five 481x321 BSDS images of the official bench sample, painted from their first
annotator's segmentation (one colour per segment, mild noise: the sample ships no photos), so
the edge maps are scored against the real ground truth (5-6 annotators). The model is a random
SAM checkpoint of ``--config`` (``vit_b`` by default) tuned so that masks follow the image
(:func:`sambench.amg.testing.amg_checkpoint`; the timing does not depend on the weights, the
number of masks that survive NMS does a little). Reported per image (best of ``--repeat``):

- ``embed_s``: the image encoder (one 1024-px pass);
- ``masks_s``: the rest of automatic mask generation: 256 point prompts (768 masks), their
  upsampling, boxes, RLEs, box NMS;
- ``edges_s``: the kept masks upsampled again, Sobel and boundary per mask, max,
  normalisation, edge NMS;
- ``metric_s``: the BSDS benchmark at 99 thresholds on that map (``exact`` matcher);
- ``sobel_s``: the classical ``sobel`` model's edge map, for scale.

    OMP_NUM_THREADS=1 python benchmarks/bench_edges.py [--config vit_b] [--images 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sambench.bench import Timed

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bsds500_bench_sample"


def painted(mat: Path, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """An RGB image from the first annotator's segments, and every annotator's boundaries."""
    from scipy.io import loadmat

    from sambench.metrics.bsds import load_ground_truth

    seg = loadmat(str(mat))["groundTruth"][0, 0]["Segmentation"][0, 0].astype(np.int64)
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 255, (seg.max() + 1, 3))
    image = np.clip(colours[seg] + rng.normal(0, 6, seg.shape + (3,)), 0, 255).astype(np.uint8)
    return image, load_ground_truth(mat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="vit_b", help="SAM preset of the random checkpoint (vit_b, tiny)")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    import sambench
    from sambench.amg.testing import amg_checkpoint
    from sambench.edges.masks import EdgeOptions, combine, generate_masks
    from sambench.metrics.bsds import evaluate_image
    from sambench.metrics.bsds_scores import default_thresholds
    from sambench.tasks.edges import LEVELS, quantize

    mats = sorted((SAMPLE / "groundTruth").glob("*.mat"))[:args.images]
    thresholds = default_thresholds(99)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        checkpoint = amg_checkpoint(Path(tmp) / f"{args.config}.pth", args.config, seed=0)
        setup = time.perf_counter() - t0
        model = Timed(sambench.load_model("sam", checkpoint=str(checkpoint)))
        sobel = sambench.load_model("sobel")
        for k, mat in enumerate(mats):
            image, gts = painted(mat, k)
            best = None
            for _ in range(args.repeat):
                model.encode = 0.0
                start = time.perf_counter()
                data = generate_masks(model, image, EdgeOptions())
                masks_s = time.perf_counter() - start - model.encode
                start = time.perf_counter()
                edges, n_masks = combine(data, image.shape[:2], EdgeOptions()), len(data)
                edges_s = time.perf_counter() - start
                start = time.perf_counter()
                counts = evaluate_image(quantize(edges) / LEVELS, gts, thresholds)
                metric = time.perf_counter() - start
                start = time.perf_counter()
                sobel.edge_map(image)
                sobel_s = time.perf_counter() - start
                row = {"image": mat.stem, "size": f"{image.shape[1]}x{image.shape[0]}", "annotators": len(gts),
                       "masks_after_nms": n_masks, "embed_s": round(model.encode, 3),
                       "masks_s": round(masks_s, 3), "edges_s": round(edges_s, 3),
                       "metric_s": round(metric, 3),
                       "sobel_s": round(sobel_s, 4), "edge_pixels": int(np.count_nonzero(edges)),
                       "recall_at_t0.5": round(float(counts[49, 0] / max(counts[49, 1], 1)), 3)}
                keys = ("embed_s", "masks_s", "edges_s", "metric_s")
                if best is None or sum(row[k] for k in keys) < sum(best[k] for k in keys):
                    best = row
            rows.append(best)
            if not args.json:
                print(json.dumps(best))
    mean = {key: round(float(np.mean([r[key] for r in rows])), 3)
            for key in ("embed_s", "masks_s", "edges_s", "metric_s", "sobel_s", "masks_after_nms")}
    out = {"config": args.config, "device": "cpu", "torch_threads": torch.get_num_threads(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg(),
           "checkpoint_setup_s": round(setup, 1), "images": len(rows), "mean": mean,
           "generation_s_per_image": round(mean["embed_s"] + mean["masks_s"] + mean["edges_s"], 3), "rows": rows}
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
