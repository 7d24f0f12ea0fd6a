"""The official ``SamAutomaticMaskGenerator`` and torchvision's NMS, run in a separate venv.

The official generator imports torchvision (``batched_nms``; the predictor's resize), and a
torchvision wheel pins one torch release, so the reference runs in its own interpreter:
``.venv-official/`` (scripts/test.sh creates it once; docs/amg.md), or the one named by
``SAMBENCH_OFFICIAL_PYTHON``. :func:`run_official` starts that interpreter on this module with
sambench importable (through a folder holding only a link to the package, so none of this
venv's packages leak into that one); ``main`` runs there and writes JSON:

- ``amg``: the official modules built for a checkpoint's inferred architecture
  (:func:`sambench.models.official.build_official_sam`), ``SamAutomaticMaskGenerator(...,
  output_mode="coco_rle", **options)`` for each option set on ``.npy`` images (optionally
  sambench's generator too, for timings in the same interpreter); records and seconds per image;
- ``nms``: ``torchvision.ops.nms`` / ``batched_nms`` on the box sets of an ``.npz``.
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

from sambench.errors import SambenchError

ENV_VAR = "SAMBENCH_OFFICIAL_PYTHON"
VENV = ".venv-official"
REQUIREMENTS = ("torch==2.14.1 torchvision==0.29.1 segment-anything==1.0 efficientsam==1.0.0 numpy pycocotools "
                "opencv-python-headless")


def official_python() -> Optional[str]:
    """The reference interpreter: ``$SAMBENCH_OFFICIAL_PYTHON``, else ``.venv-official`` at the
    repository root (beside the package) or the working directory; None when absent."""
    named = os.environ.get(ENV_VAR)
    if named:
        return named
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / VENV / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return None


def official_available(modules: tuple[str, ...] = ("torchvision.ops", "segment_anything")) -> tuple[bool, str]:
    """(usable, reason): whether the reference interpreter imports ``modules``."""
    python = official_python()
    if python is None:
        return False, (f"no {VENV}/ and ${ENV_VAR} unset: create it with `python3 -m venv {VENV} && "
                       f"{VENV}/bin/pip install {REQUIREMENTS}` (scripts/test.sh does)")
    probe = subprocess.run([python, "-c", f"import {', '.join(modules)}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"{python} cannot import {', '.join(modules)}: {probe.stderr.strip()[-300:]}"
    return True, python


def run_official(args: list[str], timeout: float = 1800, module: str = "sambench.amg.official",
                 modules: tuple[str, ...] = ("torchvision.ops", "segment_anything")) -> None:
    """Run ``python -m MODULE ARGS`` in the reference interpreter, which must import ``modules``."""
    ok, python = official_available(modules)
    if not ok:
        raise SambenchError(python)
    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as shim:
        os.symlink(package, Path(shim) / "sambench")
        env = {**os.environ, "PYTHONPATH": shim, "PYTHONNOUSERSITE": "1"}
        done = subprocess.run([python, "-m", module, *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SambenchError(f"official run failed ({' '.join(args[:1])}): {done.stderr.strip()[-2000:]}")


def official_amg(checkpoint: str, images: list[np.ndarray], settings: list[dict], repeat: int = 1,
                 implementations: tuple[str, ...] = ("official",)) -> dict:
    """Records (``coco_rle``) and seconds of the official generator, for each option set of
    ``settings`` on every image, in one interpreter start: ``{"records": {impl: [setting][image]
    -> records}, "seconds": {impl: [setting][repeat][image]}}``. With ``implementations=("official",
    "ours")`` sambench's generator (on sambench's ``sam`` model) runs in the same interpreter,
    interleaved with the official one, so timings share the torch build and machine state."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(images):
            paths.append(str(Path(tmp) / f"image{i}.npy"))
            np.save(paths[-1], np.ascontiguousarray(image))
        out = Path(tmp) / "out.json"
        run_official(["amg", "--checkpoint", str(checkpoint), "--settings", json.dumps(settings),
                      "--repeat", str(repeat), "--implementations", ",".join(implementations),
                      "--out", str(out), *paths])
        return json.loads(out.read_text())


