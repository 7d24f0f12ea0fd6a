"""The training loop: the paper's recipe on any model with SAM v1's prompt path (a ``Sam`` or a
``RepViTSam``: ``image_encoder``, ``prompt_encoder``, ``mask_decoder``, ``config.img_size`` and
pixel statistics) and any dataset.

Per step: a batch of images is encoded once; for each image a few GT masks are prompted for
11 iterations (:mod:`.simulate`) and every iteration's output is scored with the paper's loss
(:mod:`.losses`). AdamW with linear warmup and step decay (×0.1 at 2/3 and 26/27 of the run,
the paper's 60k and 86.7k of 90k), optional layer-wise lr decay and a frozen image encoder
(the usual cheap fine-tune).

Determinism: every random draw of step ``t`` comes from generators seeded with
``(seed, t, rank)`` (drop path's draws too: the global generator is reseeded each step), so a
resumed run (model + optimizer + step restored) continues exactly as an uninterrupted one.

Data parallel (``torchrun``): each rank draws its own ``batch_images`` images per step (the
effective batch is ``world_size × batch_images``) and the gradients are averaged with one
all-reduce before the optimizer step. A step calls the encoder once and the decoder once per
prompt iteration, so the averaging is done explicitly rather than through
``DistributedDataParallel``'s forward hooks. Validation, logs and checkpoints are rank 0's.
Checkpoints are written in the official SAM layout (``model.pth``, a plain state dict) and as
``model.safetensors``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from sambench.errors import SambenchError
from sambench.models.runtime import warn_if_emulated
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
    drop_path: float = 0.0  # stochastic depth of the last encoder block (linear in depth)
    freeze_encoder: bool = False
    iterations: int = simulate.N_ITERATIONS
    p_box: float = 0.5  # probability that the first prompt is a box
    # probability that a first point is the mask's "center" (the point task's first click)
    # rather than uniform over the mask; 0 is the paper's recipe
    p_center: float = 0.0
    p_text: float = 0.0  # probability that the first prompt is the masks' phrases (text path)
    text_encoder: str = ""  # the text encoder (sambench.text) for p_text > 0
    rephrase: bool = True  # train on rephrasings of synthetic descriptions (train/phrasing.py)
    # what stands for the text in training: "phrases" (the masks' descriptions, embedded by the
    # text encoder) or "clip-image" (the paper's route: CLIP image embeddings of masked crops,
    # text/clip_image.py; needs text_encoder clip:DIR)
    text_route: str = "phrases"
    loss_size: int = 0  # side at which masks are scored; 0: the model input (the paper)
    val_every: int = 250
    save_every: int = 250
    stop_at: int = 0  # > 0: stop after this step (the lr schedule still follows ``steps``)
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False  # autocast (CUDA or AMX CPUs)


def family_of(sam: nn.Module):
    """The :class:`~sambench.models.family.Family` of a trainable module."""
    from sambench.models.families import get_family
    from sambench.models.repvit_sam import RepViTSam

    return get_family("repvit-sam" if isinstance(sam, RepViTSam) else "sam")


def _step_generators(seed: int, step: int, rank: int = 0) -> tuple[torch.Generator, np.random.Generator]:
    torch.manual_seed(seed * 1_000_003 + step * 1009 + rank)  # drop path
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step + rank * 7_919_333)
    return gen, np.random.default_rng([seed, step] + ([rank] if rank else []))


def param_groups(sam: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and position tables; layer-wise decay
    (ViT encoders: by block)."""
    blocks = getattr(sam.image_encoder, "blocks", None)
    if cfg.layer_decay != 1.0 and blocks is None:
        raise SambenchError("--layer-decay needs a ViT image encoder (the sam family)")
    depth = len(blocks) if blocks is not None else 0
    groups: dict[tuple[float, float], list] = {}
    for name, p in sam.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0
        if name.startswith("image_encoder.") and cfg.layer_decay != 1.0:
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


