"""Benchmark our EfficientSAM (``efficientsam``) against upstream's code, same machine, same run.

There is no upstream package: the reference is yformer/EfficientSAM's ``efficient_sam/`` from a
checkout (``--upstream DIR``, the commit ``scripts/golden_efficientsam.py`` pins; it needs
only torch), imported here and never copied into the repository. Both get the same random
weights in the official layout (ViT-Ti by default, ``--preset vit_s``).

Image encoder at 1024: upstream fp32 (and under bf16 autocast) vs ours fp32 (``math``: the
parity path; ``sdpa``) and ours bf16 autocast (``sdpa``). Decoder: N single-point prompts on
one image, multimask, low-res logits: upstream's ``predict_masks`` with all N queries in one
call (upstream batches queries natively) vs ours with all N in one call; then the same with
masks at the image size (upstream's bicubic ``output_h/w``, ours ``predict``). Accuracy is the
max |Δ| against upstream fp32 (embedding, logits) and whether the most confident mask agrees.
bf16 rows run only where the CPU has bf16 matrix units (or ``--bf16 yes``).

Times are the minimum over ``--repeats`` runs after one warm-up, variants interleaved; ratios
are what to quote on a shared machine.

    python benchmarks/bench_efficientsam.py --upstream /tmp/EfficientSAM [--prompts 32] [--json -]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sambench.models.efficientsam import FAMILY, EfficientSamModel, make_config, random_state_dict
from sambench.models.runtime import cpu_has_native
from sambench.models.sam.parity import synthetic_image


def upstream_model(root: Path, config, state):
    sys.path.insert(0, str(root))
    from efficient_sam.efficient_sam import build_efficient_sam

    model = build_efficient_sam(encoder_patch_embed_dim=config.embed_dim, encoder_num_heads=config.num_heads)
    model.load_state_dict(state, strict=True)
    return model.eval()


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="checkout of yformer/EfficientSAM")
    parser.add_argument("--preset", default="vit_t", choices=["vit_t", "vit_s"])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--json", help="write the results as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = make_config(args.preset)
    state = random_state_dict(config, seed=0)
    upstream = upstream_model(args.upstream, config, state)
    bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and cpu_has_native(torch.bfloat16))
    ours = {"fp32 math": EfficientSamModel(FAMILY.module(state), FAMILY, attention="math"),
            "fp32 sdpa": EfficientSamModel(FAMILY.module(state), FAMILY, attention="sdpa")}
    if bf16:
        ours["bf16 sdpa"] = EfficientSamModel(FAMILY.module(state), FAMILY, dtype="bfloat16")

    image = synthetic_image(480, 640, seed=0)
    h, w = image.shape[:2]
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # upstream's ToTensor
    rng = np.random.default_rng(0)
    points = np.stack([rng.integers(0, w, args.prompts), rng.integers(0, h, args.prompts)], -1)
    points = points[:, None].astype(np.float32)
    labels = np.ones((args.prompts, 1), np.int64)
    rows = []

    def upstream_encode(amp):
        with torch.inference_mode(), autocast(amp):
            return upstream.get_image_embeddings(tensor).float()

    ref_t, ref_emb = timed(lambda: upstream_encode(False), args.repeats)
    rows.append({"part": "encoder", "impl": "upstream fp32", "seconds": ref_t, "max_abs_diff": 0.0})
    if bf16:
        t, emb = timed(lambda: upstream_encode(True), args.repeats)
        rows.append({"part": "encoder", "impl": "upstream bf16", "seconds": t,
                     "max_abs_diff": float((emb - ref_emb).abs().max())})
    embeddings = {}
    for name, model in ours.items():
        t, emb = timed(lambda: model.embed(image), args.repeats)
        embeddings[name] = emb
        rows.append({"part": "encoder", "impl": f"ours {name}", "seconds": t,
                     "max_abs_diff": float((emb.features - ref_emb).abs().max())})

    up_points = torch.from_numpy(points)[None]
    up_labels = torch.from_numpy(labels)[None]

    def upstream_decode(full):
        with torch.inference_mode():
            size = (h, w) if full else (-1, -1)
            return upstream.predict_masks(ref_emb, up_points, up_labels, True, h, w, *size)

    for full in (False, True):
        part = "decoder + masks at image size" if full else "decoder (low-res logits)"
        ref_dt, (ref_logits, ref_scores) = timed(lambda: upstream_decode(full), args.repeats)
        ref_logits, ref_scores = ref_logits[0], ref_scores[0]
        rows.append({"part": part, "impl": "upstream fp32 (N queries, one call)", "seconds": ref_dt,
                     "max_abs_diff": 0.0, "best_agrees": 1.0})
        for name, model in ours.items():
            emb = embeddings[name]
            if full:
                def run():
                    pred = model.predict(emb, points=points, labels=labels)
                    return model.upsample(emb, pred.low_res_logits, threshold=None), pred.scores
            else:
                def run():
                    pred = model.predict(emb, points=points, labels=labels, return_masks=False)
                    return pred.low_res_logits, pred.scores
            t, (logits, scores) = timed(run, args.repeats)
            agree = float((scores.argmax(-1) == ref_scores.numpy().argmax(-1)).mean())
            rows.append({"part": part, "impl": f"ours {name} (N prompts, one call)", "seconds": t,
                         "max_abs_diff": float(np.abs(logits - ref_logits.numpy()).max()), "best_agrees": agree})

    meta = {"preset": args.preset, "prompts": args.prompts, "image": [h, w], "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if args.json:
        text = json.dumps({"meta": meta, "rows": rows}, indent=1)
        print(text) if args.json == "-" else Path(args.json).write_text(text)
    print(f"EfficientSAM {args.preset}, {args.prompts} single-point prompts on a {h}x{w} image, "
          f"torch {torch.__version__}, {meta['threads']} threads")
    print("| part | implementation | seconds | vs upstream fp32 | max abs diff | best mask agrees |")
    print("|---|---|---|---|---|---|")
    base = {}
    for row in rows:
        base.setdefault(row["part"], row["seconds"])
        agrees = f"{row['best_agrees']:.2f}" if "best_agrees" in row else ""
        print(f"| {row['part']} | {row['impl']} | {row['seconds']:.3f} | {base[row['part']] / row['seconds']:.2f}x "
              f"| {row['max_abs_diff']:.2e} | {agrees} |")


if __name__ == "__main__":
    main()
