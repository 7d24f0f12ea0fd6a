"""Benchmark ``mobilesam`` and ``hq-sam`` against their reference packages, same process.

The references (``mobile_sam``, ``segment_anything_hq``) import timm and torchvision, so this
script re-runs itself in the reference interpreter (``$SAMBENCH_OFFICIAL_PYTHON`` or
``.venv-official``) with sambench importable: both implementations then share one torch build.
Per family, on random weights of the released size (MobileSAM ``vit_t``; Light HQ-SAM
``vit_tiny``, and with ``--hq-vit vit_b`` HQ-SAM ViT-B), one 768×1024 image:

- image encoder: reference ``SamPredictor.set_image`` vs ours ``embed`` (fp32, and bf16 under
  autocast for both with ``--bf16``);
- decoder: N one-point prompts, multimask: the reference's ``predict_torch`` with all N
  prompts in one call vs ours ``predict(..., return_masks=False)`` with the N prompts.

Accuracy beside time: max |Δ| of the image embedding and of the low-res logits against the
reference fp32. Times are the minimum over ``--repeats`` after ``--warmup``, the variants
interleaved; quote ratios (the machine may be shared).

    python benchmarks/bench_families.py [--prompts 16] [--repeats 3] [--bf16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(variants: dict, warmup: int, repeats: int) -> dict:
    """Interleaved runs of each ``name -> fn``: min seconds and the last output."""
    stats = {name: {"times": []} for name in variants}
    for rnd in range(warmup + repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            stats[name]["out"] = fn()
            if rnd >= warmup:
                stats[name]["times"].append(time.perf_counter() - start)
    return {name: {"min_s": min(s["times"]), "out": s["out"]} for name, s in stats.items()}


def bench_family(family: str, preset: str, args, tmp: Path) -> list[dict]:
    import torch

    import sambench
    from sambench.models import get_family
    from sambench.models.family import random_checkpoint
    from sambench.models.reference import _build
    from sambench.models.sam.parity import synthetic_image

    path = random_checkpoint(get_family(family), tmp / f"{family}-{preset}.pth", preset, seed=0)
    ours = {"fp32": sambench.load_model(f"{family}:{path}")}
    reference, predictor_class = _build(family, ours["fp32"].info().config)
    from sambench.models.sam.checkpoint import read_state_dict

    reference.load_state_dict(read_state_dict(path), strict=True)
    reference.eval()
    predictor = predictor_class(reference)
    extra = {"hq_token_only": False} if family == "hq-sam" else {}
    dtypes = ["fp32"] + (["bf16"] if args.bf16 else [])
    if args.bf16:
        ours["bf16"] = sambench.load_model(f"{family}:{path}", dtype="bfloat16")
    image = synthetic_image(768, 1024, seed=1)
    rng = np.random.default_rng(0)
    points = (rng.uniform(0, 1, (args.prompts, 1, 2)) * (1023, 767)).astype(np.float32)
    labels = np.ones((args.prompts, 1), np.int64)

    def autocast(dtype):
        return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast("cpu", enabled=False)

    def ref_embed(dtype):
        def run():
            with torch.no_grad(), autocast(dtype):
                predictor.set_image(image)
            return predictor.features.float().numpy().copy()
        return run

    def ref_decode(dtype):
        def run():
            coords = torch.as_tensor(predictor.transform.apply_coords(points, image.shape[:2]), dtype=torch.float)
            with torch.no_grad(), autocast(dtype):
                _, iou, low = predictor.predict_torch(coords, torch.as_tensor(labels, dtype=torch.int), None, None,
                                                      True, return_logits=True, **extra)
            return low.float().numpy()
        return run

    embedding = {d: ours[d].embed(image) for d in dtypes}
    encoder = measure({**{f"reference {d}": ref_embed(d) for d in dtypes},
                       **{f"ours {d}": (lambda d=d: ours[d].embed(image).features.numpy()) for d in dtypes}},
                      args.warmup, args.repeats)
    predictor.set_image(image)  # fp32 features for the decoder rows
    decoder = measure({**{f"reference {d}": ref_decode(d) for d in dtypes},
                       **{f"ours {d}": (lambda d=d: ours[d].predict(embedding["fp32"], points=points, labels=labels,
                                                                    return_masks=False).low_res_logits)
                          for d in dtypes}},
                      args.warmup, args.repeats)
    rows = []
    for part, stats in (("encoder", encoder), ("decoder", decoder)):
        base, truth = stats["reference fp32"]["min_s"], stats["reference fp32"]["out"]
        for name, s in stats.items():
            rows.append({"family": f"{family} ({preset})", "part": part, "variant": name,
                         "ms": 1000 * s["min_s"] / (args.prompts if part == "decoder" else 1),
                         "x_reference_fp32": base / s["min_s"],
                         "max_abs_diff": float(np.abs(s["out"] - truth).max())})
    return rows


def inner(args) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    setups = [("mobilesam", "vit_t"), ("hq-sam", "vit_tiny")] + ([("hq-sam", args.hq_vit)] if args.hq_vit else [])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for family, preset in setups for row in bench_family(family, preset, args, Path(tmp))]
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_capability":
            torch.backends.cpu.get_cpu_capability(), "prompts": args.prompts, "repeats": args.repeats}
    out = json.dumps({"meta": meta, "rows": rows}, indent=1)
    if args.json:
        Path(args.json).write_text(out)
    print(f"# torch {meta['torch']}, {meta['threads']} threads, {meta['cpu_capability']}; decoder ms per prompt "
          f"({args.prompts} prompts in one call)")
    print("| family | part | variant | ms | × reference fp32 | max abs Δ vs reference fp32 |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['part']} | {r['variant']} | {r['ms']:.1f} | {r['x_reference_fp32']:.2f} | "
              f"{r['max_abs_diff']:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="also bf16 autocast (slow without bf16 matrix units)")
    parser.add_argument("--hq-vit", default=None, help="also HQ-SAM with this ViT preset, e.g. vit_b")
    parser.add_argument("--json", default=None)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        return inner(args)
    from sambench.amg.official import official_python

    python = official_python()
    if python is None:
        raise SystemExit("no reference interpreter: set SAMBENCH_OFFICIAL_PYTHON or build .venv-official")
    with tempfile.TemporaryDirectory() as shim:
        os.symlink(ROOT / "sambench", Path(shim) / "sambench")
        env = {**os.environ, "PYTHONPATH": shim, "PYTHONNOUSERSITE": "1", "PYTHONWARNINGS": "ignore"}
        sys.exit(subprocess.run([python, __file__, "--inner", *sys.argv[1:]], env=env).returncode)


if __name__ == "__main__":
    main()
