"""Write EfficientSAM golden outputs from the upstream source, for tests/test_efficientsam_parity.py.

EfficientSAM (github.com/yformer/EfficientSAM) has no package on PyPI (the ``efficientsam``
distribution there is EfficientViT-SAM, another model), so the reference is its source at a
pinned commit. This script imports upstream's ``efficient_sam`` package from a checkout, loads
our seeded random weights (``sambench.models.efficientsam.family``, upstream's key
names, every tensor randomised) into upstream's modules with ``strict=True``, runs images and
prompts through upstream's own preprocessing and ``predict_masks``, and saves the outputs.

Get the checkout (only the ``efficient_sam/`` folder is used; the sha256 of each of its files
is checked against the pinned commit below)::

    git clone https://github.com/yformer/EfficientSAM /tmp/EfficientSAM
    git -C /tmp/EfficientSAM checkout d525f622e6f640acf5a0fc37c7ca1f243da5bde0

Run it with torch and torchvision (upstream's only dependencies), from the repository root::

    PYTHONPATH=$PWD python scripts/golden_efficientsam.py /tmp/EfficientSAM

It writes ``tests/fixtures/efficientsam_golden.npz``: per case the image, the prompts in
upstream's form (box corners as points labelled 2 / 3, placed first) and in ours, the low-res
logits (strided: see ``MODELS``), the scores, for some cases the logits upsampled to the image,
and a digest of the weights of each model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sambench.models.base import weights_digest  # noqa: E402
from sambench.models.efficientsam.family import make_config, random_state_dict  # noqa: E402

UPSTREAM_COMMIT = "d525f622e6f640acf5a0fc37c7ca1f243da5bde0"  # efficient_sam/ last changed in fbf2208
UPSTREAM_SHA256 = {
    "__init__.py": "a51ddd61b771398c8c6240f875a8e51428180c84aa7af3fd086c5917baeebb93",
    "build_efficient_sam.py": "e4265fadd085789c31ff7fab95323e7d05f28dad321c4d3741b4e91be6a32cc5",
    "efficient_sam.py": "bcbc4249144cd3c146b1151013ae41d21194c8b19f3e9f8274bf47ae87804ae7",
    "efficient_sam_decoder.py": "4b0af178822f9a1d455d35d439f7499f9414eb288eb6850c3af953a8222211ca",
    "efficient_sam_encoder.py": "5e74b608ffbf087e7acc5ce46ca12aaa6c206891014bb7594ff35d3265b97777",
    "mlp.py": "f6ef4945ef9a0b94ad2a4ff405e81718a7e73fb10423c36a6f69663e0790070a",
    "two_way_transformer.py": "bf1e5e1fc5693ca6a56eb89b349f1cb38ca55e38fa7b3a236b140b5738ec2808",
}
OUT = REPO / "tests" / "fixtures" / "efficientsam_golden.npz"

# Models: (preset, overrides, seed, stride). "wide" has three upscaling steps (GroupNorm twice),
# other head counts and a position table smaller than its grid; "vit_t" is the released ViT-Ti
# architecture at 1024. Low-res logits are kept at every ``stride``-th pixel (file size).
MODELS = {
    "tiny": ("tiny", {}, 1, 1),
    "wide": ("tiny", {"depth": 3, "embed_dim": 48, "num_heads": 3, "mlp_dim": 96, "decoder_num_heads": 2,
                      "upscaling_dims": (16, 8, 4), "pretrain_grid": 7}, 2, 2),
    "vit_t": ("vit_t", {}, 3, 8),
}
# Cases: (model, image (H, W), prompt kind, prompts, clicks per prompt, multimask, keep the
# logits upsampled to the image).
CASES = [
    ("tiny", (40, 56), "points", 3, 1, True, False),
    ("tiny", (40, 56), "points", 2, 3, False, False),
    ("tiny", (40, 56), "box", 2, 0, True, True),
    ("tiny", (40, 56), "box+points", 2, 2, False, False),
    ("tiny", (40, 56), "points", 1, 6, True, False),
    ("wide", (64, 47), "points", 2, 2, True, False),
    ("wide", (64, 47), "box+points", 3, 1, True, False),
    ("wide", (64, 47), "box", 1, 0, False, True),
    ("vit_t", (30, 45), "points", 2, 2, True, False),
    ("vit_t", (30, 45), "box+points", 1, 1, False, False),
]


def check_upstream(root: Path) -> None:
    package = root / "efficient_sam"
    for name, digest in UPSTREAM_SHA256.items():
        path = package / name
        if not path.is_file():
            sys.exit(f"{path} not found: pass a checkout of yformer/EfficientSAM at {UPSTREAM_COMMIT}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            sys.exit(f"{path} differs from yformer/EfficientSAM at {UPSTREAM_COMMIT}")


def upstream_model(config):
    """Upstream's modules with our config's numbers (``build_efficient_sam`` fixes all but two)."""
    from efficient_sam.efficient_sam import EfficientSam
    from efficient_sam.efficient_sam_decoder import MaskDecoder, PromptEncoder
    from efficient_sam.efficient_sam_encoder import ImageEncoderViT
    from efficient_sam.two_way_transformer import TwoWayTransformer

    c = config
    encoder = ImageEncoderViT(img_size=c.img_size, patch_size=c.patch_size, in_chans=3,
                              patch_embed_dim=c.embed_dim, normalization_type="layer_norm", depth=c.depth,
                              num_heads=c.num_heads, mlp_ratio=c.mlp_dim / c.embed_dim,
                              neck_dims=[c.neck_dim, c.neck_dim], act_layer=torch.nn.GELU)
    if c.pretrain_grid != 14:  # upstream hard-codes the 224-px table: resize the parameter
        encoder.pos_embed = torch.nn.Parameter(torch.zeros(1, 1 + c.pretrain_grid ** 2, c.embed_dim))
    transformer = TwoWayTransformer(depth=c.decoder_depth, embedding_dim=c.neck_dim,
                                    num_heads=c.decoder_num_heads, mlp_dim=c.decoder_mlp_dim,
                                    activation=torch.nn.GELU, normalize_before_activation=False,
                                    attention_downsample_rate=c.attention_downsample_rate)
    decoder = MaskDecoder(transformer_dim=c.neck_dim, transformer=transformer,
                          num_multimask_outputs=c.num_multimask_outputs, activation=torch.nn.GELU,
                          normalization_type="layer_norm", normalize_before_activation=False,
                          iou_head_depth=c.iou_head_layers, iou_head_hidden_dim=c.iou_head_hidden_dim,
                          upscaling_layer_dims=list(c.upscaling_dims))
    prompt = PromptEncoder(embed_dim=c.neck_dim, image_embedding_size=(c.grid, c.grid),
                           input_image_size=(c.img_size, c.img_size))
    return EfficientSam(encoder, prompt, c.max_points, decoder).eval()


def make_prompts(rng, shape, kind, n_prompts, n_clicks):
    """Our form (box (B, 4) or None, points (B, n, 2) or None, labels) and upstream's points."""
    h, w = shape
    box = pts = lbl = None
    if "box" in kind:
        x0, x1 = np.sort(rng.integers(0, w, (n_prompts, 2)), 1).T
        y0, y1 = np.sort(rng.integers(0, h, (n_prompts, 2)), 1).T
        box = np.stack([x0, y0, x1 + 1, y1 + 1], 1).astype(np.float32)
    if n_clicks:
        pts = np.stack([rng.integers(0, w, (n_prompts, n_clicks)), rng.integers(0, h, (n_prompts, n_clicks))],
                       -1).astype(np.float32)
        lbl = rng.integers(0, 2, (n_prompts, n_clicks)).astype(np.int64)
        lbl[:, 0] = 1
    up_pts, up_lbl = [], []
    if box is not None:
        up_pts.append(box.reshape(-1, 2, 2))
        up_lbl.append(np.tile(np.array([2, 3], np.int64), (n_prompts, 1)))
    if pts is not None:
        up_pts.append(pts)
        up_lbl.append(lbl)
    return box, pts, lbl, np.concatenate(up_pts, 1), np.concatenate(up_lbl, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path, help="checkout of yformer/EfficientSAM at the pinned commit")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    check_upstream(args.upstream)
    sys.path.insert(0, str(args.upstream))
    from torchvision.transforms import ToTensor

    torch.manual_seed(0)
    models, data, manifest = {}, {}, []
    for name, (preset, overrides, seed, _) in MODELS.items():
        config = make_config(preset, **overrides)
        state = random_state_dict(config, seed)
        model = upstream_model(config)
        model.load_state_dict(state, strict=True)  # our layout is upstream's, key for key
        models[name] = (model, config)
        data[f"{name}_digest"] = np.array(weights_digest(state))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for i, (name, shape, kind, n_prompts, n_clicks, multimask, upsampled) in enumerate(CASES):
            model, config = models[name]
            image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            box, pts, lbl, up_pts, up_lbl = make_prompts(rng, shape, kind, n_prompts, n_clicks)
            tensor = ToTensor()(image)[None]
            embedding = model.get_image_embeddings(tensor)
            args_ = (embedding, torch.from_numpy(up_pts)[None], torch.from_numpy(up_lbl)[None], multimask,
                     shape[0], shape[1])
            low_res, scores = model.predict_masks(*args_)
            stride = MODELS[name][3]
            key = f"case{i}_"
            data[key + "image"] = image
            for field, value in (("box", box), ("points", pts), ("labels", lbl)):
                if value is not None:
                    data[key + field] = value
            data[key + "upstream_points"], data[key + "upstream_labels"] = up_pts, up_lbl
            logits = low_res[0].numpy()
            data[key + "low_res"] = logits[..., ::stride, ::stride]
            data[key + "scores"] = scores[0].numpy()
            if upsampled:
                data[key + "upsampled"] = model.predict_masks(*args_, shape[0], shape[1])[0][0].numpy()
            manifest.append({"case": i, "model": name, "kind": kind, "multimask": multimask, "stride": stride})
    data["manifest"] = np.array(json.dumps({"upstream_commit": UPSTREAM_COMMIT, "cases": manifest,
                                            "models": {k: [p, {f: list(v) if isinstance(v, tuple) else v
                                                               for f, v in o.items()}, s]
                                                       for k, (p, o, s, _) in MODELS.items()}}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(CASES)} cases)")


if __name__ == "__main__":
    main()
