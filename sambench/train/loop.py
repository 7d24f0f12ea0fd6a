"""The training loop: the paper's recipe on any SAM-v1-layout model and any dataset.

Per step: a batch of images is encoded once; for each image a few GT masks are prompted for
11 iterations (:mod:`.simulate`) and every iteration's output is scored with the paper's loss
(:mod:`.losses`). AdamW with linear warmup and step decay (×0.1 at 2/3 and 26/27 of the run,
the paper's 60k and 86.7k of 90k), optional layer-wise lr decay and a frozen image encoder
(the usual cheap fine-tune).

Determinism: every random draw of step ``t`` comes from generators seeded with
``(seed, t)``, so a resumed run (model + optimizer + step restored) continues exactly as an
uninterrupted one. Checkpoints are written in the official SAM layout (``model.pth``, a plain
state dict) and as ``model.safetensors``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from sambench.models.sam.sam import Sam
from sambench.train import simulate
from sambench.train.data import Example, batch
from sambench.train.losses import sam_loss

log = logging.getLogger("sambench")


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_images: int = 4
    masks_per_image: int = 8
    lr: float = 8e-4
    weight_decay: float = 0.1
    warmup: int = 100
    decay_at: list[float] = field(default_factory=lambda: [2 / 3, 26 / 27])
    layer_decay: float = 1.0  # < 1: earlier encoder blocks learn slower
    freeze_encoder: bool = False
    iterations: int = simulate.N_ITERATIONS
    p_box: float = 0.5  # probability that the first prompt is a box
    val_every: int = 250
    save_every: int = 250
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False  # autocast (CUDA or AMX CPUs)


def _step_generators(seed: int, step: int) -> tuple[torch.Generator, np.random.Generator]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return gen, np.random.default_rng([seed, step])


def param_groups(sam: Sam, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and position tables; layer-wise decay."""
    depth = len(sam.image_encoder.blocks)
    groups: dict[tuple[float, float], list] = {}
    for name, p in sam.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0
        if name.startswith("image_encoder."):
            if name.startswith("image_encoder.blocks."):
                layer = int(name.split(".")[2]) + 1
            elif name.startswith("image_encoder.neck."):
                layer = depth + 1
            else:  # patch embedding, absolute positions
                layer = 0
            scale = cfg.layer_decay ** (depth + 1 - layer)
        no_decay = p.ndim < 2 or "pos_embed" in name or "rel_pos" in name or name.endswith("embed.weight")
        key = (scale, 0.0 if no_decay else cfg.weight_decay)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr_scale": s, "weight_decay": wd} for (s, wd), ps in sorted(groups.items())]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    drops = sum(step >= math.floor(f * cfg.steps) for f in cfg.decay_at)
    return cfg.lr * 0.1 ** drops


def train_step(sam: Sam, examples: list[Example], cfg: TrainConfig, step: int) -> float:
    """Loss of one batch (backward included); returns its value.

    All masks of all images of the batch go through the decoder together (each with its
    image's embedding), one call per prompt iteration; the first prompt (box or point) is
    drawn once per step so the batch shares one prompt layout.
    """
    gen, rng = _step_generators(cfg.seed, step)
    indices = list(rng.choice(len(examples), size=min(cfg.batch_images, len(examples)), replace=False))
    size = sam.config.img_size
    images, targets = batch(examples, indices, cfg.masks_per_image, size, sam.pixel_mean, sam.pixel_std, rng)
    owner = torch.cat([torch.full((len(t),), i) for i, t in enumerate(targets)])
    gt = torch.cat(targets)
    device = torch.device(cfg.device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 else contextlib.nullcontext())
    use_box = bool(rng.random() < cfg.p_box)
    prompts = simulate.first_prompts(gt, use_box, gen)
    plan = simulate.schedule(gen, cfg.iterations)
    gt_dev = gt.to(device).float()
    rows = torch.arange(len(gt), device=device)
    with autocast:
        if cfg.freeze_encoder:
            with torch.no_grad():
                features = sam.image_encoder(images.to(device))
        else:
            features = sam.image_encoder(images.to(device))
        per_mask = features[owner.to(device)]
        dense_pe = sam.prompt_encoder.get_dense_pe()
        total = 0.0
        mask_in, pred = None, None
        for it in range(cfg.iterations):
            if it > 0 and plan[it - 1]:
                prompts = prompts.add(*simulate.corrective_points(gt, pred.cpu(), gen))
            points = None
            if prompts.points.shape[1]:
                points = (prompts.points.to(device), prompts.labels.to(device))
            boxes = None if prompts.boxes is None else prompts.boxes.to(device)
            sparse, dense = sam.prompt_encoder(points, boxes, mask_in)
            logits, iou = sam.mask_decoder(per_mask, dense_pe, sparse, dense, it == 0)
            full = F.interpolate(logits.float(), (size, size), mode="bilinear", align_corners=False)
            loss, _, _ = sam_loss(full, iou.float(), gt_dev)
            total = total + loss
            chosen = iou.detach().argmax(dim=1)
            mask_in = logits.detach()[rows, chosen][:, None]
            pred = full.detach()[rows, chosen] > 0
        loss = total / cfg.iterations
    loss.backward()
    return float(loss.detach())


