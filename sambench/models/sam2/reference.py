"""The reference SAM 2 (the PyPI ``sam2`` 1.1.0, facebookresearch/sam2 at 2b90b9f), run in
the reference venv.

``sam2`` needs hydra-core, omegaconf, iopath and torchvision (its predictor's transforms), so
like the official SAM generator (:mod:`sambench.amg.official`) it runs in ``.venv-official``
(``$SAMBENCH_OFFICIAL_PYTHON``), started on this module. :func:`reference_outputs` sends a
checkpoint, its trunk config, images and prompt cases and gets back, per case, the
``SAM2ImagePredictor.predict`` outputs (clamped low-res logits, scores, masks) and which mask
token each output came from; per image, the cached features and how far our preprocessing is
from the predictor's. The model is built by ``build_sam2`` from the released config of its
version with the trunk fields overridden, and loads the checkpoint strictly.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from sambench.amg.official import run_official

IMPORTS = ("sam2.build_sam", "sam2.sam2_image_predictor", "hydra", "omegaconf", "iopath")
MODULE = "sambench.models.sam2.reference"
CONFIGS = {"2": "configs/sam2/sam2_hiera_t.yaml", "2.1": "configs/sam2.1/sam2.1_hiera_t.yaml"}


def _call(command: str, spec, out: Path, timeout: float) -> Path:
    """Run ``command`` on ``spec`` (JSON) in the reference interpreter; returns ``out``."""
    (out.parent / "spec.json").write_text(json.dumps(spec))
    run_official([command, str(out.parent / "spec.json"), str(out)], timeout, module=MODULE, modules=IMPORTS)
    return out


def _save_cases(tmp: Path, cases: list[dict]) -> list[dict]:
    """Cases as JSON: arrays as lists, mask inputs as ``.npy`` files."""
    out = []
    for k, case in enumerate(cases):
        entry = {}
        for key, value in case.items():
            if key == "mask_input" and value is not None:
                entry[key] = str(tmp / f"mask{k}.npy")
                np.save(entry[key], np.asarray(value, np.float32))
            else:
                entry[key] = np.asarray(value).tolist() if isinstance(value, np.ndarray) else value
        out.append(entry)
    return out


def reference_outputs(runs: list[dict], timeout: float = 1800) -> list[dict]:
    """Run the reference on each run, in one interpreter start. A run is a dict with
    ``checkpoint``, ``trunk`` (:class:`~.hiera.HieraConfig` fields), ``version``, ``dynamic``
    (``build_sam2``'s dynamic multimask), ``images`` (uint8 arrays) and ``cases`` (dicts with
    ``image`` (index), ``points``, ``labels``, ``box``, ``mask_input``, ``multimask``). Returns,
    per run, the arrays named ``case{k}_{low_res,scores,masks,tokens}`` and
    ``image{i}_{embed,s0,s1,preprocess_diff}``."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs = []
        for r, run in enumerate(runs):
            folder = tmp / f"run{r}"
            folder.mkdir()
            paths = []
            for i, image in enumerate(run["images"]):
                paths.append(str(folder / f"image{i}.npy"))
                np.save(paths[-1], np.ascontiguousarray(image))
            specs.append({"checkpoint": str(run["checkpoint"]), "trunk": run["trunk"],
                          "version": run["version"], "dynamic": run.get("dynamic", True),
                          "images": paths, "cases": _save_cases(folder, run["cases"])})
        with np.load(_call("parity", specs, tmp / "out.npz", timeout)) as data:
            return [{k.split("_", 1)[1]: data[k] for k in data.files if k.startswith(f"run{r}_")}
                    for r in range(len(runs))]


def run_bench(spec: dict, timeout: float = 3600) -> dict:
    """Timings of the reference predictor and of our model in the reference interpreter (see
    ``benchmarks/bench_sam2.py``); returns the JSON the run writes."""
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(_call("bench", spec, Path(tmp) / "out.json", timeout).read_text())


def reference_layouts(configs: list[str], timeout: float = 1800) -> list[dict]:
    """For each released config (e.g. ``configs/sam2.1/sam2.1_hiera_l.yaml``): ``shapes``, the
    ``{name: shape}`` of the state dict ``build_sam2`` loads strictly, and ``trunk``, the Hiera
    arguments (the config's, else ``Hiera``'s defaults)."""
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(_call("layout", configs, Path(tmp) / "out.json", timeout).read_text())


# -- what runs inside the reference interpreter ----------------------------------------------
def build_reference(checkpoint: str, trunk: dict, version: str, dynamic: bool = True):
    """``build_sam2`` on the released config of ``version`` with the trunk fields replaced."""
    from sam2.build_sam import build_sam2

    def value(v) -> str:
        return json.dumps(list(v) if isinstance(v, tuple) else v).replace(" ", "")

    overrides = [f"++model.image_encoder.trunk.{key}={value(v)}" for key, v in trunk.items()]
    channels = [trunk["embed_dim"] * 2 ** i for i in range(len(trunk["stages"]))][::-1]
    overrides.append(f"++model.image_encoder.neck.backbone_channel_list={value(channels)}")
    return build_sam2(CONFIGS[version], checkpoint, device="cpu", hydra_overrides_extra=overrides,
                      apply_postprocessing=dynamic)