def train_step(sam: nn.Module, examples: list[Example], cfg: TrainConfig, step: int, rank: int = 0,
               image_prompts=None) -> float:
    """Loss of one batch (backward included); returns its value.

    All masks of all images of the batch go through the decoder together (each with its
    image's embedding), one call per prompt iteration; the first prompt (box or point) is
    drawn once per step so the batch shares one prompt layout. ``image_prompts`` (a
    :class:`~sambench.text.clip_image.ClipMaskEmbedder`) makes the text prompts of the
    ``clip-image`` route.
    """
    gen, rng = _step_generators(cfg.seed, step, rank)
    indices = list(rng.choice(len(examples), size=min(cfg.batch_images, len(examples)), replace=False))
    size = sam.config.img_size
    images, targets, picked = batch(examples, indices, cfg.masks_per_image, size, sam.pixel_mean,
                                    sam.pixel_std, rng)
    owner = torch.cat([torch.full((len(t),), i) for i, t in enumerate(targets)])
    gt = torch.cat(targets)
    device = torch.device(cfg.device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 else contextlib.nullcontext())
    use_box = bool(rng.random() < cfg.p_box)
    text = None
    if cfg.p_text > 0 and rng.random() < cfg.p_text:  # text first, then corrective points
        if image_prompts is not None:  # the paper's route: CLIP embeddings of masked crops
            crops = []
            for i, masks in zip(indices, targets):
                h, w = examples[i].image.shape[:2]
                crops.append(image_prompts.embed(examples[i].image, [m[:h, :w].numpy() for m in masks], rng))
            text = torch.from_numpy(np.concatenate(crops)).to(device)
        else:
            rows_text = [examples[i].text_embeddings[c] for i, c in zip(indices, picked)]
            table = np.concatenate(rows_text)  # (B, K, D)
            variant = rng.integers(0, table.shape[1], size=len(table))
            text = torch.from_numpy(table[np.arange(len(table)), variant]).to(device)
        prompts = simulate.Prompts(torch.zeros(len(gt), 0, 2), torch.zeros(len(gt), 0, dtype=torch.long), None)
    else:
        centers = None
        if cfg.p_center > 0 and not use_box:
            centers = torch.tensor([examples[i].centers[c] for i, chosen in zip(indices, picked) for c in chosen])
        prompts = simulate.first_prompts(gt, use_box, gen, centers, cfg.p_center)
    plan = simulate.schedule(gen, cfg.iterations)
    gt_dev = gt.to(device).float()
    loss_size = cfg.loss_size or size
    gt_loss = gt_dev if loss_size == size else (
        F.interpolate(gt_dev[:, None], (loss_size, loss_size), mode="area")[:, 0] >= 0.5).float()
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
        mask_in = None
        for it in range(cfg.iterations):
            if it > 0 and plan[it - 1]:
                pred = F.interpolate(mask_in.float(), (size, size), mode="bilinear", align_corners=False)[:, 0] > 0
                prompts = prompts.add(*simulate.corrective_points(gt, pred.cpu(), gen))
            points = None
            if prompts.points.shape[1]:
                points = (prompts.points.to(device), prompts.labels.to(device))
            boxes = None if prompts.boxes is None else prompts.boxes.to(device)
            sparse, dense = sam.prompt_encoder(points, boxes, mask_in, text)
            logits, iou = sam.mask_decoder(per_mask, dense_pe, sparse, dense, it == 0)
            scored = F.interpolate(logits.float(), (loss_size, loss_size), mode="bilinear", align_corners=False)
            loss, _, _ = sam_loss(scored, iou.float(), gt_loss)
            total = total + loss
            chosen = iou.detach().argmax(dim=1)
            mask_in = logits.detach()[rows, chosen][:, None]
        loss = total / cfg.iterations
    loss.backward()
    return float(loss.detach())


def validate(sam: nn.Module, samples: list, seed: int) -> dict:
    """mIoU at 1, 3 and 9 center points (and the oracle) on held-out samples, through the
    point task itself, so training reports the number the benchmark will."""
    from sambench.models.family_model import FamilyModel
    from sambench.tasks.point import PointTask

    was_training = sam.training
    task = PointTask({"first_point": ["center"], "n_points": [1, 3, 9]})
    model = FamilyModel(sam, family_of(sam))
    records = [task.run_sample(model, s, None, seed) for s in samples]  # the point task needs no context
    sam.train(was_training)
    metrics = task.aggregate(records, None, seed)
    return {k: round(v, 4) for k, v in metrics.items() if not k.endswith("_ci95") and "noc" not in k}