def validate(sam: Sam, samples: list, seed: int) -> dict:
    """mIoU at 1, 3 and 9 center points (and the oracle) on held-out samples, through the
    point task itself, so training reports the number the benchmark will."""
    from sambench.models.sam.model import SamModel
    from sambench.tasks.point import PointTask

    was_training = sam.training
    task = PointTask({"first_point": ["center"], "n_points": [1, 3, 9]})
    model = SamModel(sam)
    records = [task.run_sample(model, s, seed) for s in samples]
    sam.train(was_training)
    metrics = task.aggregate(records, seed)
    return {k: round(v, 4) for k, v in metrics.items() if not k.endswith("_ci95") and "noc" not in k}


def save_checkpoint(sam: Sam, out: Path, stem: str = "model") -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in sam.state_dict().items()}
    torch.save(state, out / f"{stem}.pth")
    save_file(state, str(out / f"{stem}.safetensors"), metadata={"format": "sam-v1"})


def train(sam: Sam, examples: list[Example], cfg: TrainConfig, out: Path,
          val_samples: Optional[list] = None) -> dict:
    """Train ``sam`` in place; resumes from ``out/train_state.pt`` when present."""
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    sam.to(device).train()
    if cfg.freeze_encoder:
        sam.image_encoder.requires_grad_(False)
    groups = param_groups(sam, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    state_path, log_path = out / "train_state.pt", out / "train_log.jsonl"
    start = 0
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        sam.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("resuming training at step %d", start)
        if log_path.is_file():  # drop log lines of steps after the saved state
            kept = [l for l in log_path.read_text().splitlines() if json.loads(l)["step"] <= start]
            log_path.write_text("".join(l + "\n" for l in kept))
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    t0 = time.time()
    last: dict = {}
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not sys.stderr.isatty())
    for step in bar:
        lr = learning_rate(cfg, step)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        optimizer.zero_grad(set_to_none=True)
        loss = train_step(sam, examples, cfg, step)
        optimizer.step()
        last = {"step": step + 1, "loss": round(loss, 5), "lr": lr}
        done = step + 1
        if val_samples and (done % cfg.val_every == 0 or done == cfg.steps):
            last["val"] = validate(sam, val_samples, cfg.seed)
        bar.set_postfix(loss=f"{loss:.4f}", **({"val_miou1": last["val"]["miou@1"]} if "val" in last else {}))
        with open(log_path, "a") as f:
            f.write(json.dumps(last) + "\n")
        if done % cfg.save_every == 0 or done == cfg.steps:
            torch.save({"model": sam.state_dict(), "optimizer": optimizer.state_dict(), "step": done},
                       state_path)
    sam.eval()
    save_checkpoint(sam, out)
    summary = {"steps": cfg.steps, "final": last, "seconds_this_session": round(time.time() - t0, 1)}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
