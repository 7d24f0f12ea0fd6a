"""Speed of the BSDS boundary benchmark (sambench.metrics.bsds) on real 481x321 images.

Reports, on the official bench sample (tests/fixtures/bsds500_bench_sample, 5 images with 5-6
annotators each), single process:

- seconds per image for the full metric at 99 thresholds (threshold, thin, match, count), on
  the PNGs as shipped (about 60 grey levels, so identical thresholded maps are reused) and on a
  "dense levels" copy (non-zero values jittered by up to 0.01) in which fewer maps coincide;
- milliseconds per (threshold, annotator) pair for the matcher alone, exact and official
  emulation, and for the official CSA matcher when pyEdgeEval is installed (``--csa``; it is
  GPL code, used here only as a stopwatch reference and never imported by sambench).

The official CSA matcher takes about 100 ms per pair (docs/edges.md).

    python benchmarks/bench_bsds.py [--images N] [--pair-stride K] [--csa] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from sambench.metrics.bsds import evaluate_image, load_ground_truth, load_prediction
from sambench.metrics.bsds_match import BoundaryIndex, assign
from sambench.metrics.bsds_scores import default_thresholds
from sambench.metrics.bsds_thin import thin

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bsds500_bench_sample"


def dense_levels(pred: np.ndarray, seed: int) -> np.ndarray:
    """Non-zero values jittered by up to one threshold step (0.01), so that more thresholds
    cut some pixels, as for an edge map with many grey levels."""
    rng = np.random.default_rng(seed)
    out = pred.copy()
    on = out > 0
    out[on] = np.minimum(1.0, out[on] + rng.uniform(0, 0.01, on.sum()))
    return out


def time_pairs(pred, gts, thresholds, stride, csa):
    """Per-pair matcher times (ms) over every ``stride``-th threshold."""
    idx = [BoundaryIndex(g) for g in gts]
    out = {"exact": [], "official": [], "csa": [], "thin": [], "pred_px": []}
    for t, thr in enumerate(thresholds[::stride]):
        t0 = time.perf_counter()
        bmap = thin(pred >= thr)
        out["thin"].append((time.perf_counter() - t0) * 1e3)
        rows, cols = np.nonzero(bmap)
        out["pred_px"].append(rows.size)
        for g, ix in enumerate(idx):
            t0 = time.perf_counter()
            i, j, w = ix.pairs(rows, cols)  # candidate pairs: shared by both matchers
            t1 = time.perf_counter()
            if i.size:
                assign(i, j, w, ix.outlier_weight)
            t2 = time.perf_counter()
            if i.size:
                assign(i, j, w, ix.outlier_weight, np.random.default_rng([t, g]))
            t3 = time.perf_counter()
            out["exact"].append((t2 - t0) * 1e3)
            out["official"].append((t1 - t0 + t3 - t2) * 1e3)
            if csa is not None:
                b, gg = bmap.astype(np.float64), gts[g].astype(np.float64)
                t0 = time.perf_counter()
                csa(b, gg, 0.0075)
                out["csa"].append((time.perf_counter() - t0) * 1e3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5, help="how many sample images (max 5)")
    ap.add_argument("--pair-stride", type=int, default=4,
                    help="time the matcher on every K-th of the 99 thresholds")
    ap.add_argument("--csa", action="store_true",
                    help="also time the official CSA matcher (needs pyEdgeEval installed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    csa = None
    if args.csa:
        from pyEdgeEval._lib import correspond_pixels as csa  # noqa: N813  (optional, GPL)

    thresholds = default_thresholds(99)
    ids = sorted(p.stem for p in (SAMPLE / "png").glob("*.png"))[: args.images]
    per_image = {"png": [], "dense": []}
    pairs: dict[str, list] = {"exact": [], "official": [], "csa": [], "thin": [], "pred_px": []}
    for n, image_id in enumerate(ids):
        pred = load_prediction(SAMPLE / "png" / f"{image_id}.png")
        gts = load_ground_truth(SAMPLE / "groundTruth" / f"{image_id}.mat")
        dense = dense_levels(pred, n)
        for name, p in (("png", pred), ("dense", dense)):
            t0 = time.perf_counter()
            evaluate_image(p, gts, thresholds)
            per_image[name].append(time.perf_counter() - t0)
        for k, v in time_pairs(dense, gts, thresholds, args.pair_stride, csa).items():
            pairs[k] += v

    res = {
        "image_size": "481x321", "n_images": len(ids), "nthresh": 99,
        "s_per_image_png": statistics.mean(per_image["png"]),
        "s_per_image_dense_levels": statistics.mean(per_image["dense"]),
        "n_pairs_timed": len(pairs["exact"]),
        "ms_per_pair_exact": statistics.mean(pairs["exact"]),
        "ms_per_pair_official_emulation": statistics.mean(pairs["official"]),
        "ms_thin_per_threshold": statistics.mean(pairs["thin"]),
        "median_pred_px_after_thin": statistics.median(pairs["pred_px"]),
    }
    if pairs["csa"]:
        res["ms_per_pair_official_csa"] = statistics.mean(pairs["csa"])
        res["speedup_exact_vs_csa"] = res["ms_per_pair_official_csa"] / res["ms_per_pair_exact"]
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