def save_checkpoint(sam: nn.Module, out: Path, stem: str = "model", text_encoder: str = "") -> None:
    """``<stem>.pth`` (a plain state dict: the official layout for the ``sam`` family) and
    ``<stem>.safetensors`` (format: ``sam-v1`` or the family's name); a text-path model records
    its text encoder in the safetensors header and in ``<stem>.pth.json``."""
    from sambench.models.sam.checkpoint import TEXT_ENCODER_KEY, write_sidecar
    from sambench.registry import split_spec

    state = {k: v.detach().cpu().contiguous() for k, v in sam.state_dict().items()}
    torch.save(state, out / f"{stem}.pth")
    family = family_of(sam).name
    metadata = {"format": "sam-v1" if family == "sam" else family}
    if sam.config.text_dim and text_encoder:
        metadata[TEXT_ENCODER_KEY] = split_spec(text_encoder)[0]
        write_sidecar(out / f"{stem}.pth", {TEXT_ENCODER_KEY: metadata[TEXT_ENCODER_KEY]})
    save_file(state, str(out / f"{stem}.safetensors"), metadata=metadata)


def _prepare_text(sam: nn.Module, examples: list[Example], cfg: TrainConfig):
    """Check the text setup; returns the CLIP crop embedder for the ``clip-image`` route, else
    embeds the phrases (if not done yet) and returns None."""
    from sambench.registry import split_spec
    from sambench.text import load_text_encoder
    from sambench.train.data import attach_text

    if not sam.config.text_dim:
        raise SambenchError("text-prompt training (p_text > 0) needs a model with a text path "
                            "(sambench train --text-encoder NAME adds one)")
    if not cfg.text_encoder:
        raise SambenchError("text-prompt training (p_text > 0) needs a text encoder (--text-encoder)")
    if cfg.text_route == "clip-image":
        from sambench.text.clip_image import ClipMaskEmbedder

        name, folder = split_spec(cfg.text_encoder)
        if name != "clip" or not folder:
            raise SambenchError("the clip-image text route needs --text-encoder clip:DIR: the image "
                                "tower makes the training prompts, the text tower of the same model "
                                "the inference ones")
        embedder = ClipMaskEmbedder(folder, cfg.device)
        if embedder.dim != sam.config.text_dim:
            raise SambenchError(f"CLIP in {folder} embeds to {embedder.dim}-d, the model's text path "
                                f"takes {sam.config.text_dim}-d")
        return embedder
    if cfg.text_route != "phrases":
        raise SambenchError(f"unknown text route {cfg.text_route!r} (known: phrases, clip-image)")
    if any(ex.text_embeddings is None for ex in examples):
        attach_text(examples, load_text_encoder(cfg.text_encoder, dim=sam.config.text_dim), cfg.rephrase)
    return None


def whiten_text_projection(sam: nn.Module, examples: list[Example]) -> None:
    """Initialise a new text path from the training phrases: the projection whitens their
    embeddings along the top principal directions (bias = −W·mean). Sentence embeddings of
    short phrases differ little ("a red disc" vs "a blue disc": cosine ~0.9), so a random
    projection leaves the tokens nearly equal and text learning starts very slowly."""
    table = np.concatenate([ex.text_embeddings.reshape(-1, ex.text_embeddings.shape[-1]) for ex in examples])
    table = np.unique(table, axis=0).astype(np.float64)
    mean = table.mean(0)
    _, sing, vt = np.linalg.svd(table - mean, full_matrices=False)
    proj = sam.prompt_encoder.text_proj
    k = min(proj.out_features, len(sing))
    std = sing[:k] / np.sqrt(max(len(table) - 1, 1))
    weight = np.zeros((proj.out_features, proj.in_features))
    weight[:k] = vt[:k] / np.maximum(std, 1e-6)[:, None]
    with torch.no_grad():
        proj.weight.copy_(torch.from_numpy(weight))
        proj.bias.copy_(torch.from_numpy(-weight @ mean))


