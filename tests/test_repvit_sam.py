"""RepViT-SAM (the bundled model's family): sizes read off the tensors, recognised from its keys,
folded inference equal to the training form, and trainable with ``sambench train``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sambench
from sambench.cli import main
from sambench.datasets import CocoDataset
from sambench.errors import SambenchError
from sambench.models import detect_family
from sambench.models.family import random_checkpoint
from sambench.models.family_model import FamilyModel
from sambench.models.repvit_sam import FAMILY, PRESETS, RepViTSam, infer_config, small, trainable_module
from sambench.models.sam.parity import synthetic_image
from sambench.train.data import load_examples
from sambench.train.loop import TrainConfig, save_checkpoint, train


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    return random_checkpoint(FAMILY, tmp_path_factory.mktemp("repvit") / "small.safetensors", "small", seed=2)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_is_read_off_the_tensors(preset):
    config = PRESETS[preset]()
    with torch.device("meta"):
        state = RepViTSam(config).state_dict()
    assert infer_config(state) == config
    assert infer_config(state).variant == preset
    assert config.img_size == config.grid * config.stride


def test_bundled_architecture_sizes():
    """The bundled model's promises: a 16×16 embedding at 256 px and ≤ 5 MB of fp16 weights."""
    config = PRESETS["bundled"]()
    assert (config.img_size, config.grid, config.stride, config.low_res) == (256, 16, 16, 64)
    with torch.device("meta"):
        net = RepViTSam(config)
    n = sum(v.numel() for v in net.state_dict().values() if v.is_floating_point())
    assert 2 * n <= 5_000_000, n


def test_recognised_from_its_keys_and_not_taken_for_edgesam(small_checkpoint, one_thread):
    from safetensors.torch import load_file

    state = load_file(small_checkpoint)
    assert detect_family(state) is FAMILY
    named = sambench.load_model(f"repvit-sam:{small_checkpoint}")
    bare = sambench.load_model(str(small_checkpoint))
    assert named.info().to_json() == bare.info().to_json()
    assert named.info().to_json()["config"]["variant"] == "small"
    with pytest.raises(SambenchError, match="is a repvit-sam checkpoint, not edgesam"):
        sambench.load_model(f"edgesam:{small_checkpoint}")


def test_folded_inference_equals_the_training_form(small_checkpoint, one_thread):
    """Loading folds batch norms and RepVGG branches (prepare_inference); the function must be
    the training module's in eval mode, to float rounding."""
    from safetensors.torch import load_file

    loaded = sambench.load_model(f"repvit-sam:{small_checkpoint}")
    plain = FamilyModel(trainable_module(load_file(small_checkpoint)), FAMILY)
    image = synthetic_image(50, 70, seed=4)
    a = loaded.predict(loaded.embed(image), points=[[30, 20], [10, 40]], labels=[1, 0])
    b = plain.predict(plain.embed(image), points=[[30, 20], [10, 40]], labels=[1, 0])
    np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, rtol=0, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-5)
    assert a.low_res_logits.shape[-1] == small().low_res
    assert np.abs(a.low_res_logits).max() > 0.1  # not a degenerate output


def test_missing_position_table_is_a_clear_error(small_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(small_checkpoint)
    del state["image_encoder.pos_embed"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(SambenchError, match="pos_embed"):
        sambench.load_model(f"repvit-sam:{tmp_path / 'broken.safetensors'}")


@pytest.fixture(scope="module")
def examples(synth_dir):
    return load_examples([CocoDataset("s", synth_dir / "annotations.json", synth_dir / "images")], 64)


def _net(seed: int) -> RepViTSam:
    torch.manual_seed(seed)
    return RepViTSam(small())


def test_training_lowers_the_loss_and_resumes_exactly(examples, tmp_path, one_thread):
    cfg = dict(batch_images=2, masks_per_image=3, lr=3e-3, warmup=2, iterations=2, seed=1, loss_size=32)
    straight = _net(0)
    train(straight, examples, TrainConfig(steps=16, save_every=100, **cfg), tmp_path / "a")
    rows = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 16 and np.mean(losses[-4:]) < 0.85 * np.mean(losses[:4])
    assert all(r["cpu_seconds"] > 0 for r in rows)
    resumed = _net(0)
    train(resumed, examples, TrainConfig(steps=16, stop_at=8, save_every=8, **cfg), tmp_path / "b")
    fresh = _net(99)  # a new process builds a new model: the saved state must win, BN statistics included
    train(fresh, examples, TrainConfig(steps=16, save_every=8, **cfg), tmp_path / "b")
    for (key, a), (_, b) in zip(straight.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), key


def test_saved_checkpoint_loads_as_the_family(tmp_path, one_thread):
    net = _net(3).eval()
    save_checkpoint(net, tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "repvit-sam"
    model = sambench.load_model(str(tmp_path / "model.safetensors"))
    assert model.family == "repvit-sam"
    image = synthetic_image(40, 64, seed=5)
    direct = FamilyModel(net, FAMILY)
    a = model.predict(model.embed(image), points=[[20, 20]], labels=[1])
    b = direct.predict(direct.embed(image), points=[[20, 20]], labels=[1])
    np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, rtol=0, atol=1e-4)


def test_train_cli_builds_the_family(synth_dir, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "repvit-sam", "--arch", "small", "--dataset", f"synth-shapes={synth_dir}",
                 "--out", str(out), "--steps", "2", "--batch-images", "1", "--masks-per-image", "2",
                 "--iterations", "1", "--save-every", "1"]) == 0
    assert json.loads((out / "train_data.json").read_text())["arch"] == "small"
    again = tmp_path / "again"  # continue from the saved weights, through the family's loader
    assert main(["train", "--model", f"repvit-sam:{out / 'model.safetensors'}", "--dataset",
                 f"synth-shapes={synth_dir}", "--out", str(again), "--steps", "1", "--batch-images", "1",
                 "--masks-per-image", "2", "--iterations", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--model", "repvit-sam", "--arch", "small", "--dataset", f"synth-shapes={synth_dir}",
                 "--out", str(tmp_path / "x"), "--steps", "1", "--layer-decay", "0.8"]) == 2
    assert "--layer-decay needs a ViT image encoder" in capsys.readouterr().err
