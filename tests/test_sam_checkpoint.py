"""Checkpoint reading and architecture inference for ``sam`` (and ``sam-official``)."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

import sambench
from sambench.errors import SambenchError
from sambench.models.sam import (PRESETS, Sam, SamConfig, describe, infer_config, make_config,
                                 read_state_dict, write_random_checkpoint)
from sambench.models.sam.random_checkpoint import random_state_dict


pytestmark = pytest.mark.usefixtures("one_thread")


def _meta_state(config: SamConfig) -> dict:
    """Shapes only: lets us check ViT-L/H inference without 1-2.5 GB of weights."""
    with torch.device("meta"):
        return Sam(config).state_dict()


def _effective(config: SamConfig) -> tuple:
    """What determines the computation (a window as large as the grid is global attention)."""
    windows = tuple(0 if i in config.global_attn_indexes or config.window_size in (0, config.grid)
                    else config.window_size for i in range(config.depth))
    fields = dataclasses.asdict(config)
    del fields["global_attn_indexes"], fields["window_size"]
    return windows, tuple(sorted(fields.items()))


@pytest.mark.parametrize("config", [
    PRESETS["vit_b"](), PRESETS["vit_l"](), PRESETS["vit_h"](), PRESETS["tiny"](),
    make_config("tiny", img_size=512, patch_size=8, embed_dim=48, depth=3, num_heads=3,
                window_size=14, global_attn_indexes=[0, 2], prompt_embed_dim=128, mask_in_chans=8,
                decoder_mlp_dim=256, iou_head_hidden_dim=64, iou_head_depth=2, decoder_depth=1,
                num_multimask_outputs=2, qkv_bias=False),
    make_config("tiny", window_size=0, global_attn_indexes=[]),
    make_config("tiny", img_size=320, window_size=6, global_attn_indexes=[]),
], ids=["vit_b", "vit_l", "vit_h", "tiny", "custom", "all-global", "no-global"])
def test_infer_config(config):
    inferred = infer_config(_meta_state(config))
    assert _effective(inferred) == _effective(config)
    if config.window_size not in (0, config.grid):
        assert inferred == config


def test_variant_names():
    assert infer_config(_meta_state(PRESETS["vit_h"]())).variant == "vit_h"
    assert make_config("tiny", depth=3).variant == "custom"


@pytest.mark.parametrize("layout", ["plain.pth", "nested-model.pth", "nested-state_dict.pth",
                                    "ddp.pth", "flat.safetensors"])
def test_layouts_load_the_same_weights(layout, tmp_path):
    config = PRESETS["tiny"]()
    state = random_state_dict(config, seed=4)
    path = tmp_path / layout
    if layout.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif layout.startswith("nested"):
        torch.save({"epoch": 3, layout.split("-")[1][:-4]: state}, path)
    elif layout == "ddp.pth":
        torch.save({"module." + k: v for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    model = sambench.load_model("sam", checkpoint=str(path))
    loaded = model.sam.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert model.config == config


def test_info_records_hash_params_and_config(tmp_path):
    path = write_random_checkpoint(tmp_path / "tiny.pth", "tiny")
    info = sambench.load_model(f"sam:{path}").info()
    assert info.name == "sam" and info.family == "sam" and info.checkpoint == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.params == 4_839_792
    assert info.config["variant"] == "tiny" and info.config["global_attn_indexes"] == [1]
    assert info.config["pixel_mean"] == [123.675, 116.28, 103.53]
    assert describe(path) == info.to_json() == describe(f"sam:{path}")


def test_vit_b_parameter_count_matches_the_released_model():
    with torch.device("meta"):
        assert Sam(PRESETS["vit_b"]()).num_parameters() == 93_735_472


def test_missing_keys_are_named(tmp_path):
    state = random_state_dict(PRESETS["tiny"]())
    del state["image_encoder.blocks.1.attn.qkv.weight"], state["mask_decoder.iou_token.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(SambenchError, match=r"missing keys .*image_encoder\.blocks\.1\.attn\.qkv\.weight"):
        sambench.load_model("sam", checkpoint=str(tmp_path / "cut.pth"))


def test_unexpected_keys_are_named(tmp_path):
    state = random_state_dict(PRESETS["tiny"]())
    state["mask_decoder.extra_head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(SambenchError, match=r"unexpected keys mask_decoder\.extra_head\.weight"):
        sambench.load_model("sam", checkpoint=str(tmp_path / "extra.pth"))


def test_wrong_shapes_are_named(tmp_path):
    state = random_state_dict(PRESETS["tiny"]())
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 7)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(SambenchError, match=r"no_mask_embed\.weight \(1, 7\) \(expected \(1, 256\)\)"):
        sambench.load_model("sam", checkpoint=str(tmp_path / "shape.pth"))


def test_non_sam_checkpoint(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(10)},
               tmp_path / "resnet.pth")
    with pytest.raises(SambenchError) as err:
        sambench.load_model("sam", checkpoint=str(tmp_path / "resnet.pth"))
    message = str(err.value)
    assert "not a SAM v1 checkpoint" in message and "image_encoder.pos_embed" in message
    assert "unexpected keys conv1.weight, fc.bias" in message


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(suffix, tmp_path):
    path = write_random_checkpoint(tmp_path / f"tiny{suffix}", "tiny")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SambenchError, match="unreadable"):
        sambench.load_model("sam", checkpoint=str(path))


def test_missing_file_and_missing_checkpoint(tmp_path):
    with pytest.raises(SambenchError, match="checkpoint not found"):
        sambench.load_model("sam", checkpoint=str(tmp_path / "nope.pth"))
    with pytest.raises(SambenchError, match="needs a checkpoint"):
        sambench.load_model("sam")


class _Payload:
    """Unpickling this would create the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_never_unpickles_arbitrary_objects(tmp_path):
    marker = tmp_path / "pwned"
    state = random_state_dict(PRESETS["tiny"]())
    state["payload"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(SambenchError, match="refusing to load"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(SambenchError, match="refusing to load"):
        sambench.load_model("sam-official", checkpoint=str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_official_factory_uses_the_same_loader(tmp_path):
    path = write_random_checkpoint(tmp_path / "tiny.safetensors", "tiny", seed=2)
    official = sambench.load_model("sam-official", checkpoint=str(path))
    ours = sambench.load_model("sam", checkpoint=str(path))
    assert official.info().params == ours.info().params
    assert official.info().sha256 == ours.info().sha256


def test_unknown_options_are_errors(tmp_path):
    path = write_random_checkpoint(tmp_path / "tiny.pth", "tiny")
    with pytest.raises(SambenchError, match="unknown option"):
        sambench.load_model("sam", checkpoint=str(path), windw_size=3)
    with pytest.raises(SambenchError, match="unknown attention"):
        sambench.load_model("sam", checkpoint=str(path), attention="flash")
    with pytest.raises(SambenchError, match="unknown dtype"):
        sambench.load_model("sam", checkpoint=str(path), dtype="int8")


def test_official_package_is_imported_lazily_and_its_absence_is_clear(monkeypatch, tmp_path):
    import importlib.util
    import subprocess
    import sys

    code = ("import sys, sambench.models.official, sambench.models.sam; "
            "print('segment_anything' in sys.modules, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

    import sambench.models.official as official

    real = importlib.util.find_spec
    monkeypatch.setattr(official, "_official", None)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "segment_anything" else real(name, *a))
    path = write_random_checkpoint(tmp_path / "tiny.pth", "tiny")
    with pytest.raises(SambenchError, match="pip install segment-anything==1.0"):
        sambench.load_model("sam-official", checkpoint=str(path))
