"""Benchmark our SAM 2 (``sam2``) against the reference ``sam2`` 1.1.0 ``SAM2ImagePredictor``.

Both run in the reference interpreter (``.venv-official``: the reference needs hydra and
torchvision), interleaved in one process, so they share the torch build and the machine state
(:func:`sambench.models.sam2.reference.run_bench`). Image encoder: the predictor's
``set_image`` (its transforms included) against our ``embed``, fp32 and bf16 autocast. Decoder,
N prompts on one image: one point each with three masks; three clicks plus the previous
low-res logits with one mask (the corrective-click step). The reference is timed called once
per prompt (interactive use) and with all prompts in one batched call; ours takes all prompts
in one call. Accuracy against reference fp32 beside every time. Random weights in the
reference layout (full tiny by default) unless ``--checkpoint``.

Times are the minimum over ``--repeats``; process CPU time is reported too (on a shared
machine the steadier measure). bf16 rows only on CPUs with bf16 units unless ``--bf16 yes``.

    python benchmarks/bench_sam2.py [--size tiny] [--prompts 16] [--repeats 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sambench.models.runtime import cpu_has_native
from sambench.models.sam.parity import synthetic_image
from sambench.models.sam2 import PRESETS, write_random_checkpoint
from sambench.models.sam2.reference import run_bench


def table(result: dict) -> str:
    lines = ["| part | implementation | dtype | s | CPU s | vs reference | accuracy vs reference fp32 |",
             "|---|---|---|---|---|---|---|"]
    base = {}
    for r in result["rows"]:
        if r["impl"].startswith("reference") and r["dtype"] == "float32" and r["part"] not in base:
            base[r["part"]] = r["seconds"]
    for r in result["rows"]:
        accuracy = ", ".join(f"{k} {v:.2e}" if "abs" in k else f"{k} {v:.4f}" for k, v in r.items()
                             if k.endswith(("_abs", "agreement")))
        lines.append(f"| {r['part']} | {r['impl']} | {r['dtype']} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} "
                     f"| {base[r['part']] / r['seconds']:.2f}× | {accuracy or '—'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a SAM 2 / 2.1 checkpoint (default: random weights)")
    parser.add_argument("--size", default="tiny", choices=list(PRESETS))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--image", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--json", help="write the results here ('-' for stdout)")
    args = parser.parse_args(argv)
    import torch

    bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and cpu_has_native(torch.bfloat16))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or write_random_checkpoint(Path(tmp) / "sam2_random.pt", args.size, seed=0)
        image_path = Path(tmp) / "image.npy"
        np.save(image_path, synthetic_image(*args.image, seed=0))
        trunk = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(PRESETS[args.size]).items()}
        result = run_bench(dict(checkpoint=str(checkpoint), trunk=trunk, version="2.1", image=str(image_path),
                                prompts=args.prompts, repeats=args.repeats, warmup=args.warmup,
                                dtypes=["float32", "bfloat16"] if bf16 else ["float32"]))
    result.update(size=args.size, image=list(args.image), prompts=args.prompts, platform=platform.platform(),
                  processor=platform.processor())
    if args.json == "-":
        json.dump(result, sys.stdout, indent=1)
    else:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"SAM 2 {args.size}, image {args.image[1]}x{args.image[0]}, {args.prompts} prompts, "
              f"torch {result['torch']}, {result['threads']} threads")
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
