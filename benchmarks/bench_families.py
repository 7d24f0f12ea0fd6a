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
reference fp32. The variants run interleaved (``bench_sam.measure``), ``--repeats`` rounds after
``--warmup``; each row gives the median wall time and the median CPU time of the process. On a
shared machine quote the CPU-time ratio at ``--threads 1``: it does not count the time other
processes hold the core (with several threads, waits at each operator's barrier do count).

    python benchmarks/bench_families.py [--prompts 16] [--repeats 5] [--threads 1] [--bf16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_sam import machine, measure  # this script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]


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
        base, truth = stats["reference fp32"], stats["reference fp32"]["out"]
        per = args.prompts if part == "decoder" else 1
        for name, s in stats.items():
            wall, cpu = statistics.median(s["times"]), statistics.median(s["cpu"])
            rows.append({"family": f"{family} ({preset})", "part": part, "variant": name,
                         "ms": 1000 * wall / per, "cpu_ms": 1000 * cpu / per,
                         "x_reference_fp32": statistics.median(base["times"]) / wall,
                         "cpu_x_reference_fp32": statistics.median(base["cpu"]) / cpu,
                         "max_abs_diff": float(np.abs(s["out"] - truth).max())})
    return rows


def inner(args) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    meta = {**machine(), "prompts": args.prompts, "repeats": args.repeats}
    setups = [("mobilesam", "vit_t"), ("hq-sam", "vit_tiny")] + ([("hq-sam", args.hq_vit)] if args.hq_vit else [])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for family, preset in setups for row in bench_family(family, preset, args, Path(tmp))]
    meta["load_average_end"] = os.getloadavg()
    out = json.dumps({"meta": meta, "rows": rows}, indent=1)
    if args.json:
        Path(args.json).write_text(out)
    print(f"# {meta['cpu']}, {meta['torch_threads']} threads ({meta['cpu_capability']}), torch {meta['torch']}; "
          f"load average {meta['load_average_start'][0]:.1f} → {meta['load_average_end'][0]:.1f}; medians of "
          f"{args.repeats} interleaved rounds; decoder ms per prompt ({args.prompts} prompts in one call)")
    print("| family | part | variant | ms | CPU ms | × reference fp32 (wall) | × (CPU time) "
          "| max abs Δ vs reference fp32 |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['part']} | {r['variant']} | {r['ms']:.1f} | {r['cpu_ms']:.1f} | "
              f"{r['x_reference_fp32']:.2f} | {r['cpu_x_reference_fp32']:.2f} | {r['max_abs_diff']:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
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