def _average_gradients(sam: nn.Module, world_size: int) -> None:
    """Mean of every gradient over the ranks, in one flat all-reduce (plus one for which
    parameters any rank used). A rank that did not use a parameter this step (a box embedding
    when its prompts were points) contributes zeros; one that no rank used keeps no gradient,
    so the optimizer skips it as in a single process."""
    import torch.distributed as tdist

    params = [p for p in sam.parameters() if p.requires_grad]
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
    tdist.all_reduce(used)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    tdist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p, any_rank in zip(params, used.tolist()):
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone() if any_rank else None
        offset += n


def _logged_cpu_seconds(log_path: Path, step: int) -> float:
    """The CPU time the log records at ``step`` (0 for a fresh run), so that a resumed run's
    ``cpu_seconds`` counts the whole training (the process's own time: comparable across a
    loaded machine's runs where wall time is not)."""
    if not step or not log_path.is_file():
        return 0.0
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    return next((float(r.get("cpu_seconds", 0.0)) for r in reversed(rows) if r["step"] == step), 0.0)


def _mean_over_ranks(value: float, world_size: int, device) -> float:
    import torch.distributed as tdist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return float(t) / world_size


def train(sam: nn.Module, examples: list[Example], cfg: TrainConfig, out: Path,
          val_samples: Optional[list] = None) -> dict:
    """Train ``sam`` in place; resumes from ``out/train_state.pt`` when present.

    Under ``torchrun`` every rank runs this; rank 0 validates, logs and writes checkpoints."""
    from sambench import distributed

    dist = distributed.init(cfg.device)
    device = torch.device(dist.device(cfg.device))
    cfg = replace(cfg, device=str(device))
    if cfg.bf16:
        warn_if_emulated(device, torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    sam.to(device).train()
    if cfg.drop_path:
        if not hasattr(sam.image_encoder, "set_drop_path"):
            raise SambenchError("--drop-path needs a ViT image encoder (the sam family)")
        sam.image_encoder.set_drop_path(cfg.drop_path)
    if cfg.freeze_encoder:
        sam.image_encoder.requires_grad_(False)
    image_prompts = _prepare_text(sam, examples, cfg) if cfg.p_text > 0 else None
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
        if dist.is_main and log_path.is_file():  # drop log lines of steps after the saved state
            kept = [l for l in log_path.read_text().splitlines() if json.loads(l)["step"] <= start]
            log_path.write_text("".join(l + "\n" for l in kept))
    if dist.is_main:
        (out / "train_config.json").write_text(json.dumps({**asdict(cfg), "world_size": dist.world_size},
                                                          indent=1))
    t0, c0 = time.time(), time.process_time()
    cpu0 = _logged_cpu_seconds(log_path, start) if dist.is_main else 0.0  # CPU time before a resume
    last: dict = {}
    end = min(cfg.steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.steps
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="train",
               disable=not (dist.is_main and sys.stderr.isatty()))
    for step in bar:
        lr = learning_rate(cfg, step)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"]
        optimizer.zero_grad(set_to_none=True)
        loss = train_step(sam, examples, cfg, step, dist.rank, image_prompts)
        if dist.world_size > 1:
            _average_gradients(sam, dist.world_size)
            loss = _mean_over_ranks(loss, dist.world_size, device)
        optimizer.step()
        done = step + 1
        if not dist.is_main:
            continue
        last = {"step": done, "loss": round(loss, 5), "lr": lr, "seconds": round(time.time() - t0, 1),
                "cpu_seconds": round(cpu0 + time.process_time() - c0, 1)}
        if val_samples and (done % cfg.val_every == 0 or done == end):
            last["val"] = validate(sam, val_samples, cfg.seed)
        bar.set_postfix(loss=f"{loss:.4f}", **({"val_miou1": last["val"]["miou@1"]} if "val" in last else {}))
        with open(log_path, "a") as f:
            f.write(json.dumps(last) + "\n")
        if done % cfg.save_every == 0 or done == end:
            torch.save({"model": sam.state_dict(), "optimizer": optimizer.state_dict(), "step": done},
                       state_path)
    sam.eval()
    summary = {"steps": end, "schedule_steps": cfg.steps, "final": last, "world_size": dist.world_size,
               "seconds_this_session": round(time.time() - t0, 1)}
    if dist.is_main:
        save_checkpoint(sam, out, text_encoder=cfg.text_encoder)
        (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    dist.barrier()
    return summary