def _predict(predictor, case: dict, multimask: bool):
    mask_input = np.load(case["mask_input"]) if case.get("mask_input") else None
    as_array = (lambda v: None if v is None else np.asarray(v, np.float32))
    return predictor.predict(point_coords=as_array(case.get("points")),
                             point_labels=None if case.get("labels") is None else np.asarray(case["labels"]),
                             box=as_array(case.get("box")), mask_input=mask_input,
                             multimask_output=multimask)


def _token_of(output: np.ndarray, single: np.ndarray, multi: np.ndarray) -> np.ndarray:
    """Which token (0 single, 1–3 multimask; −1 none) each ``(..., 1, h, w)`` output equals."""
    out = output.reshape(-1, *output.shape[-2:])
    single = single.reshape(-1, *single.shape[-2:])
    multi = multi.reshape(len(out), -1, *multi.shape[-2:])
    tokens = np.full(len(out), -1)
    for b in range(len(out)):
        if np.array_equal(out[b], single[b]):
            tokens[b] = 0
        else:
            hits = [k for k in range(multi.shape[1]) if np.array_equal(out[b], multi[b, k])]
            tokens[b] = 1 + hits[0] if hits else -1
    return tokens


def _parity_main(spec_path: str, out_path: str) -> None:
    import torch

    torch.set_grad_enabled(False)
    out: dict[str, np.ndarray] = {}
    for r, spec in enumerate(json.loads(Path(spec_path).read_text())):
        out.update({f"run{r}_{k}": v for k, v in _parity_run(spec).items()})
    np.savez(out_path, **out)


def _parity_run(spec: dict) -> dict[str, np.ndarray]:
    import torch
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sambench.models.sam2.family import FAMILY

    model = build_reference(spec["checkpoint"], spec["trunk"], spec["version"], spec["dynamic"])
    predictor = SAM2ImagePredictor(model)
    decoder = model.sam_mask_decoder
    preprocess = FAMILY.preprocess(None)
    out: dict[str, np.ndarray] = {}
    for i, path in enumerate(spec["images"]):
        image = np.load(path)
        ours = preprocess.image(image, "cpu")[0]
        out[f"image{i}_preprocess_diff"] = np.float64((predictor._transforms(image)[None] - ours).abs().max())
        predictor.set_image(image)
        out[f"image{i}_embed"] = predictor._features["image_embed"].numpy()
        out[f"image{i}_s0"], out[f"image{i}_s1"] = (f.numpy() for f in predictor._features["high_res_feats"])
        for k, case in enumerate(spec["cases"]):
            if case["image"] != i:
                continue
            masks, scores, low_res = _predict(predictor, case, case["multimask"])
            if case["multimask"]:
                tokens = np.broadcast_to(np.arange(1, 4), scores.shape)
            elif decoder.dynamic_multimask_via_stability:
                decoder.dynamic_multimask_via_stability = False
                single = _predict(predictor, case, False)[2]
                decoder.dynamic_multimask_via_stability = True
                tokens = _token_of(low_res, single, _predict(predictor, case, True)[2]).reshape(scores.shape)
            else:
                tokens = np.zeros(scores.shape, int)
            out.update({f"case{k}_low_res": low_res, f"case{k}_scores": scores, f"case{k}_masks": masks,
                        f"case{k}_tokens": tokens})
    return out


