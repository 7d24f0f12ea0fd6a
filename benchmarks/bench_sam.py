"""Benchmark our SAM (``sam``) against the official segment-anything code, same machine, same run.

Image encoder (ViT-B at 1024 by default): official fp32 vs ours fp32 (``math``: the parity
path, bit-identical embeddings; ``sdpa``) and ours bf16 autocast, each ``sdpa`` variant also
compiled (``compile=True``: inductor with freezing; the warm-up call compiles); the official
under autocast too. Decoder: N single-point prompts on one image, multimask: the official
predictor called once per prompt (how ``SamPredictor`` is used) vs ours with all prompts in one
call, with and without full-resolution masks for every output; then the corrective-click case
(3 points and the previous logits as a mask prompt, one mask). Accuracy is reported against
official fp32. bf16 variants run only on CPUs with bf16 matrix units (AVX512-BF16 or AMX),
unless ``--bf16 yes``: elsewhere oneDNN emulates bf16 and they would time the emulation.

Random weights in the official layout are written to a temporary file unless ``--checkpoint``
is given. Times are the minimum over ``--repeats`` runs after ``--warmup`` runs, variants
interleaved so that load from other processes hits all of them alike; ratios are what to
quote. Process CPU time is reported too: on a shared machine it is the steadier measure
(with one thread it is what the wall time would be on an idle core; with several, spinning
threads inflate it). Peak memory is the resident-set growth during a call (sampled every 2 ms).

    python benchmarks/bench_sam.py [--repeats 2] [--prompts 64] [--json out.json | --json -]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import sambench
from sambench.models.sam import write_random_checkpoint
from sambench.models.runtime import cpu_has_native
from sambench.models.sam.parity import synthetic_image

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return 0


class PeakRSS:
    """Resident-set growth while the block runs (sampling thread)."""

    def __enter__(self):
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.delta_mb = (self.peak - self.base) / 2**20


def measure(variants: dict, warmup: int, repeats: int) -> dict:
    """Run each ``name -> fn`` interleaved; min/median seconds, peak RSS growth, last output."""
    stats = {name: {"times": [], "cpu": [], "peak_mb": 0.0, "out": None} for name in variants}
    for rnd in range(warmup + repeats):
        for name, fn in variants.items():
            with PeakRSS() as mem:
                start, cpu_start = time.perf_counter(), time.process_time()
                out = fn()
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            entry = stats[name]
            entry["out"] = out
            entry["peak_mb"] = max(entry["peak_mb"], mem.delta_mb)
            if rnd >= warmup:
                entry["times"].append(elapsed)
                entry["cpu"].append(cpu)
            print(f"  {name}: {elapsed:.3f}s wall, {cpu:.3f}s cpu{' (warmup)' if rnd < warmup else ''}",
                  file=sys.stderr, flush=True)
    for entry in stats.values():
        entry["min_s"] = min(entry["times"])
        entry["median_s"] = statistics.median(entry["times"])
        entry["cpu_s"] = min(entry["cpu"])
    return stats


def bench_encoder(ours_path: str, image: np.ndarray, args) -> list[dict]:
    official = sambench.load_model("sam-official", checkpoint=ours_path)
    ours = {mode: sambench.load_model("sam", checkpoint=ours_path, attention=mode)
            for mode in ("math", "sdpa")}
    variants = {
        "official fp32": lambda: official.embed(image),
        "ours fp32 (math, parity path)": lambda: ours["math"].embed(image),
        "ours fp32 (sdpa)": lambda: ours["sdpa"].embed(image),
    }
    if args.bf16:
        ours_bf16 = sambench.load_model("sam", checkpoint=ours_path, attention="sdpa", dtype="bfloat16")
        variants["ours bf16 autocast (sdpa)"] = lambda: ours_bf16.embed(image)
    if not args.skip_compiled:  # the warm-up call compiles (tens of seconds each)
        dtypes = ("float32", "bfloat16") if args.bf16 else ("float32",)
        compiled = {dtype: sambench.load_model("sam", checkpoint=ours_path, attention="sdpa", dtype=dtype,
                                               compile=True) for dtype in dtypes}
        variants["ours fp32 (sdpa, compiled)"] = lambda: compiled["float32"].embed(image)
        if args.bf16:
            variants["ours bf16 autocast (sdpa, compiled)"] = lambda: compiled["bfloat16"].embed(image)
    if args.bf16 and not args.skip_official_bf16:
        official_bf16 = sambench.load_model("sam-official", checkpoint=ours_path, dtype="bfloat16")
        variants["official bf16 autocast"] = lambda: official_bf16.embed(image)
    stats = measure(variants, args.warmup, args.repeats)
    reference = stats["official fp32"]["out"].features
    base, cpu_base = stats["official fp32"]["min_s"], stats["official fp32"]["cpu_s"]
    rows = []
    for name, entry in stats.items():
        feats = entry["out"].features
        rows.append({
            "variant": name, "seconds_min": entry["min_s"], "seconds_median": entry["median_s"],
            "cpu_seconds": entry["cpu_s"],
            "speedup_vs_official_fp32": base / entry["min_s"],
            "cpu_speedup_vs_official_fp32": cpu_base / entry["cpu_s"], "peak_rss_mb": entry["peak_mb"],
            "max_abs_diff": (feats - reference).abs().max().item(),
            "rel_l2_err": ((feats - reference).norm() / reference.norm()).item(),
        })
    return rows


def decoder_setup(path: str, image: np.ndarray, n: int, n_points: int, seed: int, bf16: bool):
    """The official model, ours, ours in bf16 (None without ``bf16``), our embedding of
    ``image`` and ``n`` prompts of ``n_points`` random positive points each."""
    official = sambench.load_model("sam-official", checkpoint=path)
    ours = sambench.load_model("sam", checkpoint=path)
    ours_bf16 = sambench.load_model("sam", checkpoint=path, dtype="bfloat16") if bf16 else None
    height, width = image.shape[:2]
    points = np.random.default_rng(seed).uniform(0, 1, (n, n_points, 2)) * (width - 1, height - 1)
    return official, ours, ours_bf16, ours.embed(image), points, np.ones((n, n_points))


def bench_decoder(path: str, image: np.ndarray, args) -> list[dict]:
    n = args.prompts
    official, ours, ours_bf16, emb, points, labels = decoder_setup(path, image, n, 1, 0, args.bf16)

    def official_per_prompt():
        official._set(emb)
        p = official.predictor
        outs = [p.predict(point_coords=points[i], point_labels=labels[i], multimask_output=True)
                for i in range(n)]
        return np.stack([o[1] for o in outs]), np.stack([o[2] for o in outs])

    def official_batched():
        pred = official.predict(emb, points=points, labels=labels)
        return pred.scores, pred.low_res_logits

    def ours_per_prompt():
        outs = [ours.predict(emb, points=points[i], labels=labels[i]) for i in range(n)]
        return np.stack([o.scores for o in outs]), np.stack([o.low_res_logits for o in outs])

    def ours_batched(model):
        def run():
            pred = model.predict(emb, points=points, labels=labels)
            return pred.scores, pred.low_res_logits
        return run

    def ours_best_only(model):
        def run():
            pred = model.predict(emb, points=points, labels=labels, return_masks=False)
            best = pred.scores.argmax(1)
            model.upsample(emb, pred.low_res_logits[np.arange(n), best])
            return pred.scores, pred.low_res_logits
        return run

    variants = {
        "official, one predict() per prompt": official_per_prompt,
        f"official, one predict_torch() with {n} prompts": official_batched,
        "ours, one predict() per prompt": ours_per_prompt,
        f"ours, {n} prompts in one call (all 3 masks at full res)": ours_batched(ours),
        f"ours, {n} prompts in one call, upsample best mask only": ours_best_only(ours),
    }
    if ours_bf16 is not None:
        variants[f"ours bf16, {n} prompts in one call (all 3 masks at full res)"] = ours_batched(ours_bf16)
        variants[f"ours bf16, {n} prompts in one call, upsample best mask only"] = ours_best_only(ours_bf16)
    return decoder_rows(measure(variants, args.warmup, args.repeats), "official, one predict() per prompt", n)


def bench_mask_decoder(path: str, image: np.ndarray, args) -> list[dict]:
    """The corrective-click case of the point task: each prompt has 3 points and the previous
    low-res logits as its mask prompt, single-mask output. Every prompt then has its own image
    tokens, so nothing image-side is shared."""
    n = args.prompts
    official, ours, ours_bf16, emb, points, labels = decoder_setup(path, image, n, 3, 1, args.bf16)
    first = ours.predict(emb, points=points[:, :1], labels=labels[:, :1], return_masks=False)
    mask_in = first.low_res_logits[np.arange(n), first.scores.argmax(1)][:, None]

    def official_per_prompt():
        official._set(emb)
        p = official.predictor
        outs = [p.predict(point_coords=points[i], point_labels=labels[i], mask_input=mask_in[i],
                          multimask_output=False) for i in range(n)]
        return np.stack([o[1] for o in outs]), np.stack([o[2] for o in outs])

    def ours_batched(model):
        def run():
            pred = model.predict(emb, points=points, labels=labels, mask_input=mask_in, multimask=False)
            return pred.scores, pred.low_res_logits
        return run

    variants = {
        "official, one predict() per prompt": official_per_prompt,
        f"ours, {n} prompts in one call": ours_batched(ours),
    }
    if ours_bf16 is not None:
        variants[f"ours bf16, {n} prompts in one call"] = ours_batched(ours_bf16)
    return decoder_rows(measure(variants, args.warmup, args.repeats), "official, one predict() per prompt", n)


def decoder_rows(stats: dict, baseline: str, n: int) -> list[dict]:
    """Per-prompt time, ratios and differences against the ``baseline`` variant."""
    ref_scores, ref_logits = stats[baseline]["out"]
    base, cpu_base = stats[baseline]["min_s"], stats[baseline]["cpu_s"]
    rows = []
    for name, entry in stats.items():
        scores, logits = entry["out"]
        rows.append({
            "variant": name, "ms_per_prompt": 1000 * entry["min_s"] / n,
            "seconds_min": entry["min_s"], "seconds_median": entry["median_s"],
            "cpu_ms_per_prompt": 1000 * entry["cpu_s"] / n,
            "speedup_vs_official_per_prompt": base / entry["min_s"],
            "cpu_speedup_vs_official_per_prompt": cpu_base / entry["cpu_s"],
            "peak_rss_mb": entry["peak_mb"],
            "max_abs_diff_low_res": float(np.abs(logits - ref_logits).max()),
            "max_abs_diff_scores": float(np.abs(scores - ref_scores).max()),
        })
    return rows


DECODER_COLUMNS = [
    ("variant", "variant", ""), ("ms_per_prompt", "ms / prompt", ".1f"),
    ("cpu_ms_per_prompt", "CPU ms / prompt", ".1f"),
    ("speedup_vs_official_per_prompt", "× official per prompt (wall)", ".1f"),
    ("cpu_speedup_vs_official_per_prompt", "× (CPU time)", ".1f"),
    ("peak_rss_mb", "peak RSS growth MB", ".0f"),
    ("max_abs_diff_low_res", "max |Δ| low-res", ".1e"),
    ("max_abs_diff_scores", "max |Δ| IoU", ".1e")]


def markdown(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format(r[key], fmt) if fmt else str(r[key]) for key, _, fmt in columns)
            + " |" for r in rows]
    return "\n".join([head, rule, *body])


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="SAM v1 checkpoint (default: random ViT-B weights)")
    parser.add_argument("--preset", default="vit_b", help="random-weight preset when no checkpoint")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--image", default="768x1024", help="HxW of the synthetic test image")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--skip-encoder", action="store_true")
    parser.add_argument("--skip-decoder", action="store_true")
    parser.add_argument("--skip-official-bf16", action="store_true")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                        help="bf16 variants (auto: only on CPUs with bf16 units; elsewhere they "
                        "would time oneDNN's emulation, far slower than fp32)")
    parser.add_argument("--skip-compiled", action="store_true", help="no torch.compile variants")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    native_bf16 = cpu_has_native(torch.bfloat16)
    args.bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and native_bf16)
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.image.lower().split("x"))
    image = synthetic_image(height, width, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or str(write_random_checkpoint(Path(tmp) / "sam_random.pth",
                                                              args.preset, seed=0))
        info = sambench.load_model("sam", checkpoint=path).info()
        result = {"machine": machine(), "model": {"variant": info.config["variant"],
                                                  "params": info.params, "checkpoint": args.checkpoint
                                                  or f"random {args.preset}"},
                  "image": [height, width], "prompts": args.prompts,
                  "repeats": args.repeats, "warmup": args.warmup,
                  "native_bf16": native_bf16, "bf16_variants": args.bf16}
        out = sys.stderr if args.json == "-" else sys.stdout
        if not args.skip_encoder:
            print("image encoder ...", file=sys.stderr, flush=True)
            result["encoder"] = bench_encoder(path, image, args)
            print(f"\n### Image encoder ({info.config['variant']}, {info.config['img_size']}px, "
                  f"{torch.get_num_threads()} threads)\n", file=out)
            print(markdown(result["encoder"], [
                ("variant", "variant", ""), ("seconds_min", "s / image (min)", ".2f"),
                ("seconds_median", "median", ".2f"), ("cpu_seconds", "CPU s", ".2f"),
                ("speedup_vs_official_fp32", "× official fp32 (wall)", ".2f"),
                ("cpu_speedup_vs_official_fp32", "× (CPU time)", ".2f"),
                ("peak_rss_mb", "peak RSS growth MB", ".0f"), ("max_abs_diff", "max |Δ| emb", ".2e"),
                ("rel_l2_err", "rel. L2 err", ".2e")]), file=out)
        if not args.skip_decoder:
            print("decoder ...", file=sys.stderr, flush=True)
            result["decoder"] = bench_decoder(path, image, args)
            print(f"\n### Prompt encoder + mask decoder ({args.prompts} single-point prompts, "
                  f"multimask, {height}x{width} image)\n", file=out)
            print(markdown(result["decoder"], DECODER_COLUMNS), file=out)
            print("decoder with mask prompts ...", file=sys.stderr, flush=True)
            result["mask_decoder"] = bench_mask_decoder(path, image, args)
            print(f"\n### With mask prompts ({args.prompts} prompts of 3 points + the previous logits, "
                  f"single mask, {height}x{width} image)\n", file=out)
            print(markdown(result["mask_decoder"], DECODER_COLUMNS), file=out)
    result["machine"]["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    m = result["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores ({m['cpu_capability']}), torch {m['torch']}; bf16 units: "
          f"{'yes' if native_bf16 else 'no'}{'' if args.bf16 else ' (bf16 variants left out)'}", file=out)
    print(f"\nload average start {result['machine']['load_average_start']}, "
          f"end {result['machine']['load_average_end']} (other processes skew absolute times)",
          file=out)
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
