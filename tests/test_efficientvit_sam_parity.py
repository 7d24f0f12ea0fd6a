"""Our EfficientViT-SAM (``efficientvit-sam``) against the reference (PyPI ``efficientsam`` 1.0.0).

The reference runs in the reference venv (``.venv-official`` or ``$SAMBENCH_OFFICIAL_PYTHON``;
scripts/test.sh installs ``efficientsam`` there and sets the variable, so in CI a missing
reference fails instead of skipping) with its own ``EfficientViTSamPredictor``. Both load the
same checkpoint of random weights in the reference layout (every tensor random, batch-norm
running statistics included), ours with its batch norms folded. Two reduced-width configs
keep the real architecture of each input size: an L-type (5 stages, 512-px input, ResBlock,
FusedMBConv, MBConv and EfficientViT attention blocks with 5×5 aggregation) and an XL-type
(6 stages, 1024 px, 3×3 aggregation, an empty first stage, a 4×-expanding neck); the full L0
runs in the slow suite. Several image shapes; points, boxes, points + box, mask inputs,
multimask on and off, batched on our side; fp32 low-res logits within 1e-4, scores within
1e-5; the embeddings agree too. A perturbed tensor must break the bound.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import sambench
from sambench.amg.official import ENV_VAR, official_available
from sambench.models.efficientvit_sam.encoder import PRESETS, EfficientViTSamConfig
from sambench.models.efficientvit_sam.family import FAMILY
from sambench.models.efficientvit_sam.official import REFERENCE_MODULES, reference_predictions
from sambench.models.sam.parity import LOGIT_TOL, SCORE_TOL, ellipse_mask_input, synthetic_image

TINY_L = EfficientViTSamConfig(widths=(8, 16, 24, 32, 48), depths=(1, 1, 1, 2, 2),
                               blocks=("res", "fmb", "fmb", "mb", "att"), expands=(1, 4, 4, 4, 6),
                               fewer_norm=(False, False, False, True, True), qkv_dim=8,
                               head_width=32, head_depth=2)
TINY_XL = EfficientViTSamConfig(widths=(8, 16, 16, 24, 32, 48), depths=(0, 1, 1, 1, 1, 1),
                                blocks=("res", "fmb", "fmb", "fmb", "att@3", "att@3"),
                                expands=(1, 4, 4, 4, 4, 6), fewer_norm=(False, False, False, False, True, True),
                                qkv_dim=8, head_width=32, head_depth=1, head_expand=4)
CONFIGS = {"tiny-l-512": (TINY_L, [(300, 400), (37, 250)]), "tiny-xl-1024": (TINY_XL, [(400, 300)])}
SEED = 5


def prompts_for(height: int, width: int, seed: int) -> list[dict]:
    """Points, 3 points, box, point + box, points + mask, box + mask; coordinates exact in fp32."""
    rng = np.random.default_rng(seed)

    def pts(n):
        return np.round(rng.uniform(0, 1, (n, 2)) * (width - 1, height - 1) * 4).astype(np.float32) / 4

    def box():
        corners = np.sort(rng.uniform(0, 1, (2, 2)) * (width - 1, height - 1), axis=0)
        return (np.round(corners.reshape(4) * 4) / 4).astype(np.float32)

    scale = 256 / max(height, width)
    mask = ellipse_mask_input(0.5 * width * scale, 0.5 * height * scale, 30, 20)
    return [
        dict(points=pts(1), labels=np.array([1]), multimask=True),
        dict(points=pts(3), labels=np.array([1, 0, 1]), multimask=False),
        dict(box=box(), multimask=False),
        dict(points=pts(1), labels=np.array([0]), box=box(), multimask=True),
        dict(points=pts(2), labels=np.array([1, 1]), mask_input=mask, multimask=False),
        dict(box=box(), mask_input=mask, multimask=True),
    ]


def _checkpoint(path, config, nest: bool):
    state = FAMILY.random_state_dict(config, SEED)
    torch.save({"state_dict": state} if nest else state, path)
    return str(path)


def _ours(model, images, prompts):
    out = []
    for image, per_image in zip(images, prompts):
        embedding = model.embed(image)
        preds = [model.predict(embedding, **p) for p in per_image]
        out.append((embedding, preds))
    return out


@pytest.fixture(scope="module", params=list(CONFIGS))
def run(request, tmp_path_factory):
    ok, why = official_available(REFERENCE_MODULES)
    if not ok:
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    config, sizes = CONFIGS[request.param]
    folder = tmp_path_factory.mktemp("evit")
    # the 512-px config as a nested state dict, the 1024-px one plain: both layouts load
    checkpoint = _checkpoint(folder / "random.pt", config, nest=config is TINY_L)
    images = [synthetic_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    prompts = [prompts_for(h, w, seed=10 + i) for i, (h, w) in enumerate(sizes)]
    with ThreadPoolExecutor(max_workers=1) as pool:  # the reference runs in its own process meanwhile
        reference = pool.submit(reference_predictions, checkpoint, config, images, prompts)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = sambench.load_model("efficientvit-sam", checkpoint=checkpoint)
            ours = _ours(model, images, prompts)
        finally:
            torch.set_num_threads(threads)
        reference = reference.result()
    return dict(config=config, checkpoint=checkpoint, images=images, prompts=prompts, ours=ours,
                reference=reference, model=model)


def test_config_inferred_from_the_checkpoint(run):
    assert run["model"].config == run["config"]
    info = run["model"].info().to_json()
    assert info["family"] == "efficientvit-sam" and info["config"]["img_size"] == run["config"].img_size


def test_embeddings_match(run):
    for (embedding, _), features in zip(run["ours"], run["reference"]["features"]):
        assert embedding.features.shape == features.shape == (1, 256, 64, 64)
        np.testing.assert_allclose(embedding.features.numpy(), features, atol=LOGIT_TOL, rtol=0)


def test_predictions_match(run):
    ref = run["reference"]
    for i, (_, preds) in enumerate(run["ours"]):
        for j, pred in enumerate(preds):
            low, scores = ref["low_res"][i][j], ref["scores"][i][j]
            assert pred.low_res_logits.shape == low.shape
            d_low = np.abs(pred.low_res_logits - low).max()
            d_score = np.abs(pred.scores - scores).max()
            print(f"image {i} prompt {j}: logits {d_low:.1e}, scores {d_score:.1e}")
            assert d_low <= LOGIT_TOL and d_score <= SCORE_TOL
            # masks: identical except where our logit is within 1e-3 of the threshold
            logits = run["model"].upsample(run["ours"][i][0], pred.low_res_logits, threshold=None)
            flips = (pred.masks != ref["masks"][i][j]) & (np.abs(logits) >= 1e-3)
            assert not flips.any()


def test_batched_prompts_match(run):
    """All single-point prompts of an image in one call equal the reference's one-by-one answers."""
    model, ref = run["model"], run["reference"]
    embedding, _ = run["ours"][0]
    prompts = run["prompts"][0]
    picks = [j for j, p in enumerate(prompts) if "points" in p and "box" not in p and "mask_input" not in p
             and p["multimask"]]
    batch = model.predict(embedding, points=np.stack([prompts[j]["points"] for j in picks]),
                          labels=np.stack([prompts[j]["labels"] for j in picks]), multimask=True)
    for row, j in enumerate(picks):
        assert np.abs(batch.low_res_logits[row] - ref["low_res"][0][j]).max() <= LOGIT_TOL


