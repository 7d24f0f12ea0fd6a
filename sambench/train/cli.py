"""``sambench train``: train or fine-tune a model on SAM v1's prompt path (the ``sam`` family's
ViT, or the ``repvit-sam`` family's CNN) on any readable dataset."""
from __future__ import annotations

import json
from pathlib import Path

from sambench.errors import SambenchError

# The bundled demo model's architecture: a 256-px, ~1M-parameter SAM (patch 16, 16×16 grid).
ARCHITECTURES = {
    "demo": dict(img_size=256, patch_size=16, embed_dim=96, depth=4, num_heads=3, mlp_dim=384,
                 window_size=8, global_attn_indexes=(1, 3), prompt_embed_dim=96,
                 decoder_mlp_dim=384, iou_head_hidden_dim=96),
}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a SAM-layout model (the paper's recipe)")
    p.add_argument("--model", default="sam",
                   help="FAMILY[:INIT_CHECKPOINT], FAMILY one of sam, repvit-sam (no checkpoint: from scratch)")
    p.add_argument("--arch", default=None,
                   help=f"architecture when training from scratch: sam: {', '.join(ARCHITECTURES)} (default), "
                        "vit_b, vit_l, vit_h, tiny; repvit-sam: bundled (default), fine, small")
    p.add_argument("--dataset", action="append", required=True, help="training data (repeatable)")
    p.add_argument("--val-dataset", action="append", default=[], help="held-out data for validation mIoU")
    p.add_argument("--val-images", type=int, default=6, help="images per validation dataset")
    p.add_argument("--data-root")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2000, help="length of the run (sets the lr schedule)")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop after this step and write the checkpoint (resume later to go on)")
    p.add_argument("--batch-images", type=int, default=4)
    p.add_argument("--masks-per-image", type=int, default=8)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--layer-decay", type=float, default=1.0)
    p.add_argument("--drop-path", type=float, default=0.0,
                   help="stochastic depth rate of the last encoder block (linear in depth)")
    p.add_argument("--freeze-encoder", action="store_true")
    p.add_argument("--iterations", type=int, default=11, help="prompt iterations per mask (paper: 11)")
    p.add_argument("--p-box", type=float, default=0.5)
    p.add_argument("--p-center", type=float, default=0.0,
                   help="probability that a first point is the mask's center (the point task's "
                        "first click) instead of uniform over the mask (the paper: 0)")
    p.add_argument("--text-encoder", default="",
                   help="train text prompts with this encoder (sambench.text: minilm, clip:DIR, hash[:DIM]); "
                        "adds a text path to a model without one")
    p.add_argument("--p-text", type=float, default=0.0,
                   help="probability that a step's first prompt is text: each mask's phrase, or its CLIP crop "
                        "embedding with --text-route clip-image (needs --text-encoder)")
    p.add_argument("--text-route", choices=["phrases", "clip-image"], default="phrases",
                   help="text prompts in training: the masks' phrases, or (the SAM paper's route) CLIP "
                        "image embeddings of masked crops, with --text-encoder clip:DIR")
    p.add_argument("--no-rephrase", dest="rephrase", action="store_false",
                   help="train on the datasets' phrases as they are, not on rephrasings of the synthetic "
                        "descriptions (sambench/train/phrasing.py)")
    p.add_argument("--loss-size", type=int, default=0,
                   help="side at which masks are scored (0: the model input, the paper; smaller is cheaper)")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.set_defaults(func=run)


