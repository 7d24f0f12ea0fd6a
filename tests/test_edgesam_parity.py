"""Our EdgeSAM (``edgesam``) against golden outputs of the upstream code.

EdgeSAM is on no package registry: scripts/golden_edgesam.py ran the upstream predictor
(chongzhou96/EdgeSAM at a pinned commit) on seeded random weights of the released RepViT-m1
architecture (every tensor random, batch-norm running statistics included) and stored the
inputs, the seed, the scores, the low-res logits on a stride-7 lattice and a sample of the
embeddings in tests/fixtures/edgesam_golden.npz. Here the same weights come back from the
seed in our layout (tensors keyed by name, :mod:`sambench.models.random_weights`), our model
(batch norms and RepVGGDW branches folded) answers the same prompts on the same three images:
points, boxes, points + box, mask inputs, multimask on and off; fp32 low-res logits within
1e-4, scores within 1e-5. A perturbed tensor must break the bound.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sambench
from sambench.models.edgesam.encoder import PRESETS
from sambench.models.edgesam.family import FAMILY
from sambench.models.sam.parity import LOGIT_TOL, SCORE_TOL, ellipse_mask_input

GOLDEN = Path(__file__).parent / "fixtures" / "edgesam_golden.npz"
EMBED_SAMPLE = (slice(None), slice(None, None, 32), slice(1, None, 3), slice(2, None, 3))


def _prompt(prompt: dict) -> dict:
    call = {"multimask": prompt["multimask"]}
    if "points" in prompt:
        call.update(points=np.asarray(prompt["points"], np.float32), labels=np.asarray(prompt["labels"]))
    if "box" in prompt:
        call["box"] = np.asarray(prompt["box"], np.float32)
    if "mask_ellipse" in prompt:
        call["mask_input"] = ellipse_mask_input(*prompt["mask_ellipse"])
    return call


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    return {k: data[k] for k in data.files}


def _load(tmp_path, state) -> object:
    path = tmp_path / "edgesam.pth"
    torch.save(state, path)
    return sambench.load_model("edgesam", checkpoint=str(path))


@pytest.fixture(scope="module")
def model(golden, tmp_path_factory):
    return _load(tmp_path_factory.mktemp("edgesam"), FAMILY.random_state_dict(PRESETS["m1"], int(golden["seed"])))


@pytest.fixture(scope="module")
def ours(golden, model):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prompts = json.loads(str(golden["prompts"]))
        out = []
        for i, per_image in enumerate(prompts):
            embedding = model.embed(golden[f"image{i}"])
            out.append((embedding, [model.predict(embedding, **_prompt(p)) for p in per_image]))
        return out
    finally:
        torch.set_num_threads(threads)


def test_golden_file_is_the_pinned_upstream(golden):
    assert str(golden["upstream"]) == "chongzhou96/EdgeSAM@f255ac229031a3a1ced9c39dac037c39fc7568bb"
    assert GOLDEN.stat().st_size < 400_000


def test_architecture_inferred(model):
    assert model.config == PRESETS["m1"] and model.config.variant == "m1"
    assert model.info().params == 9_582_112  # the paper: 9.6M


def test_embeddings_match(golden, ours):
    for i, (embedding, _) in enumerate(ours):
        assert embedding.features.shape == (1, 256, 64, 64)
        sample = embedding.features[EMBED_SAMPLE].numpy()
        np.testing.assert_allclose(sample, golden[f"features{i}"], atol=LOGIT_TOL, rtol=0)


def test_predictions_match(golden, ours):
    lattice = golden["lattice"]
    for i, (_, preds) in enumerate(ours):
        for j, pred in enumerate(preds):
            low = pred.low_res_logits[:, lattice][:, :, lattice]
            d_low = np.abs(low - golden[f"low_res{i}_{j}"]).max()
            d_score = np.abs(pred.scores - golden[f"scores{i}_{j}"]).max()
            print(f"image {i} prompt {j}: logits {d_low:.1e}, scores {d_score:.1e}")
            assert low.shape == golden[f"low_res{i}_{j}"].shape
            assert d_low <= LOGIT_TOL and d_score <= SCORE_TOL


def test_batched_call_matches(golden, model, ours):
    """Two prompts of one image in one call give the golden answers of each."""
    prompts = json.loads(str(golden["prompts"]))[0]
    embedding = ours[0][0]
    lattice = golden["lattice"]
    boxes = np.stack([np.asarray(prompts[j]["box"], np.float32) for j in (2, 3)])
    pred = model.predict(embedding, box=boxes, multimask=False)
    assert np.abs(pred.low_res_logits[0][:, lattice][:, :, lattice] - golden["low_res0_2"]).max() <= LOGIT_TOL


def test_a_perturbed_tensor_breaks_parity(golden, tmp_path):
    """Not vacuous: the running variances of one batch norm 2 % off fail the bound."""
    state = FAMILY.random_state_dict(PRESETS["m1"], int(golden["seed"]))
    key = "image_encoder.features.12.channel_mixer.m.0.bn.running_var"
    state[key] = state[key] * 1.02
    model = _load(tmp_path, state)
    embedding = model.embed(golden["image0"])
    pred = model.predict(embedding, **_prompt(json.loads(str(golden["prompts"]))[0][0]))
    lattice = golden["lattice"]
    low = pred.low_res_logits[:, lattice][:, :, lattice]
    assert np.abs(low - golden["low_res0_0"]).max() > LOGIT_TOL
