"""Speed of our EfficientViT-SAM and EdgeSAM against their reference code, accuracy beside time.

Everything runs in the reference interpreter (``$SAMBENCH_OFFICIAL_PYTHON`` or
``.venv-official``: the references need torchvision, and timm for EdgeSAM), ours imported from
this checkout, so both sides use the same torch build and machine state; calls are interleaved,
and each row gives the median wall and CPU time of ``--repeat`` rounds after a warm-up round. On
a shared machine quote the CPU-time ratio at ``--threads 1``: it does not count the time other
processes hold the core. Random weights in the official layout (every tensor,
batch-norm statistics included), one synthetic image.

- **encoder**: the image encoder on the preprocessed ``(1, 3, S, S)`` input, fp32 and bf16
  (``torch.autocast``; the reference under the same autocast);
- **decoder**: ``--prompts`` single-point prompts of one image in one batched call, multimask,
  full-resolution masks included: the reference predictor's ``predict_torch`` against our
  ``predict``.

Accuracy is the largest absolute difference from the reference in fp32 (embedding, low-res
logits). EfficientViT-SAM's reference is PyPI ``efficientsam`` 1.0.0; EdgeSAM's is the upstream
source at the commit pinned in scripts/golden_edgesam.py, timed only when ``--edgesam-upstream
DIR`` names a checkout of it (nothing of it is in this repository).

    python benchmarks/bench_efficientvit_edgesam.py --variants l0 --edgesam-upstream /tmp/EdgeSAM
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench_sam import machine, measure  # this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]


def interleaved(fns: dict, repeat: int) -> dict:
    """``{name: (median wall s, median CPU s, last output)}``, one untimed warm-up round, then
    ``repeat`` rounds with the calls of each round interleaved (``bench_sam.measure``)."""
    stats = measure(fns, 1, repeat)
    return {name: (statistics.median(s["times"]), statistics.median(s["cpu"]), s["out"])
            for name, s in stats.items()}


def _diff(a, b) -> float:
    import torch

    a = a.float() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, np.float32))
    b = b.float() if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b, np.float32))
    return float((a - b).abs().max())


def _times(res: dict) -> dict:
    (ref_s, ref_cpu, _), (ours_s, ours_cpu, _) = res["reference"], res["ours"]
    return {"reference_s": round(ref_s, 4), "ours_s": round(ours_s, 4), "speedup": round(ref_s / ours_s, 2),
            "reference_cpu_s": round(ref_cpu, 4), "ours_cpu_s": round(ours_cpu, 4),
            "cpu_speedup": round(ref_cpu / ours_cpu, 2)}


def _rows(family: str, variant: str, ref_model, ref_predictor_call, ours_path: str, image, points,
          repeat: int, dtypes: tuple[str, ...]) -> list[dict]:
    """Encoder and decoder rows (fp32, bf16) for one family, ours against the reference."""
    import torch

    import sambench

    ours = {dtype: sambench.load_model(family, checkpoint=ours_path, dtype=dtype)
            for dtype in dtypes}
    x, _ = ours["float32"].preprocess.image(image, "cpu")
    rows = []
    with torch.inference_mode():
        for dtype in dtypes:
            model = ours[dtype]
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16"
                        else torch.autocast("cpu", enabled=False))

            def reference():
                with autocast:
                    return ref_model.image_encoder(x).float()

            def mine():
                with model._autocast():
                    return model._encoder(x).float()

            res = interleaved({"reference": reference, "ours": mine}, repeat)
            if dtype == "float32":
                ref_fp32 = res["reference"][2]
            rows.append({"family": family, "variant": variant, "part": "encoder", "dtype": dtype,
                         **_times(res), "reference_max_abs_vs_ref_fp32": _diff(res["reference"][2], ref_fp32),
                         "ours_max_abs_vs_ref_fp32": _diff(res["ours"][2], ref_fp32)})
        labels = np.ones((len(points), 1), np.int64)
        for dtype in dtypes:
            model = ours[dtype]
            embedding = model.embed(image)
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16"
                        else torch.autocast("cpu", enabled=False))

            def reference():
                with autocast:
                    return ref_predictor_call(points, labels)

            res = interleaved({"reference": reference,
                               "ours": lambda: model.predict(embedding, points=points[:, None], labels=labels)},
                              repeat)
            if dtype == "float32":
                dec_fp32 = res["reference"][2]
            rows.append({"family": family, "variant": variant, "part": f"decoder x{len(points)}", "dtype": dtype,
                         **_times(res), "reference_max_abs_vs_ref_fp32": _diff(res["reference"][2], dec_fp32),
                         "ours_max_abs_vs_ref_fp32": _diff(res["ours"][2].low_res_logits, dec_fp32)})
    return rows


def worker(args) -> None:
    """Runs in the reference interpreter: one JSON row per line on stdout."""
    import torch

    from sambench.models.sam.parity import synthetic_image

    torch.manual_seed(0)
    host = machine()
    dtypes = ("float32",) + (("bfloat16",) if args.bf16 else ())
    image = synthetic_image(480, 640, seed=1)
    rng = np.random.default_rng(2)
    points = (np.round(rng.uniform(0, 1, (args.prompts, 2)) * (639, 479) * 4) / 4).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in [v for v in args.variants.split(",") if v]:
            from efficientsam.models.efficientvit.sam import EfficientViTSamPredictor

            from sambench.models.efficientvit_sam.encoder import PRESETS
            from sambench.models.efficientvit_sam.family import FAMILY
            from sambench.models.efficientvit_sam.official import build_reference

            config = PRESETS[variant]
            state = FAMILY.random_state_dict(config, 0)
            path = str(Path(tmp) / f"{variant}.pt")
            torch.save(state, path)
            ref = build_reference(asdict(config))
            ref.load_state_dict(state)
            ref.eval()
            predictor = EfficientViTSamPredictor(ref)
            predictor.set_image(image)

            def call(pts, lbl, predictor=predictor):
                coords = predictor.apply_coords_torch(torch.from_numpy(pts[:, None]))
                return predictor.predict_torch(coords, torch.from_numpy(lbl), multimask_output=True,
                                               return_logits=True)[2]

            rows += _rows("efficientvit-sam", variant, ref, call, path, image, points, args.repeat, dtypes)
        if args.edgesam_upstream:
            sys.path.insert(0, args.edgesam_upstream)
            from edge_sam import SamPredictor, sam_model_registry

            from sambench.models.edgesam.encoder import PRESETS as EDGE
            from sambench.models.edgesam.family import FAMILY as EDGE_FAMILY

            state = EDGE_FAMILY.random_state_dict(EDGE["m1"], 0)
            path = str(Path(tmp) / "edgesam.pth")
            torch.save(state, path)
            ref = sam_model_registry["edge_sam"]()
            ref.load_state_dict(state)
            ref.eval()
            edge_predictor = SamPredictor(ref)
            edge_predictor.set_image(image)

            def edge_call(pts, lbl):
                coords = edge_predictor.transform.apply_coords_torch(torch.from_numpy(pts[:, None]),
                                                                     edge_predictor.original_size)
                return edge_predictor.predict_torch(None, coords, torch.from_numpy(lbl), num_multimask_outputs=3,
                                                    return_logits=True, use_stability_score=False)[2]

            rows += _rows("edgesam", "m1", ref, edge_call, path, image, points, args.repeat, dtypes)
    print(json.dumps({"machine": {**host, "load_average_end": os.getloadavg()}}), flush=True)
    for row in rows:
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="l0", help="EfficientViT-SAM sizes, comma-separated (l0,l1,l2,xl0,xl1)")
    parser.add_argument("--edgesam-upstream", help="a checkout of chongzhou96/EdgeSAM at the pinned commit")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 rows only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        return worker(args)
    from sambench.amg.official import official_python

    python = official_python()
    if python is None:
        raise SystemExit("no reference interpreter: set SAMBENCH_OFFICIAL_PYTHON or create .venv-official")
    with tempfile.TemporaryDirectory() as shim:
        os.symlink(REPO / "sambench", Path(shim) / "sambench")
        env = {**os.environ, "PYTHONPATH": shim, "PYTHONNOUSERSITE": "1"}
        cmd = [python, __file__, "--worker", "--variants", args.variants, "--prompts", str(args.prompts),
               "--repeat", str(args.repeat), "--threads", str(args.threads)] + ([] if args.bf16 else ["--no-bf16"])
        if args.edgesam_upstream:
            cmd += ["--edgesam-upstream", str(Path(args.edgesam_upstream).resolve())]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    host = next(line["machine"] for line in lines if "machine" in line)
    rows = [line for line in lines if "machine" not in line]
    print(f"{host['cpu']}, {host['torch_threads']} threads ({host['cpu_capability']}), torch {host['torch']}; "
          f"load average {host['load_average_start'][0]:.1f} → {host['load_average_end'][0]:.1f}; "
          f"medians of {args.repeat} interleaved rounds")
    print("| family | part | dtype | reference s | ours s | speed-up (wall) | reference CPU s | ours CPU s | "
          "speed-up (CPU time) | max abs diff (ref bf16 / ours) vs ref fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} {r['variant']} | {r['part']} | {r['dtype']} | {r['reference_s']:.3f} | "
              f"{r['ours_s']:.3f} | {r['speedup']:.2f}x | {r['reference_cpu_s']:.3f} | {r['ours_cpu_s']:.3f} | "
              f"{r['cpu_speedup']:.2f}x | {r['reference_max_abs_vs_ref_fp32']:.1e} / "
              f"{r['ours_max_abs_vs_ref_fp32']:.1e} |")
    if args.out:
        args.out.write_text(json.dumps({"machine": host, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