def build(model_spec: str, arch: str | None):
    """The model to train: a checkpoint (training form: batch norms not folded), or a fresh
    architecture of the family."""
    from sambench import hub
    from sambench.models import split_spec
    from sambench.models import repvit_sam
    from sambench.models.sam.checkpoint import read_state_dict
    from sambench.models.sam.family import load_sam
    from sambench.models.sam.random_checkpoint import make_config
    from sambench.models.sam.sam import PRESETS, Sam

    name, checkpoint = split_spec(model_spec)
    if name not in ("sam", "repvit-sam"):
        raise SambenchError(f"training supports the sam and repvit-sam families (FAMILY[:CHECKPOINT]), not {name!r}")
    if checkpoint:
        path = hub.resolve(name, checkpoint)[1]  # sam:vit_b: the official checkpoint, fetched
        if name == "repvit-sam":
            return repvit_sam.trainable_module(read_state_dict(path), str(path))
        return load_sam(path)[0]
    if name == "repvit-sam":
        arch = arch or "bundled"
        if arch not in repvit_sam.PRESETS:
            raise SambenchError(f"unknown repvit-sam architecture {arch!r} (known: {', '.join(repvit_sam.PRESETS)})")
        return repvit_sam.RepViTSam(repvit_sam.PRESETS[arch]())
    arch = arch or "demo"
    if arch in ARCHITECTURES:
        return Sam(make_config("tiny", **ARCHITECTURES[arch]))
    if arch in PRESETS:
        return Sam(make_config(arch))
    raise SambenchError(f"unknown architecture {arch!r} (known: {', '.join([*ARCHITECTURES, *PRESETS])})")


def with_text_path(sam, text_dim: int):
    """``sam`` with a text path for ``text_dim``-d embeddings: itself if it has one, else a copy
    with every weight kept and a freshly initialised ``prompt_encoder.text_proj``."""
    from dataclasses import replace

    if sam.config.text_dim == text_dim:
        return sam
    if sam.config.text_dim:
        raise SambenchError(f"the model's text path takes {sam.config.text_dim}-d embeddings, the "
                            f"text encoder gives {text_dim}-d")
    new = type(sam)(replace(sam.config, text_dim=text_dim))
    missing, unexpected = new.load_state_dict(sam.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("prompt_encoder.text_proj.") for k in missing)
    return new


def run(args) -> int:
    import torch

    from sambench import datasets
    from sambench.train.data import attach_text, load_examples
    from sambench.train.loop import TrainConfig, train, whiten_text_projection

    for flag in ("p_box", "p_center", "p_text"):
        if not 0 <= getattr(args, flag) <= 1:
            raise SambenchError(f"--{flag.replace('_', '-')} is a probability: {getattr(args, flag)} is not in [0, 1]")
    encoder = None
    if args.text_encoder:
        from sambench.text import load_text_encoder

        encoder = load_text_encoder(args.text_encoder)
    elif args.p_text > 0:
        raise SambenchError("--p-text needs --text-encoder")
    torch.manual_seed(args.seed)  # the from-scratch initialisation (and a new text path's)
    sam = build(args.model, args.arch)
    new_text_path = encoder is not None and not sam.config.text_dim
    if encoder is not None:
        sam = with_text_path(sam, encoder.dim)
    train_sets = [datasets.resolve(d, args.data_root).open() for d in args.dataset]
    examples = load_examples(train_sets, sam.config.img_size)
    if encoder is not None and args.p_text > 0 and args.text_route == "phrases":
        attach_text(examples, encoder, args.rephrase)
        if new_text_path:
            whiten_text_projection(sam, examples)
    val = []
    for d in args.val_dataset:
        val += list(datasets.resolve(d, args.data_root).open())[: args.val_images]
    cfg = TrainConfig(
        steps=args.steps, batch_images=args.batch_images, masks_per_image=args.masks_per_image,
        lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, layer_decay=args.layer_decay,
        drop_path=args.drop_path, freeze_encoder=args.freeze_encoder, iterations=args.iterations,
        p_box=args.p_box, p_center=args.p_center, p_text=args.p_text, text_encoder=args.text_encoder,
        rephrase=args.rephrase, text_route=args.text_route,
        loss_size=args.loss_size, val_every=args.val_every, save_every=args.save_every,
        stop_at=args.stop_at, seed=args.seed, device=args.device, bf16=args.bf16)
    out = Path(args.out)
    summary = train(sam, examples, cfg, out, val)
    (out / "train_data.json").write_text(json.dumps(
        {"train": args.dataset, "val": args.val_dataset, "examples": len(examples),
         "masks": sum(len(e.masks) for e in examples), "arch": args.arch, "init": args.model}, indent=1))
    print(json.dumps(summary))
    layout = "official layout" if args.model.partition(":")[0] == "sam" else "plain state dict"
    print(f"checkpoint: {out / 'model.safetensors'} ({layout}: {out / 'model.pth'})")
    return 0
