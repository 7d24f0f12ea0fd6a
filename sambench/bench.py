"""``sambench bench``: whole-task throughput against the official ``SamPredictor`` loop.

Each implementation runs the point task (center and random first points, 1–9 clicks) on the
same images, weights and machine, in its own subprocess so peak memory is its own:

* ``ours``: our SAM with its defaults (fp32, ``math`` attention: bit-identical embeddings),
  all prompts of an image in one decoder call per click step;
* ``ours-fast``: fp32 with ``attention=sdpa`` and the compiled encoder (within the parity
  bounds of ``tests/test_sam_parity.py``, not bit-identical);
* ``ours-bf16``: bfloat16 autocast, ``sdpa``; ``ours-bf16-compiled``: the same, compiled;
* ``official``: the official modules with one ``SamPredictor.set_image`` per image and one
  ``SamPredictor.predict`` call per prompt (the loop users write).

Every implementation first encodes one image untimed (``warmup_s``): that is where
``torch.compile`` compiles and oneDNN builds its kernels, once per process. Time is then split
into encode (``embed``), decode (``predict``) and the rest (clicks, IoU, records); the
accuracy of each is reported next to its speed, since a speed-up that changes mIoU is not one.
"""
from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sambench.errors import SambenchError
from sambench.types import Prediction

log = logging.getLogger("sambench")

IMPLEMENTATIONS = {  # name -> load_model options of our SAM (None: the official loop)
    "ours": {},
    "ours-fast": {"attention": "sdpa", "compile": True},
    "ours-bf16": {"dtype": "bfloat16", "attention": "sdpa"},
    "ours-bf16-compiled": {"dtype": "bfloat16", "attention": "sdpa", "compile": True},
    "official": None,
}


def default_implementations() -> list[str]:
    """Every implementation, less the bf16 ones on a CPU that has no bf16 units: they would time
    oneDNN's emulation (far slower than fp32), not the method. ``--impl`` still runs them."""
    import torch

    from sambench.models.runtime import cpu_has_native

    if cpu_has_native(torch.bfloat16):
        return list(IMPLEMENTATIONS)
    skipped = [name for name, options in IMPLEMENTATIONS.items() if (options or {}).get("dtype") == "bfloat16"]
    log.warning("this CPU has no bf16 matrix units: leaving out %s (ask with --impl)", ", ".join(skipped))
    return [name for name in IMPLEMENTATIONS if name not in skipped]


class Timed:
    """Wraps a model and adds up the seconds spent in ``embed`` (``encode``) and ``predict``
    (``decode``); every other attribute is the wrapped model's. The benchmarks use it too."""

    def __init__(self, model):
        self.model = model
        self.encode = 0.0
        self.decode = 0.0

    def embed(self, image):
        t = time.perf_counter()
        out = self.model.embed(image)
        self.encode += time.perf_counter() - t
        return out

    def predict(self, embedding, **kwargs):
        t = time.perf_counter()
        out = self.model.predict(embedding, **kwargs)
        self.decode += time.perf_counter() - t
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)


class OfficialLoop:
    """The official predictor used prompt by prompt: ``set_image`` once per image, then
    ``SamPredictor.predict`` (numpy in, full-size masks out) for every prompt."""

    def __init__(self, checkpoint: str):
        from sambench.models import load_model

        self.official = load_model("sam-official", checkpoint=checkpoint)
        self.predictor = self.official.predictor
        self._image = None

    def info(self):
        return self.official.info()

    def embed(self, image):
        import torch

        with torch.inference_mode():
            self.predictor.set_image(image)
        return id(image)

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        import torch

        from sambench.models.base import batch_prompts

        low = self.official.config.low_res
        batch = batch_prompts(points, labels, box, mask_input, low_res_shape=(low, low))
        masks, scores, logits = [], [], []
        for b in range(batch.size):
            mask_in = None
            if batch.mask_input is not None:
                mask_in = batch.mask_input[b]
            with torch.inference_mode():
                m, s, lr = self.predictor.predict(
                    point_coords=None if batch.points is None else batch.points[b],
                    point_labels=None if batch.labels is None else batch.labels[b],
                    box=None if batch.boxes is None else batch.boxes[b],
                    mask_input=mask_in, multimask_output=multimask)
            masks.append(m)
            scores.append(s)
            logits.append(lr)
        return Prediction(np.stack(masks), np.stack(scores), np.stack(logits))