def official_nms(cases: list[tuple[np.ndarray, np.ndarray, np.ndarray]], thresholds: list[float]) -> list[dict]:
    """torchvision's ``nms`` and ``batched_nms`` kept indices for each (boxes, scores, category
    ids) case: ``[{str(threshold): {"nms": [...], "batched_nms": [...]}}]``."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {}
        for k, (boxes, scores, idxs) in enumerate(cases):
            arrays.update({f"boxes{k}": boxes, f"scores{k}": scores, f"idxs{k}": idxs})
        np.savez(Path(tmp) / "boxes.npz", **arrays)
        out = Path(tmp) / "out.json"
        run_official(["nms", "--input", str(Path(tmp) / "boxes.npz"), "--thresholds",
                      json.dumps(thresholds), "--out", str(out)])
        return json.loads(out.read_text())


# -- what runs inside the reference interpreter ----------------------------------------------
def _amg_main(args) -> None:
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from sambench.amg.generator import AutomaticMaskGenerator
    from sambench.models import load_model
    from sambench.models.official import build_official_sam, import_official
    from sambench.models.sam.checkpoint import infer_config, read_state_dict

    if import_official().torchvision != "real":
        raise SystemExit("torchvision is not importable here: not a reference run")
    state = read_state_dict(args.checkpoint)
    sam = build_official_sam(state, infer_config(state, args.checkpoint))
    names = args.implementations.split(",")
    ours = load_model("sam", checkpoint=args.checkpoint) if "ours" in names else None
    builders = {"official": lambda options: SamAutomaticMaskGenerator(sam, output_mode="coco_rle", **options),
                "ours": lambda options: AutomaticMaskGenerator(ours, output_mode="coco_rle", **options)}
    images = [np.load(p) for p in args.images]
    records = {name: [] for name in names}
    seconds = {name: [] for name in names}
    for options in json.loads(args.settings):
        generators = {name: builders[name](options) for name in names}
        times: dict = {name: [] for name in names}
        outputs: dict = {}
        for _ in range(args.repeat):
            for name, generator in generators.items():  # interleaved: same machine state
                per_image, out = [], []
                for image in images:
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        out.append(generator.generate(image))
                    per_image.append(time.perf_counter() - t0)
                times[name].append(per_image)
                outputs[name] = out
        for name in names:
            records[name].append(outputs[name])
            seconds[name].append(times[name])
    Path(args.out).write_text(json.dumps({"records": records, "seconds": seconds, "torch": torch.__version__}))


def _nms_main(args) -> None:
    import torch
    from torchvision.ops import batched_nms, nms

    data = np.load(args.input)
    out = []
    for k in range(len(data.files) // 3):
        boxes, scores = torch.from_numpy(data[f"boxes{k}"]), torch.from_numpy(data[f"scores{k}"])
        idxs = torch.from_numpy(data[f"idxs{k}"])
        out.append({str(t): {"nms": nms(boxes, scores, t).tolist(),
                             "batched_nms": batched_nms(boxes, scores, idxs, t).tolist()}
                    for t in json.loads(args.thresholds)})
    Path(args.out).write_text(json.dumps(out))


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    amg = sub.add_parser("amg")
    amg.add_argument("--checkpoint", required=True)
    amg.add_argument("--settings", default="[{}]", help="JSON list of option dicts")
    amg.add_argument("--repeat", type=int, default=1)
    amg.add_argument("--implementations", default="official", help="official and/or ours, comma-separated")
    amg.add_argument("--out", required=True)
    amg.add_argument("images", nargs="+")
    nms = sub.add_parser("nms")
    nms.add_argument("--input", required=True)
    nms.add_argument("--thresholds", required=True)
    nms.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    {"amg": _amg_main, "nms": _nms_main}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
