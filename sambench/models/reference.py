"""A family's reference implementation, run in the reference interpreter (parity tests, benchmarks).

The reference packages (``mobile_sam`` from PyPI ``mobilesam-mirror``, ``segment_anything_hq``
from ``segment-anything-hq``) import torchvision and timm, which pin their own torch, so they
run in the reference venv (``$SAMBENCH_OFFICIAL_PYTHON`` or ``.venv-official``; scripts/test.sh
builds it), started on this module as :mod:`sambench.amg.official` does. ``main`` runs there:

- builds the reference model for a family from our inferred config (the same constructor
  calls as the package's ``build_sam``), loads the checkpoint *strictly* and only then calls
  ``.eval()`` (TinyViT caches its attention biases in ``eval()``; the package's own builder
  calls it before loading, so a model used without a later ``.eval()`` runs on stale biases);
- embeds each image with the package's ``SamPredictor.set_image`` and answers each prompt
  case with one ``SamPredictor.predict(..., return_logits=True)`` per prompt;
- writes the image embeddings, low-res logits and scores to an ``.npz``.

A case may feed back, as every prompt's ``mask_input``, the reference's own best low-res
logits (highest score) of an earlier case (``"feedback": index``), as interactive
segmentation does.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from sambench.amg.official import ENV_VAR, official_python
from sambench.errors import SambenchError

PACKAGES = {"mobilesam": "mobile_sam", "hq-sam": "segment_anything_hq"}


def reference_available(family: str) -> tuple[bool, str]:
    """(usable, reason or interpreter): whether the reference venv imports the family's package."""
    python = official_python()
    package = PACKAGES[family]
    if python is None:
        return False, f"no reference interpreter (.venv-official, ${ENV_VAR}): scripts/test.sh builds it"
    probe = subprocess.run([python, "-c", f"import {package}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"{python} cannot import {package}: {probe.stderr.strip()[-300:]}"
    return True, python


def reference_predictions(family: str, checkpoint: str, config: dict, images: list[np.ndarray],
                          cases: list[dict], options: Optional[dict] = None, repeat: int = 0,
                          timeout: float = 1800) -> dict:
    """The reference's outputs: ``{"features": [image] -> (1, C, h, w), "low_res": [image][case]
    -> (B, K, h, w), "scores": [image][case] -> (B, K), "seconds": {...}}``.

    ``cases``: dicts with ``points`` ``(B, N, 2)`` + ``labels`` ``(B, N)`` and/or ``boxes``
    ``(B, 4)``, ``multimask`` (bool) and optionally ``feedback`` (an earlier case's index).
    ``options``: the family's (``hq_token_only``). ``repeat`` > 0 also times the embedding and
    the per-prompt decoding (``seconds``: ``embed`` per image, ``decode`` per case).
    """
    ok, python = reference_available(family)
    if not ok:
        raise SambenchError(python)
    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"image{i}": np.ascontiguousarray(image) for i, image in enumerate(images)}
        meta = []
        for c, case in enumerate(cases):
            for key in ("points", "labels", "boxes"):
                if case.get(key) is not None:
                    arrays[f"case{c}.{key}"] = np.asarray(case[key])
            meta.append({"multimask": bool(case.get("multimask", True)), "feedback": case.get("feedback")})
        np.savez(Path(tmp) / "in.npz", **arrays)
        spec = {"family": family, "checkpoint": str(checkpoint), "config": config, "cases": meta,
                "images": len(images), "options": options or {}, "repeat": repeat}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        os.symlink(package, Path(tmp) / "sambench")
        env = {**os.environ, "PYTHONPATH": tmp, "PYTHONNOUSERSITE": "1", "PYTHONWARNINGS": "ignore"}
        done = subprocess.run([python, "-m", "sambench.models.reference", tmp], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise SambenchError(f"reference run for {family} failed: {done.stderr.strip()[-2000:]}")
        out = np.load(Path(tmp) / "out.npz")
        result = {"features": [out[f"features{i}"] for i in range(len(images))],
                  "low_res": [[out[f"low_res{i}.{c}"] for c in range(len(cases))] for i in range(len(images))],
                  "scores": [[out[f"scores{i}.{c}"] for c in range(len(cases))] for i in range(len(images))],
                  "seconds": json.loads((Path(tmp) / "seconds.json").read_text())}
    return result


# -- what runs inside the reference interpreter ----------------------------------------------
def _decoder_kwargs(config: dict) -> dict:
    return dict(num_multimask_outputs=config["num_multimask_outputs"],
                transformer_dim=config["prompt_embed_dim"], iou_head_depth=config["iou_head_depth"],
                iou_head_hidden_dim=config["iou_head_hidden_dim"])


def _build(family: str, config: dict):
    """The package's ``Sam`` for our config, and its ``SamPredictor`` class."""
    from functools import partial

    import torch

    package = __import__(PACKAGES[family], fromlist=["modeling", "predictor"])
    m = package.modeling
    c = config
    grid = c["grid"] if "grid" in c else c["img_size"] // c["patch_size"]
    if "embed_dims" in c:  # TinyViT (MobileSAM, Light HQ-SAM)
        encoder = m.TinyViT(img_size=c["img_size"], in_chans=3, num_classes=1000, embed_dims=c["embed_dims"],
                            depths=c["depths"], num_heads=[max(h, 1) for h in c["num_heads"]],
                            window_sizes=[w or 7 for w in c["window_sizes"]], mlp_ratio=c["mlp_ratio"],
                            drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False,
                            mbconv_expand_ratio=c["mbconv_expand_ratio"], local_conv_size=c["local_conv_size"],
                            layer_lr_decay=0.8)
        vit_dim = c["embed_dims"][2] if len(c["embed_dims"]) > 2 else c["embed_dims"][-1]
    else:  # SAM's ViT (HQ-SAM vit_b/l/h)
        encoder = m.ImageEncoderViT(depth=c["depth"], embed_dim=c["embed_dim"], img_size=c["img_size"],
                                    mlp_ratio=c["mlp_dim"] / c["embed_dim"],
                                    norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=c["num_heads"],
                                    patch_size=c["patch_size"], qkv_bias=c["qkv_bias"], use_rel_pos=True,
                                    global_attn_indexes=c["global_attn_indexes"], window_size=c["window_size"],
                                    out_chans=c["prompt_embed_dim"])
        vit_dim = c["embed_dim"]
    transformer = m.TwoWayTransformer(depth=c["decoder_depth"], embedding_dim=c["prompt_embed_dim"],
                                      mlp_dim=c["decoder_mlp_dim"], num_heads=c["decoder_num_heads"],
                                      attention_downsample_rate=c["attention_downsample_rate"])
    if family == "hq-sam":
        decoder = m.MaskDecoderHQ(transformer=transformer, vit_dim=vit_dim, **_decoder_kwargs(c))
    else:
        decoder = m.MaskDecoder(transformer=transformer, **_decoder_kwargs(c))
    sam = m.Sam(image_encoder=encoder,
                prompt_encoder=m.PromptEncoder(embed_dim=c["prompt_embed_dim"], image_embedding_size=(grid, grid),
                                               input_image_size=(c["img_size"], c["img_size"]),
                                               mask_in_chans=c["mask_in_chans"]),
                mask_decoder=decoder, pixel_mean=c["pixel_mean"], pixel_std=c["pixel_std"])
    return sam, package.predictor.SamPredictor


def _main(folder: str) -> None:
    import torch

    from sambench.models.sam.checkpoint import read_state_dict

    root = Path(folder)
    spec = json.loads((root / "spec.json").read_text())
    data = np.load(root / "in.npz")
    sam, predictor_class = _build(spec["family"], spec["config"])
    sam.load_state_dict(read_state_dict(spec["checkpoint"]), strict=True)
    sam.eval()  # after loading: TinyViT's eval() caches the attention biases of these weights
    predictor = predictor_class(sam)
    extra = {"hq_token_only": bool(spec["options"].get("hq_token_only", False))} if spec["family"] == "hq-sam" else {}
    out, seconds = {}, {"embed": [], "decode": []}

    def predict_case(c, case, previous):
        get = lambda key: data[f"case{c}.{key}"] if f"case{c}.{key}" in data.files else None  # noqa: E731
        points, labels, boxes = get("points"), get("labels"), get("boxes")
        size = len(points) if points is not None else len(boxes)
        masks = None
        if case["feedback"] is not None:
            low, scores = previous[case["feedback"]]
            best = low[np.arange(len(low)), scores.argmax(1)]
            masks = best[np.arange(size) % len(best)][:, None]
        low_res, scores = [], []
        for b in range(size):
            _, s, lr = predictor.predict(
                point_coords=None if points is None else points[b],
                point_labels=None if labels is None else labels[b],
                box=None if boxes is None else boxes[b],
                mask_input=None if masks is None else masks[b],
                multimask_output=case["multimask"], return_logits=True, **extra)
            low_res.append(lr)
            scores.append(s)
        return np.stack(low_res), np.stack(scores)

    with torch.no_grad():
        for i in range(spec["images"]):
            image = data[f"image{i}"]
            for _ in range(spec["repeat"]):
                t0 = time.perf_counter()
                predictor.set_image(image)
                seconds["embed"].append(time.perf_counter() - t0)
            predictor.set_image(image)
            out[f"features{i}"] = predictor.features.float().numpy()
            previous = []
            for c, case in enumerate(spec["cases"]):
                low, scores = predict_case(c, case, previous)
                previous.append((low, scores))
                out[f"low_res{i}.{c}"], out[f"scores{i}.{c}"] = low, scores
                for _ in range(spec["repeat"]):
                    t0 = time.perf_counter()
                    predict_case(c, case, previous)
                    seconds["decode"].append(time.perf_counter() - t0)
    np.savez(root / "out.npz", **out)
    (root / "seconds.json").write_text(json.dumps(seconds))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