def test_a_perturbed_tensor_breaks_parity(run, tmp_path):
    """Not vacuous: the aggregation weights of one attention block 2 % off fail the bound."""
    state = FAMILY.random_state_dict(run["config"], SEED)
    key = next(k for k in state if "context_module.main.aggreg.0.1.weight" in k)
    state[key] = state[key] * 1.02
    path = tmp_path / "perturbed.pt"
    torch.save(state, path)
    model = sambench.load_model("efficientvit-sam", checkpoint=str(path))
    embedding = model.embed(run["images"][0])
    pred = model.predict(embedding, **run["prompts"][0][0])
    assert np.abs(pred.low_res_logits - run["reference"]["low_res"][0][0]).max() > LOGIT_TOL


@pytest.mark.slow
def test_l0_preset(tmp_path):
    """The released L0 architecture (34.8M parameters, 512-px input), every prompt kind."""
    ok, why = official_available(REFERENCE_MODULES)
    if not ok:
        pytest.fail(why) if os.environ.get(ENV_VAR) else pytest.skip(why)
    checkpoint = _checkpoint(tmp_path / "l0.pt", PRESETS["l0"], nest=True)
    images = [synthetic_image(480, 640, seed=3)]
    prompts = [prompts_for(480, 640, seed=4)]
    reference = reference_predictions(checkpoint, PRESETS["l0"], images, prompts)
    model = sambench.load_model("efficientvit-sam", checkpoint=checkpoint)
    assert model.config.variant == "l0"
    (embedding, preds), = _ours(model, images, prompts)
    for j, pred in enumerate(preds):
        assert np.abs(pred.low_res_logits - reference["low_res"][0][j]).max() <= LOGIT_TOL
        assert np.abs(pred.scores - reference["scores"][0][j]).max() <= SCORE_TOL
