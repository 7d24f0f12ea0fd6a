"""The sam3 adapter: equal to direct calls of Meta's sam3 package on the same reduced random
weights, end to end through the concept and point tasks, and its one-line errors.

The package imports torchvision, so everything that runs SAM 3 runs in the reference venv
(``.venv-official`` or ``$SAMBENCH_OFFICIAL_PYTHON``, where scripts/test.sh installs ``sam3``
with scikit-image, open_clip_torch and sambench's own requirements), with this checkout on
``PYTHONPATH``; in CI a missing reference fails instead of skipping. The checks that need no
model (checkpoint diagnosis, the BPE search) run here.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from sambench.amg.official import ENV_VAR, official_python
from sambench.errors import SambenchError
from sambench.models import load_model
from sambench.models.sam3.model import find_bpe, to_package_keys

REPO = Path(__file__).resolve().parents[1]
LOGIT_TOL, SCORE_TOL = 1e-5, 1e-6  # the same code on the same weights: equal up to float noise


def reference_python() -> str:
    python = official_python()
    probe = python and subprocess.run([python, "-c", "import sam3, torchvision, skimage, open_clip, yaml, pandas"],
                                      capture_output=True, text=True)
    if not python or probe.returncode != 0:
        why = "the reference venv cannot import sam3 and its image dependencies: " + (
            probe.stderr.strip()[-300:] if probe else "no venv")
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    return python


def run_reference(args: list[str], timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([reference_python(), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("sam3")
    done = run_reference([str(REPO / "tests" / "sam3_reference.py"), str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_options_reach_the_package(compared):
    assert compared["default_max_hole_area"] == 256.0 == compared["default_info"]["max_hole_area"]
    assert compared["default_info"]["confidence_threshold"] == 0.5


def test_interactive_path_equals_the_package(compared):
    cases = {k: v for k, v in compared["cases"].items() if not k.startswith(("concept", "batch"))}
    assert len(cases) == 10
    for name, case in cases.items():
        assert case["masks_differ"] == 0, name
        assert case["scores"] <= SCORE_TOL and case["low_res"] <= LOGIT_TOL, (name, case)
        assert case["k"] == (3 if "multimask" in name or name.startswith("box/") else 1), name
    assert any(case["foreground"] > 0 for case in cases.values())  # not all empty


def test_batched_prompts_equal_single_calls(compared):
    for name, case in compared["cases"].items():
        if name.startswith("batch"):
            assert case["masks_differ"] == 0 and case["scores"] <= SCORE_TOL and case["low_res"] <= LOGIT_TOL, name


def test_concept_path_equals_the_package(compared):
    for name, case in compared["cases"].items():
        if name.startswith("concept"):
            assert case["n"] == case["n_reference"] > 0, name  # threshold 0: every query is returned
            assert case["masks_differ"] == 0 and case["scores"] <= SCORE_TOL and case["boxes"] <= 1e-4, (name, case)
            assert case["features"] == 0.0


def test_concept_and_point_tasks_end_to_end(compared, tmp_path):
    ckpt = compared["checkpoint"]
    concept = run_reference(["-m", "sambench", "run", "--task", "concept", "--model", f"sam3:{ckpt}", "--dataset",
                             "synth-concepts", "--limit", "3", "--out", str(tmp_path / "c"), "--json",
                             "--no-cache", "--model-option", "max_hole_area=0"])
    assert concept.returncode == 0, concept.stderr[-3000:]
    entry = json.loads(concept.stdout.strip().splitlines()[-1])["results"][0]
    assert entry["status"] == "ok" and entry["metrics"]["pairs"] >= 2 and "cgf1" in entry["metrics"]
    assert (tmp_path / "c" / "report.html").is_file()
    point = run_reference(["-m", "sambench", "run", "--task", "point", "--model", f"sam3:{ckpt}", "--dataset",
                           "synth-shapes", "--limit", "1", "--out", str(tmp_path / "p"), "--json", "--no-cache",
                           "--no-report", "--model-option", "max_hole_area=0"])
    assert point.returncode == 0, point.stderr[-3000:]
    results = json.loads(point.stdout.strip().splitlines()[-1])
    assert results["results"][0]["status"] == "ok" and results["model"]["family"] == "sam3"
    assert results["model"]["capabilities"]["low_res_shape"] == [288, 288]


def test_the_package_still_hard_codes_cuda():
    """Our builder avoids two caches the package fills with device="cuda" at construction
    (upstream issues #587, #550). When this fails, upstream fixed it: drop the workaround."""
    done = run_reference(["-c", "import torch; assert not torch.cuda.is_available()\n"
                                "from sam3.model.position_encoding import PositionEmbeddingSine\n"
                                "PositionEmbeddingSine(num_pos_feats=256, normalize=True, precompute_resolution=1008)"])
    assert done.returncode != 0 and ("CUDA" in done.stderr or "NVIDIA" in done.stderr), done.stderr[-500:]


# -- no model needed -------------------------------------------------------------------------

def test_checkpoint_mistakes_are_one_line(tmp_path):
    good = {"detector.backbone.x": torch.zeros(2), "tracker.y": torch.zeros(2)}
    torch.save({"model": good}, tmp_path / "ok.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "ok.pt").read_bytes()[:100])
    with pytest.raises(SambenchError, match="unreadable checkpoint"):
        load_model("sam3", checkpoint=str(truncated))
    torch.save({"model": {"image_encoder.patch_embed.proj.weight": torch.zeros(2)}}, tmp_path / "sam.pt")
    with pytest.raises(SambenchError, match="not a SAM 3 checkpoint"):
        load_model("sam3", checkpoint=str(tmp_path / "sam.pt"))
    torch.save({"model": {"detector.w": torch.tensor([float("nan")])}}, tmp_path / "nan.pt")
    with pytest.raises(SambenchError, match="NaN"):
        load_model("sam3", checkpoint=str(tmp_path / "nan.pt"))
    with pytest.raises(SambenchError, match="float32"):
        load_model("sam3", checkpoint=str(tmp_path / "ok.pt"), dtype="bfloat16")
    with pytest.raises(SambenchError, match="needs a checkpoint"):
        load_model("sam3")
    # the SAM 3.1 release's layout: multiplex tracker under tracker.model.*, a tri-head neck
    for key in ("tracker.model.interactive_sam_mask_decoder.w", "detector.backbone.vision_backbone.interactive_convs.0.w",
                "detector.backbone.vision_backbone.propagation_convs.2.conv_3x3.weight"):
        torch.save({"model": {"detector.backbone.x": torch.zeros(2), key: torch.zeros(2)}}, tmp_path / "s31.pt")
        with pytest.raises(SambenchError, match=r"is a SAM 3\.1 \(Object Multiplex\) checkpoint"):
            load_model("sam3", checkpoint=str(tmp_path / "s31.pt"))


def test_bpe_search_names_the_fix(tmp_path):
    with pytest.raises(SambenchError, match="BPE vocabulary not found"):
        find_bpe(str(tmp_path / "missing.txt.gz"))
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("sam3", "open_clip")):
        with pytest.raises(SambenchError, match="install open_clip_torch"):
            find_bpe()
    (tmp_path / "v.txt.gz").write_bytes(b"x")
    assert find_bpe(str(tmp_path / "v.txt.gz")) == str(tmp_path / "v.txt.gz")


def test_key_mapping_is_the_packages():
    mapped = to_package_keys({"detector.backbone.a": 1, "tracker.sam_mask_decoder.b": 2, "other": 3})
    assert mapped == {"backbone.a": 1, "inst_interactive_predictor.model.sam_mask_decoder.b": 2, "other": 3}


def test_a_path_alone_is_recognised_as_sam3(tmp_path):
    """``--model PATH`` infers sam3 from its key prefixes (and then needs the package)."""
    torch.save({"model": {"detector.w": torch.tensor([float("nan")])}}, tmp_path / "s.pt")
    with pytest.raises(SambenchError, match="NaN"):  # reached the sam3 loader
        load_model(str(tmp_path / "s.pt"))