def _worker(impl: str, checkpoint: str, dataset: str, limit: int, seed: int) -> dict:
    """Run the point task with one implementation; returns timings, memory and metrics."""
    import torch

    from sambench import datasets
    from sambench.models import load_model
    from sambench.tasks import load_image_or_record
    from sambench.tasks.point import PointTask
    from sambench.types import SampleRecord

    torch.manual_seed(0)
    options = IMPLEMENTATIONS[impl]
    if options is None:
        model = Timed(OfficialLoop(checkpoint))
    else:
        model = Timed(load_model("sam", checkpoint=checkpoint, **options))
    task = PointTask({})
    samples = list(datasets.resolve(dataset).open())[:limit]
    if not samples:
        raise SambenchError(f"dataset {dataset} has no images")
    warmup = time.perf_counter()
    model.model.embed(load_image_or_record(samples[0], SampleRecord(samples[0].id)))
    warmup = time.perf_counter() - warmup
    t0 = time.perf_counter()
    records = [task.run_sample(model, s, None, seed) for s in samples]  # the point task needs no context
    total = time.perf_counter() - t0
    metrics = task.aggregate(records, None, seed)
    n_masks = len({(r.sample_id, row["mask"]) for r in records for row in r.rows})
    return {"impl": impl, "images": len(samples), "masks": n_masks, "seconds": round(total, 3),
            "encode_s": round(model.encode, 3), "decode_s": round(model.decode, 3),
            "other_s": round(total - model.encode - model.decode, 3), "warmup_s": round(warmup, 3),
            "images_per_s": round(len(samples) / total, 4), "masks_per_s": round(n_masks / total, 4),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "metrics": {k: v for k, v in metrics.items() if not k.endswith("_ci95")}}


def run_bench(checkpoint: str, dataset: str, limit: int, seed: int, impls) -> list[dict]:
    unknown = [impl for impl in impls if impl not in IMPLEMENTATIONS]
    if unknown:
        raise SambenchError(f"unknown implementation {unknown[0]!r} (known: {', '.join(IMPLEMENTATIONS)})")
    rows = []
    for impl in impls:
        proc = subprocess.run([sys.executable, "-m", "sambench.bench", impl, checkpoint, dataset,
                               str(limit), str(seed)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SambenchError(f"bench {impl} failed: {proc.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["impl"] == "official"), None)
    lines = ["| implementation | images/s | masks/s | encode s | decode s | other s | warm-up s | "
             "peak RSS MiB | mIoU@1 | mIoU@9 | random mIoU@1 | speed-up |", "|" + "---|" * 12]
    for r in rows:
        m = r["metrics"]
        ratio = f"{r['images_per_s'] / base['images_per_s']:.2f}×" if base else "—"
        lines.append(f"| {r['impl']} | {r['images_per_s']:.3f} | {r['masks_per_s']:.2f} | {r['encode_s']:.1f} | "
                     f"{r['decode_s']:.1f} | {r['other_s']:.1f} | {r['warmup_s']:.1f} | {r['peak_rss_mib']:.0f} | "
                     f"{100 * m['miou@1']:.2f} | {100 * m['miou@9']:.2f} | {100 * m['random_miou@1']:.2f} | {ratio} |")
    return "\n".join(lines)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="point-task throughput: ours vs the official SamPredictor loop")
    p.add_argument("--model", required=True, help="sam:CHECKPOINT (the official code loads the same file)")
    p.add_argument("--dataset", default="synth-shapes")
    p.add_argument("--limit", type=int, default=2, help="images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", action="append", help=f"subset of {', '.join(IMPLEMENTATIONS)} (default: all; "
                   "the bf16 ones only on CPUs with bf16 units)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from sambench import hub
    from sambench.models import split_spec

    name, checkpoint = split_spec(args.model)
    if name != "sam" or not checkpoint:
        raise SambenchError("bench compares SAM implementations: --model sam:CHECKPOINT")
    _, checkpoint = hub.resolve(name, checkpoint)  # sam:vit_b -> the verified cached file
    if not Path(checkpoint).is_file():
        raise SambenchError(f"checkpoint not found: {checkpoint}")
    rows = run_bench(checkpoint, args.dataset, args.limit, args.seed, args.impl or default_implementations())
    print(json.dumps({"bench": "point", "rows": rows}) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
