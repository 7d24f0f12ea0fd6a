"""The reference EfficientViT-SAM (PyPI ``efficientsam`` 1.0.0), run in the reference venv.

``efficientsam`` repackages mit-han-lab/efficientvit's SAM code (docs/models.md names the
commit) and imports torchvision, so like the official SAM it runs in its own interpreter
(:func:`sambench.amg.official.run_official`). :func:`reference_predictions` writes images and
prompts to a temporary folder and starts ``main`` there, which builds the reference model for a
:class:`~.encoder.EfficientViTSamConfig` with the reference's own classes (``EfficientViTLargeBackbone``,
``SamNeck``, ``build_efficientvit_sam``, ``set_norm_eps(model, 1e-6)`` as its model zoo does),
loads the checkpoint with its ``load_state_dict_from_file`` (plain or under ``["state_dict"]``)
and answers each prompt with ``EfficientViTSamPredictor.predict`` (one prompt per call).

A prompt is a dict: ``points`` ``(N, 2)``, ``labels`` ``(N,)``, ``box`` ``(4,)``, ``mask_input``
``(1, 256, 256)``, ``multimask`` (default True). Returned per image: the embedding, and per
prompt the masks, scores and low-res logits, plus the seconds each step took.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sambench.amg.official import run_official

REFERENCE_MODULES = ("torchvision", "efficientsam")
_ARRAYS = ("points", "labels", "box", "mask_input")


def reference_predictions(checkpoint: str, config, images: list[np.ndarray], prompts: list[list[dict]],
                          repeat: int = 1, timeout: float = 1800) -> dict:
    """``{"features": [img], "masks"/"scores"/"low_res": [img][prompt], "seconds": {...}}``."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays, spec = {}, []
        for i, image in enumerate(images):
            arrays[f"image{i}"] = np.ascontiguousarray(image)
            spec.append([])
            for j, prompt in enumerate(prompts[i]):
                entry = {"multimask": bool(prompt.get("multimask", True))}
                for key in _ARRAYS:
                    if prompt.get(key) is not None:
                        arrays[f"{key}{i}_{j}"] = np.asarray(prompt[key])
                        entry[key] = f"{key}{i}_{j}"
                spec[-1].append(entry)
        np.savez(Path(tmp) / "inputs.npz", **arrays)
        (Path(tmp) / "spec.json").write_text(json.dumps({"config": asdict(config), "prompts": spec}))
        out = Path(tmp) / "out.npz"
        run_official(["--checkpoint", str(checkpoint), "--dir", tmp, "--repeat", str(repeat)],
                     timeout=timeout, module=__name__, modules=REFERENCE_MODULES)
        data = np.load(out)
        result = {"features": [data[f"features{i}"] for i in range(len(images))],
                  "seconds": json.loads((Path(tmp) / "seconds.json").read_text())}
        for key in ("masks", "scores", "low_res"):
            result[key] = [[data[f"{key}{i}_{j}"] for j in range(len(prompts[i]))] for i in range(len(images))]
        return result


def build_reference(config: dict):
    """The reference model for a config dict (fields of ``EfficientViTSamConfig``)."""
    from efficientsam.models.efficientvit.backbone import EfficientViTLargeBackbone
    from efficientsam.models.efficientvit.sam import (EfficientViTSamImageEncoder, SamNeck,
                                                      build_efficientvit_sam)
    from efficientsam.models.nn.norm import set_norm_eps

    c = config
    n = len(c["widths"])
    backbone = EfficientViTLargeBackbone(width_list=list(c["widths"]), depth_list=list(c["depths"]),
                                         block_list=list(c["blocks"]), expand_list=list(c["expands"]),
                                         fewer_norm_list=list(c["fewer_norm"]), qkv_dim=c["qkv_dim"])
    neck = SamNeck(fid_list=[f"stage{i}" for i in range(n - 1, n - 4, -1)],
                   in_channel_list=list(reversed(c["widths"][-3:])), head_width=c["head_width"],
                   head_depth=c["head_depth"], expand_ratio=c["head_expand"], middle_op=c["head_block"],
                   out_dim=c["out_dim"])
    image_size = 64 * 2 ** (n - 2)
    model = build_efficientvit_sam(EfficientViTSamImageEncoder(backbone, neck), image_size)
    set_norm_eps(model, 1e-6)
    return model


def main(argv=None) -> None:
    import argparse

    import torch
    from efficientsam.models.efficientvit.sam import EfficientViTSamPredictor
    from efficientsam.models.utils import load_state_dict_from_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    spec = json.loads((folder / "spec.json").read_text())
    inputs = np.load(folder / "inputs.npz")
    model = build_reference(spec["config"])
    model.load_state_dict(load_state_dict_from_file(args.checkpoint))
    model.eval()
    predictor = EfficientViTSamPredictor(model)
    out, seconds = {}, {"embed": [], "predict": []}
    for i, prompts in enumerate(spec["prompts"]):
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            predictor.set_image(inputs[f"image{i}"])
            seconds["embed"].append(time.perf_counter() - t0)
        out[f"features{i}"] = predictor.features.float().cpu().numpy()
        for j, prompt in enumerate(prompts):
            kwargs = {key: inputs[prompt[key]] for key in _ARRAYS if key in prompt}
            call = dict(point_coords=kwargs.get("points"), point_labels=kwargs.get("labels"),
                        box=kwargs.get("box"), mask_input=kwargs.get("mask_input"),
                        multimask_output=prompt["multimask"])
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    masks, scores, low_res = predictor.predict(**call)
                seconds["predict"].append(time.perf_counter() - t0)
            out[f"masks{i}_{j}"], out[f"scores{i}_{j}"], out[f"low_res{i}_{j}"] = masks, scores, low_res
    np.savez(folder / "out.npz", **out)
    (folder / "seconds.json").write_text(json.dumps({**seconds, "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