def _layout_main(spec_path: str, out_path: str) -> None:
    import inspect

    from hydra import compose
    from sam2.build_sam import build_sam2
    from sam2.modeling.backbones.hieradet import Hiera
    from torch import nn

    for layer in (nn.Linear, nn.modules.conv._ConvNd, nn.LayerNorm, nn.Embedding):
        layer.reset_parameters = lambda self: None  # shapes only: skip the random init
    defaults = {k: p.default for k, p in inspect.signature(Hiera.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    layouts = []
    for config in json.loads(Path(spec_path).read_text()):
        given = dict(compose(config_name=config).model.image_encoder.trunk)
        trunk = {k: list(v) if isinstance(v, (tuple, list)) or hasattr(v, "__len__") and not isinstance(v, str) else v
                 for k, v in {**defaults, **given}.items() if k != "_target_"}
        model = build_sam2(config, None, device="cpu")
        layouts.append({"shapes": {k: list(v.shape) for k, v in model.state_dict().items()}, "trunk": trunk})
    Path(out_path).write_text(json.dumps(layouts))


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """Minimum wall and process-CPU seconds of ``fn()`` over ``repeats`` calls, and its output."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


def _bench_main(spec_path: str, out_path: str) -> None:
    """Encoder and decoder timings of the reference predictor and of our model, interleaved
    in this interpreter (same torch, same machine state), with accuracy against reference fp32."""
    import contextlib

    import torch
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    import sambench

    spec = json.loads(Path(spec_path).read_text())
    torch.set_grad_enabled(False)
    image = np.load(spec["image"])
    height, width = image.shape[:2]
    reference = SAM2ImagePredictor(build_reference(spec["checkpoint"], spec["trunk"], spec["version"]))
    ours = {dtype: sambench.load_model(f"sam2:{spec['checkpoint']}", dtype=dtype) for dtype in spec["dtypes"]}
    rng = np.random.default_rng(0)
    points = (rng.uniform(0, 1, (spec["prompts"], 1, 2)) * (width - 1, height - 1)).astype(np.float32)
    clicks = (rng.uniform(0, 1, (spec["prompts"], 3, 2)) * (width - 1, height - 1)).astype(np.float32)
    labels3 = rng.integers(0, 2, (spec["prompts"], 3))
    rows = []

    def autocast(dtype):
        return (contextlib.nullcontext() if dtype == "float32"
                else torch.autocast("cpu", dtype=getattr(torch, dtype)))

    def row(name, impl, dtype, wall, cpu, **accuracy):
        rows.append(dict(part=name, impl=impl, dtype=dtype, seconds=wall, cpu_seconds=cpu, **accuracy))

    # encoder (the predictor's set_image includes its transforms, as our embed does)
    for _ in range(spec["warmup"]):
        reference.set_image(image)
        for model in ours.values():
            model.embed(image)
    timings = {}
    for _ in range(spec["repeats"]):  # interleaved: load from other processes hits all alike
        for dtype in spec["dtypes"]:
            with autocast(dtype):
                t = _timed(lambda: reference.set_image(image), 1)
            timings.setdefault(("reference", dtype), []).append(t)
            timings.setdefault(("ours", dtype), []).append(_timed(lambda: ours[dtype].embed(image), 1))
    reference.set_image(image)
    ref_embed = reference._features["image_embed"].float()
    embeddings = {dtype: model.embed(image) for dtype, model in ours.items()}
    for (impl, dtype), values in timings.items():
        extra = {}
        if impl == "ours":
            extra["embed_max_abs"] = float((embeddings[dtype].features - ref_embed).abs().max())
        row("encoder", impl, dtype, min(v[0] for v in values), min(v[1] for v in values), **extra)

    # decoder: one point per prompt, multimask; then 3 clicks + the previous logits, one mask
    ref_multi = [reference.predict(points[i], np.ones(1), multimask_output=True) for i in range(len(points))]
    ref_logits = np.stack([r[2] for r in ref_multi])
    ref_scores = np.stack([r[1] for r in ref_multi])
    feedback = np.clip(ref_logits[np.arange(len(points)), ref_scores.argmax(1)][:, None], -32, 32)
    cases = {"decoder: 1 point, multimask": (dict(points=points, labels=np.ones((len(points), 1))), True),
             "decoder: 3 clicks + mask, one mask": (dict(points=clicks, labels=labels3, mask_input=feedback), False)}
    for name, (prompt, multimask) in cases.items():
        def per_prompt():
            return [reference.predict(prompt["points"][i], prompt["labels"][i],
                                      mask_input=None if "mask_input" not in prompt else prompt["mask_input"][i],
                                      multimask_output=multimask) for i in range(len(points))]

        def batched():
            return reference.predict(prompt["points"], prompt["labels"], mask_input=prompt.get("mask_input"),
                                     multimask_output=multimask)

        wall, cpu, expected = _timed(per_prompt, spec["repeats"])
        expected_logits = np.stack([e[2] for e in expected])
        expected_scores = np.stack([e[1] for e in expected])
        row(name, "reference, one call per prompt", "float32", wall, cpu)
        wall, cpu, _ = _timed(batched, spec["repeats"])
        row(name, "reference, one batched call", "float32", wall, cpu)
        for dtype, model in ours.items():
            wall, cpu, pred = _timed(lambda: model.predict(embeddings[dtype], multimask=multimask, **prompt),
                                     spec["repeats"])
            row(name, "ours, one batched call", dtype, wall, cpu,
                logits_max_abs=float(np.abs(pred.low_res_logits - expected_logits).max()),
                scores_max_abs=float(np.abs(pred.scores - expected_scores).max()),
                mask_agreement=float((pred.masks == np.stack([e[0] for e in expected]).astype(bool)).mean()))
    Path(out_path).write_text(json.dumps({"rows": rows, "torch": torch.__version__,
                                          "threads": torch.get_num_threads()}))


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command, spec, out = argv
    {"parity": _parity_main, "layout": _layout_main, "bench": _bench_main}[command](spec, out)


if __name__ == "__main__":
    main()
