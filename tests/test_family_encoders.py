"""The efficientvit-sam and edgesam families: registration, sizes from tensors, recognition,
one-line errors, and EfficientViT-SAM's 512-px input under a 1024-px prompt frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sambench
from sambench.errors import SambenchError
from sambench.models import detect_family, get_family, list_models
from sambench.models.base import resized_shape
from sambench.models.edgesam.encoder import PRESETS as EDGE_PRESETS, RepViTConfig
from sambench.models.efficientvit_sam.encoder import PRESETS as EVIT_PRESETS, EfficientViTSamConfig
from sambench.models.family import random_checkpoint
from sambench.models.sam import write_random_checkpoint
from sambench.models.sam.parity import synthetic_image

EVIT = get_family("efficientvit-sam")
EDGE = get_family("edgesam")
TINY_EVIT = EfficientViTSamConfig(widths=(8, 16, 16, 24, 32), depths=(1, 1, 1, 1, 1),
                                  blocks=("res", "fmb", "fmb", "mb", "att"), expands=(1, 2, 2, 2, 2),
                                  fewer_norm=(False, False, False, True, True), qkv_dim=8,
                                  head_width=16, head_depth=1)
TINY_EDGE = RepViTConfig(((16, 1, True), (32, 2, False), (48, 2, True), (48, 1, False), (64, 2, False)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    return {"efficientvit-sam": random_checkpoint(EVIT, folder / "evit.pt", TINY_EVIT, seed=1, nest="state_dict"),
            "edgesam": random_checkpoint(EDGE, folder / "edge.pth", TINY_EDGE, seed=1),
            "sam": write_random_checkpoint(folder / "sam.pth", "tiny", seed=1)}


def test_registered_and_listed():
    listed = dict(list_models())
    assert "efficientvit-sam" in listed and "edgesam" in listed


@pytest.mark.parametrize("family, presets", [(EVIT, EVIT_PRESETS), (EDGE, EDGE_PRESETS)])
def test_every_released_size_is_inferred_from_the_tensors(family, presets):
    for name, config in presets.items():
        with torch.device("meta"):
            state = family.build(config).state_dict()
        assert family.detect(state)
        inferred = family.infer_config(state)
        assert inferred == config and inferred.variant == name


def test_released_parameter_counts():
    """EfficientViT-SAM README: 34.8M, 47.7M, 61.3M, 117.0M, 203.3M."""
    with torch.device("meta"):
        counts = {name: round(EVIT.build(c).num_parameters() / 1e6, 1) for name, c in EVIT_PRESETS.items()}
    assert counts == {"l0": 34.8, "l1": 47.7, "l2": 61.3, "xl0": 117.0, "xl1": 203.3}


def test_a_path_alone_infers_the_family(checkpoints, one_thread):
    image = synthetic_image(40, 60, seed=2)
    for name in ("efficientvit-sam", "edgesam"):
        state = torch.load(checkpoints[name], weights_only=True)
        assert detect_family(state.get("state_dict", state)).name == name
        inferred = sambench.load_model(str(checkpoints[name]))
        named = sambench.load_model(f"{name}:{checkpoints[name]}")
        assert inferred.info().family == name and inferred.info().to_json() == named.info().to_json()
        a = inferred.predict(inferred.embed(image), points=[[30, 20]], labels=[1])
        b = named.predict(named.embed(image), points=[[30, 20]], labels=[1])
        assert np.array_equal(a.low_res_logits, b.low_res_logits)


@pytest.mark.parametrize("named, given", [("sam", "edgesam"), ("sam", "efficientvit-sam"),
                                          ("edgesam", "efficientvit-sam"), ("efficientvit-sam", "sam")])
def test_wrong_family_is_one_line_naming_the_right_one(checkpoints, named, given):
    with pytest.raises(SambenchError) as err:
        sambench.load_model(named, checkpoint=str(checkpoints[given]))
    message = str(err.value)
    assert "\n" not in message and f"is a {given} checkpoint" in message and f"--model {given}:" in message


def test_truncated_and_pickled_files_are_one_line(checkpoints, tmp_path):
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(checkpoints["efficientvit-sam"].read_bytes()[:4096])
    with pytest.raises(SambenchError, match="truncated or not a torch file"):
        sambench.load_model("efficientvit-sam", checkpoint=str(truncated))
    pickled = tmp_path / "object.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, pickled)
    with pytest.raises(SambenchError, match="never unpickled"):
        sambench.load_model("edgesam", checkpoint=str(pickled))


def test_512_px_encoder_under_a_1024_px_prompt_frame(checkpoints, one_thread):
    model = sambench.load_model("efficientvit-sam", checkpoint=str(checkpoints["efficientvit-sam"]))
    assert model.config.img_size == 512 and model.preprocess.frame_size == 1024
    image = synthetic_image(300, 401, seed=3)
    x, frame = model.preprocess.image(image, "cpu")
    assert x.shape == (1, 3, 512, 512) and frame == resized_shape(300, 401, 1024) == (766, 1024)
    embedding = model.embed(image)
    assert embedding.features.shape == (1, 256, 64, 64) and embedding.input_size == (766, 1024)
    assert np.allclose(model.preprocess.coords(np.array([[400.0, 299.0]]), (300, 401)), [[1021.4464, 763.4467]])
    pred = model.predict(embedding, box=[10, 20, 200, 150], multimask=False)
    assert pred.low_res_logits.shape == (1, 256, 256) and pred.masks.shape == (1, 300, 401)
    info = model.info().to_json()
    assert info["config"]["preprocess"].endswith("+prompts_at_1024") and info["capabilities"]["multimask_outputs"] == 3


def test_edgesam_config_must_fuse_on_the_64_grid(tmp_path):
    bad = RepViTConfig(((16, 1, True), (32, 2, False), (48, 2, True)))  # last stage at stride 16
    path = random_checkpoint(EDGE, tmp_path / "bad.pth", bad)
    with pytest.raises(SambenchError, match="strides 16 and 32"):
        sambench.load_model("edgesam", checkpoint=str(path))
