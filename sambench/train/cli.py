"""``sambench train``: train or fine-tune a SAM-v1-layout model on any readable dataset."""
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
    p.add_argument("--model", default="sam", help="sam[:INIT_CHECKPOINT] (no checkpoint: from scratch)")
    p.add_argument("--arch", default="demo",
                   help=f"architecture when training from scratch: {', '.join(ARCHITECTURES)}, "
                        "vit_b, vit_l, vit_h, tiny")
    p.add_argument("--dataset", action="append", required=True, help="training data (repeatable)")
    p.add_argument("--val-dataset", action="append", default=[], help="held-out data for validation mIoU")
    p.add_argument("--val-images", type=int, default=6, help="images per validation dataset")
    p.add_argument("--data-root")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-images", type=int, default=4)
    p.add_argument("--masks-per-image", type=int, default=8)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--layer-decay", type=float, default=1.0)
    p.add_argument("--freeze-encoder", action="store_true")
    p.add_argument("--iterations", type=int, default=11, help="prompt iterations per mask (paper: 11)")
    p.add_argument("--p-box", type=float, default=0.5)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.set_defaults(func=run)


def build(model_spec: str, arch: str):
    from sambench.models import split_spec
    from sambench.models.sam.checkpoint import load_sam
    from sambench.models.sam.random_checkpoint import make_config
    from sambench.models.sam.sam import PRESETS, Sam

    name, checkpoint = split_spec(model_spec)
    if name != "sam":
        raise SambenchError(f"training supports SAM-layout models (sam[:CHECKPOINT]), not {name!r}")
    if checkpoint:
        sam, _ = load_sam(checkpoint)
        return sam
    if arch in ARCHITECTURES:
        config = make_config("tiny", **ARCHITECTURES[arch])
    elif arch in PRESETS:
        config = make_config(arch)
    else:
        raise SambenchError(f"unknown architecture {arch!r} (known: {', '.join([*ARCHITECTURES, *PRESETS])})")
    return Sam(config)


def run(args) -> int:
    import torch

    from sambench import datasets
    from sambench.train.data import load_examples
    from sambench.train.loop import TrainConfig, train

    torch.manual_seed(args.seed)  # the from-scratch initialisation
    sam = build(args.model, args.arch)
    train_sets = [datasets.resolve(d, args.data_root).open() for d in args.dataset]
    examples = load_examples(train_sets, sam.config.img_size)
    val = []
    for d in args.val_dataset:
        val += list(datasets.resolve(d, args.data_root).open())[: args.val_images]
    cfg = TrainConfig(steps=args.steps, batch_images=args.batch_images,
                      masks_per_image=args.masks_per_image, lr=args.lr,
                      weight_decay=args.weight_decay, warmup=args.warmup,
                      layer_decay=args.layer_decay, freeze_encoder=args.freeze_encoder,
                      iterations=args.iterations, p_box=args.p_box, val_every=args.val_every,
                      save_every=args.save_every, seed=args.seed, device=args.device, bf16=args.bf16)
    out = Path(args.out)
    summary = train(sam, examples, cfg, out, val)
    (out / "train_data.json").write_text(json.dumps(
        {"train": args.dataset, "val": args.val_dataset, "examples": len(examples),
         "masks": sum(len(e.masks) for e in examples), "arch": args.arch, "init": args.model}, indent=1))
    print(json.dumps(summary))
    print(f"checkpoint: {out / 'model.safetensors'} (official layout: {out / 'model.pth'})")
    return 0
