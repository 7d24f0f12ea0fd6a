"""Write the EdgeSAM golden outputs that tests/test_edgesam_parity.py compares against.

EdgeSAM is on no package registry, so its reference outputs are made here from the upstream
source at a pinned commit and committed as a small file (tests/fixtures/edgesam_golden.npz);
no upstream code enters this repository. Get the source and run (in the reference venv, which
has torch, torchvision and timm; the upstream predictor needs nothing else at this commit):

    git clone https://github.com/chongzhou96/EdgeSAM /tmp/EdgeSAM
    git -C /tmp/EdgeSAM checkout f255ac229031a3a1ced9c39dac037c39fc7568bb
    .venv-official/bin/python scripts/golden_edgesam.py /tmp/EdgeSAM

What it does: builds ``sam_model_registry["edge_sam"]()`` (RepViT-m1, the released
architecture), fills every tensor of its state dict with seeded random values keyed by tensor
name (:mod:`sambench.models.random_weights`; batch-norm running statistics and
``num_batches_tracked`` included) and loads them strictly; then on three synthetic images of
different shapes runs the upstream ``SamPredictor``: 1 point (multimask), 3 points (single),
a box, a point + a box (multimask), points + a mask prompt (single), a box + a mask prompt
(multimask). It stores the inputs (images, prompts as JSON, the seed), the scores, and, to keep the file
small, the low-res logits on a 37×37 lattice of stride 7 (coprime with the decoder's 4×
upscaling, so every sub-pixel phase is sampled) and a sample of the image embedding. The test
rebuilds the same weights from the seed in our layout and compares.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

PIN = "f255ac229031a3a1ced9c39dac037c39fc7568bb"
SEED = 2024
IMAGES = [(48, 64), (80, 60), (30, 100)]  # resized to 1024 px anyway: small files
LATTICE = np.arange(3, 256, 7)  # low-res rows/columns stored
EMBED_SAMPLE = (slice(None), slice(None, None, 32), slice(1, None, 3), slice(2, None, 3))
REPO = Path(__file__).resolve().parents[1]


def prompts_for(height: int, width: int, seed: int) -> list[dict]:
    """Prompt dicts for one image; coordinates on a quarter-pixel grid (exact in float32)."""
    rng = np.random.default_rng(seed)

    def pts(n):
        return (np.round(rng.uniform(0, 1, (n, 2)) * (width - 1, height - 1) * 4) / 4).tolist()

    def box():
        corners = np.sort(rng.uniform(0, 1, (2, 2)) * (width - 1, height - 1), axis=0)
        return (np.round(corners.reshape(4) * 4) / 4).tolist()

    def ellipse():  # in the 256² low-res frame: centre inside the image region
        scale = 256 / max(height, width)
        return [float(rng.uniform(0.3, 0.7) * width * scale), float(rng.uniform(0.3, 0.7) * height * scale),
                float(rng.uniform(10, 40)), float(rng.uniform(10, 40))]

    return [
        {"points": pts(1), "labels": [1], "multimask": True},
        {"points": pts(3), "labels": [1, 0, 1], "multimask": False},
        {"box": box(), "multimask": False},
        {"points": pts(1), "labels": [0], "box": box(), "multimask": True},
        {"points": pts(2), "labels": [1, 1], "mask_ellipse": ellipse(), "multimask": False},
        {"box": box(), "mask_ellipse": ellipse(), "multimask": True},
    ]


def check_checkout(upstream: Path) -> None:
    if not (upstream / "edge_sam" / "build_sam.py").is_file():
        raise SystemExit(f"{upstream} is not an EdgeSAM checkout (no edge_sam/build_sam.py)")
    if (upstream / ".git").exists():
        head = subprocess.run(["git", "-C", str(upstream), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        if head != PIN:
            raise SystemExit(f"{upstream} is at {head or 'an unknown commit'}, not the pinned {PIN}")
    else:
        print(f"note: {upstream} is not a git checkout; it must hold commit {PIN}", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path, help=f"a checkout of chongzhou96/EdgeSAM at {PIN}")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "edgesam_golden.npz")
    args = parser.parse_args(argv)
    check_checkout(args.upstream)
    sys.path[:0] = [str(args.upstream), str(REPO)]

    import torch
    from edge_sam import SamPredictor, sam_model_registry

    from sambench.models import random_weights
    from sambench.models.edgesam.model import RESIDUAL_NORMS
    from sambench.models.sam.parity import ellipse_mask_input, synthetic_image

    torch.set_num_threads(max(1, torch.get_num_threads()))
    sam = sam_model_registry["edge_sam"]()
    shapes = random_weights.shapes_of(sam)
    state = random_weights.random_state_dict(shapes, SEED, lambda name: bool(RESIDUAL_NORMS.search(name)))
    sam.load_state_dict(state, strict=True)
    sam.eval()
    predictor = SamPredictor(sam)

    out: dict[str, np.ndarray] = {"seed": np.asarray(SEED), "lattice": LATTICE}
    all_prompts = []
    for i, (height, width) in enumerate(IMAGES):
        image = synthetic_image(height, width, seed=SEED + i)
        out[f"image{i}"] = image
        predictor.set_image(image)
        out[f"features{i}"] = predictor.features[EMBED_SAMPLE].float().numpy()
        prompts = prompts_for(height, width, SEED + 10 * i)
        all_prompts.append(prompts)
        for j, prompt in enumerate(prompts):
            call = {"num_multimask_outputs": 3 if prompt["multimask"] else 1}
            if "points" in prompt:
                call["point_coords"] = np.asarray(prompt["points"], np.float32)
                call["point_labels"] = np.asarray(prompt["labels"], np.int64)
            if "box" in prompt:
                call["box"] = np.asarray(prompt["box"], np.float32)
            if "mask_ellipse" in prompt:
                call["mask_input"] = ellipse_mask_input(*prompt["mask_ellipse"])
            _, scores, low_res = predictor.predict(**call)
            out[f"scores{i}_{j}"] = scores.astype(np.float32)
            out[f"low_res{i}_{j}"] = low_res[:, LATTICE][:, :, LATTICE].astype(np.float32)
    out["prompts"] = np.asarray(json.dumps(all_prompts))
    out["upstream"] = np.asarray(f"chongzhou96/EdgeSAM@{PIN}")
    out["torch"] = np.asarray(torch.__version__)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
