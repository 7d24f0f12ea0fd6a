"""``mobilesam`` and ``hq-sam`` against their reference packages, same weights.

References: ``mobile_sam`` (PyPI ``mobilesam-mirror``) and ``segment_anything_hq`` (PyPI
``segment-anything-hq``), run in the reference venv (scripts/test.sh builds it and sets
``SAMBENCH_OFFICIAL_PYTHON``: with the variable set, a missing reference fails instead of
skipping). Random weights in the released layout (MobileSAM's classifier head included), every
tensor random, batch-norm statistics and attention-bias tables too; three image shapes;
points, boxes, points + box, padding labels, mask input, multimask on and off → low-res
logits within 1e-4, scores within 1e-5. Reduced sizes keep it to seconds; the released sizes
are ``slow``. Run with ``-s`` to see the differences.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

import sambench
from sambench.amg.official import ENV_VAR
from sambench.models import hq_sam, mobilesam
from sambench.models.family import random_checkpoint
from sambench.models.family_parity import images, ours_for_cases, prompt_cases
from sambench.models.reference import reference_available, reference_predictions
from sambench.models.sam.checkpoint import read_state_dict
from sambench.models.sam.parity import LOGIT_TOL, SCORE_TOL

NARROW = dict(prompt_embed_dim=64, mask_in_chans=8, decoder_mlp_dim=128, iou_head_hidden_dim=32)
ALL_CASES = list(range(7))


def _hq_vit_small():
    return dataclasses.replace(hq_sam.FAMILY.presets["tiny"](), **NARROW)


def _hq_tiny_vit_small():
    return hq_sam.HQTinyConfig(**dataclasses.asdict(mobilesam.small()))


# name: (family, config, options, images used, cases used, a tensor of each kind to perturb)
SETUPS = {
    "mobilesam-small": ("mobilesam", mobilesam.small, {}, 3, ALL_CASES,
                        ["image_encoder.layers.3.blocks.0.attn.attention_biases",
                         "image_encoder.layers.0.blocks.0.conv2.bn.running_var",
                         "image_encoder.patch_embed.seq.0.bn.running_mean", "image_encoder.neck.2.weight"]),
    "hq-vit-small": ("hq-sam", _hq_vit_small, {}, 3, ALL_CASES,
                     ["mask_decoder.hf_token.weight", "mask_decoder.hf_mlp.layers.2.bias",
                      "mask_decoder.compress_vit_feat.0.weight", "mask_decoder.embedding_encoder.3.bias",
                      "mask_decoder.embedding_maskfeature.0.weight", "image_encoder.blocks.0.mlp.lin2.bias"]),
    "hq-vit-small-token-only": ("hq-sam", _hq_vit_small, {"hq_token_only": True}, 1, [0, 2, 5], []),
    "light-hq-small": ("hq-sam", _hq_tiny_vit_small, {}, 1, [0, 3], ["image_encoder.layers.1.downsample.conv3.bn.weight"]),
    "mobilesam-vit_t": ("mobilesam", mobilesam.TinyViTSamConfig, {}, 1, [0, 3, 5], []),
    "hq-vit_b": ("hq-sam", hq_sam.FAMILY.presets["vit_b"], {}, 1, [0, 3, 5], []),
    "light-hq-vit_tiny": ("hq-sam", hq_sam.HQTinyConfig, {}, 1, [0, 3], []),
}
RELEASED = {"mobilesam-vit_t", "hq-vit_b", "light-hq-vit_tiny"}


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.slow) if n in RELEASED else n
                                        for n in SETUPS])
def run(request, tmp_path_factory):
    family, config, options, n_images, case_ids, perturb = SETUPS[request.param]
    ok, why = reference_available(family)
    if not ok:
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from sambench.models import get_family

    path = random_checkpoint(get_family(family), tmp_path_factory.mktemp("parity") / "model.pth", config(), seed=5)
    model = sambench.load_model(f"{family}:{path}", **options)
    pictures = dict(list(images(seed=2).items())[:n_images])
    every = prompt_cases(37, 250, seed=7)  # inside the smallest image: valid on every image
    cases = [dict(every[i], feedback=case_ids.index(every[i]["feedback"])) if every[i].get("feedback") is not None
             else every[i] for i in case_ids]
    reference = reference_predictions(family, str(path), model.info().config, list(pictures.values()), cases, options)
    yield request.param, model, pictures, cases, reference, perturb
    torch.set_num_threads(threads)


def test_parity(run):
    name, model, pictures, cases, reference, _ = run
    worst = {"embedding": 0.0, "low_res": 0.0, "scores": 0.0}
    k = model.info().capabilities.multimask_outputs
    for i, (shape, image) in enumerate(pictures.items()):
        emb = model.embed(image)
        worst["embedding"] = max(worst["embedding"], float(np.abs(emb.features.numpy() - reference["features"][i]).max()))
        ours = ours_for_cases(model, emb, cases, reference["low_res"][i], reference["scores"][i])
        for c, (low, scores) in enumerate(ours):
            ref_low, ref_scores = reference["low_res"][i][c], reference["scores"][i][c]
            assert low.shape == ref_low.shape and scores.shape == ref_scores.shape, (shape, c)
            assert scores.shape[1] == (k if cases[c]["multimask"] else 1)
            d_low, d_scores = float(np.abs(low - ref_low).max()), float(np.abs(scores - ref_scores).max())
            assert d_low <= LOGIT_TOL and d_scores <= SCORE_TOL, (shape, c, d_low, d_scores)
            worst["low_res"], worst["scores"] = max(worst["low_res"], d_low), max(worst["scores"], d_scores)
    print(f"{name} parity, worst max |diff|: {worst}")


def test_one_perturbed_tensor_breaks_parity(run, tmp_path):
    """Not vacuous: a small change to one tensor of each kind (attention-bias table, batch-norm
    statistic, HQ head, ...) moves the logits beyond the bound. A tensor the loaded model keeps
    is edited in place, so an edited TinyViT bias table must be used at once (no attention-bias
    cache outlives the weights); a batch norm, folded into its conv at load, is edited in the
    checkpoint, which is then loaded again."""
    _, model, pictures, cases, reference, perturb = run
    image = next(iter(pictures.values()))
    tensors = dict(model.sam.named_parameters(), **dict(model.sam.named_buffers()))
    for key in perturb:
        if key in tensors:
            tensor = tensors[key]
            saved = tensor.detach().clone()
            with torch.no_grad():
                tensor[(0,) * tensor.ndim] += 0.5 * (saved.abs().max() + 1)
            try:
                low, _ = ours_for_cases(model, model.embed(image), cases[:1], [], [])[0]
            finally:
                with torch.no_grad():
                    tensor.copy_(saved)
        else:
            state = read_state_dict(model.checkpoint)
            state[key][(0,) * state[key].ndim] += 0.5 * (state[key].abs().max() + 1)
            torch.save(state, tmp_path / "perturbed.pth")
            edited = sambench.load_model(f"{model.family}:{tmp_path / 'perturbed.pth'}")
            low, _ = ours_for_cases(edited, edited.embed(image), cases[:1], [], [])[0]
        diff = float(np.abs(low - reference["low_res"][0][0]).max())
        assert diff > LOGIT_TOL, (key, diff)
