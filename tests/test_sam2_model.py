"""SAM 2 loading, the released sizes and versions, clear errors, the protocol, the cache and a
run end to end. Parity with the reference is tests/test_sam2_parity.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import sambench
from sambench.amg.official import ENV_VAR, official_available
from sambench.cache import CachedModel, EmbeddingCache
from sambench.cli import main
from sambench.errors import SambenchError
from sambench.models import detect_family, load_model
from sambench.models.sam.parity import synthetic_image
from sambench.models.sam2 import PRESETS
from sambench.models.sam2.checkpoint import VIDEO_KEYS, infer_config
from sambench.models.sam2.family import FAMILY
from sambench.models.sam2.hiera import HieraConfig
from sambench.models.sam2.random_checkpoint import make_config, reference_shapes, write_random_checkpoint
from sambench.models.sam2.reference import IMPORTS, reference_layouts

SMALL = HieraConfig(32, 1, (1, 1, 1, 1), (2,), (8, 4, 14, 7), (7, 7))  # a narrow, shallow trunk
RELEASED = {("tiny", "2"): "configs/sam2/sam2_hiera_t.yaml", ("small", "2"): "configs/sam2/sam2_hiera_s.yaml",
            ("base_plus", "2"): "configs/sam2/sam2_hiera_b+.yaml", ("large", "2"): "configs/sam2/sam2_hiera_l.yaml",
            ("tiny", "2.1"): "configs/sam2.1/sam2.1_hiera_t.yaml",
            ("small", "2.1"): "configs/sam2.1/sam2.1_hiera_s.yaml",
            ("base_plus", "2.1"): "configs/sam2.1/sam2.1_hiera_b+.yaml",
            ("large", "2.1"): "configs/sam2.1/sam2.1_hiera_l.yaml"}


def meta_state(size, version="2.1") -> dict:
    return {k: torch.empty(s, device="meta") for k, s in reference_shapes(make_config(size), version).items()}


@pytest.fixture(scope="module")
def small_path(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("sam2") / "small.pt", SMALL, seed=2)


@pytest.fixture(scope="module")
def model(small_path):
    return sambench.load_model(f"sam2:{small_path}")


@pytest.fixture(scope="module")
def embedding(model):
    return model.embed(synthetic_image(120, 90, seed=1))


def test_released_layouts_and_trunks_are_the_reference_configs():
    """Our presets give exactly the key names and shapes ``build_sam2`` loads from each released
    config, and the config's head counts, windows and global blocks (not in the tensors)."""
    ok, why = official_available(IMPORTS)
    if not ok:
        if os.environ.get(ENV_VAR):
            pytest.fail(why)
        pytest.skip(why)
    layouts = reference_layouts(list(RELEASED.values()))
    for (size, version), layout in zip(RELEASED, layouts):
        ours = reference_shapes(make_config(size), version)
        theirs = {k: tuple(v) for k, v in layout["shapes"].items()}
        assert ours == theirs, (size, version, sorted(set(ours) ^ set(theirs))[:5])
        trunk = layout["trunk"]
        preset = PRESETS[size]
        assert (trunk["q_pool"], trunk["q_stride"], trunk["dim_mul"], trunk["head_mul"]) == (3, [2, 2], 2.0, 2.0)
        for field in ("embed_dim", "num_heads", "stages", "global_att_blocks", "window_spec",
                      "window_pos_embed_bkg_spatial_size"):
            assert list(np.atleast_1d(trunk[field])) == list(np.atleast_1d(getattr(preset, field))), (size, field)


@pytest.mark.parametrize("size", list(PRESETS))
@pytest.mark.parametrize("version", ["2", "2.1"])
def test_size_inferred_from_the_tensors_and_video_keys_dropped(size, version):
    state = meta_state(size, version)
    assert detect_family(state) is FAMILY
    mapped = FAMILY.state_dict(state)
    config = infer_config(mapped)
    assert (config.variant, config.trunk) == (size, PRESETS[size])
    assert not any(k.startswith(VIDEO_KEYS) for k in mapped) and "no_mem_embed" in mapped
    with torch.device("meta"):
        assert set(FAMILY.build(config).state_dict()) == set(mapped)


def test_wrong_and_truncated_checkpoints_are_one_clear_error(tmp_path, small_path):
    from sambench.models.sam import write_random_checkpoint as write_sam_v1

    v1 = write_sam_v1(tmp_path / "v1.pth", "tiny")
    with pytest.raises(SambenchError, match="is a sam checkpoint, not sam2: load it as --model sam:"):
        load_model(f"sam2:{v1}")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(small_path.read_bytes()[:5000])
    with pytest.raises(SambenchError, match="unreadable checkpoint .*truncated"):
        load_model(f"sam2:{truncated}")
    state = torch.load(small_path, weights_only=True)["model"]
    for name, edit, message in [
        ("extra", lambda s: s.update(extra_head=torch.zeros(1)), "unexpected keys extra_head"),
        ("missing", lambda s: s.pop("sam_mask_decoder.conv_s0.weight"), "missing keys mask_decoder.conv_s0.weight"),
        ("shape", lambda s: s.update(no_mem_embed=torch.zeros(1, 1, 8)), "wrong shape: no_mem_embed"),
    ]:
        edited = dict(state)
        edit(edited)
        path = write_random_checkpoint(tmp_path / f"{name}.pt", SMALL, state=edited)
        with pytest.raises(SambenchError, match=message):
            load_model(f"sam2:{path}")
    custom = write_random_checkpoint(tmp_path / "custom.pt", state=state)  # no sidecar: "tiny" layout claimed
    with pytest.raises(SambenchError, match="not a released SAM 2 size"):
        load_model(f"sam2:{custom}")
    assert load_model(f"sam2:{custom}", trunk=SMALL).info().config["variant"] == "custom"
    with pytest.raises(SambenchError, match="do not match the config"):
        load_model(f"sam2:{custom}", trunk=PRESETS["tiny"])


def test_protocol_shapes_and_capabilities(model, embedding):
    info = model.info()
    assert info.family == "sam2" and info.config["dynamic_multimask"] is True and info.config["variant"] == "custom"
    assert info.config["preprocess"] == "resize_stretch(torch_bilinear_antialias)+to_unit+normalize"
    assert info.capabilities.low_res_frame == "stretched" and info.capabilities.low_res_shape == (256, 256)
    pred = model.predict(embedding, points=[[10, 20]], labels=[1])
    assert pred.masks.shape == (3, 120, 90) and pred.masks.dtype == bool
    assert pred.scores.shape == (3,) and ((pred.scores > 0) & (pred.scores < 1)).all()  # sigmoid IoU
    assert pred.low_res_logits.shape == (3, 256, 256) and np.abs(pred.low_res_logits).max() <= 32
    batch = model.predict(embedding, points=np.array([[[10, 20]], [[50, 60]]]), labels=np.ones((2, 1)),
                          box=np.array([[0, 0, 40, 50], [30, 30, 80, 100]]), multimask=False)
    assert batch.masks.shape == (2, 1, 120, 90)
    one = model.predict(embedding, points=[[50, 60]], labels=[1], box=[30, 30, 80, 100], multimask=False)
    np.testing.assert_allclose(one.low_res_logits, batch.low_res_logits[1], atol=1e-4)
    with pytest.raises(SambenchError, match="has no text path"):
        model.predict(embedding, points=[[1, 1]], labels=[1], text=np.ones(4))


def test_chunks_equal_one_pass(small_path, embedding):
    points = np.random.default_rng(0).uniform(0, 90, (7, 2, 2))
    labels = np.ones((7, 2))
    one = sambench.load_model(f"sam2:{small_path}", prompt_chunk=64).predict(embedding, points, labels, multimask=False)
    many = sambench.load_model(f"sam2:{small_path}", prompt_chunk=2).predict(embedding, points, labels, multimask=False)
    np.testing.assert_allclose(one.low_res_logits, many.low_res_logits, atol=1e-5)
    assert np.array_equal(one.masks, many.masks)


def test_cache_round_trip_and_key(tmp_path, small_path, model, embedding):
    cached = CachedModel(model, EmbeddingCache(tmp_path / "cache"))
    image = synthetic_image(120, 90, seed=1)
    first, again = cached.embed(image), cached.embed(image)
    assert cached.cache.stats.hits == 1
    assert torch.equal(first.features, again.features) and set(again.extras) == {"feat_s0", "feat_s1"}
    for name in ("feat_s0", "feat_s1"):
        assert torch.equal(first.extras[name], again.extras[name])
    assert sambench.load_model(f"sam2:{small_path}", dtype="bfloat16").embedding_key() != model.embedding_key()


@pytest.mark.slow
def test_bfloat16_runs_close(small_path, model, embedding):
    bf16 = sambench.load_model(f"sam2:{small_path}", dtype="bfloat16")
    image = synthetic_image(120, 90, seed=1)
    ref = model.predict(embedding, points=[[10, 20]], labels=[1])
    low = bf16.predict(bf16.embed(image), points=[[10, 20]], labels=[1])
    assert np.isfinite(low.low_res_logits).all() and np.abs(low.scores - ref.scores).max() < 0.1


def test_options_are_checked(small_path):
    with pytest.raises(SambenchError, match="unknown option"):
        sambench.load_model(f"sam2:{small_path}", attention="math")
    with pytest.raises(SambenchError, match="true or false"):
        sambench.load_model(f"sam2:{small_path}", dynamic_multimask="maybe")
    with pytest.raises(SambenchError, match="needs a checkpoint"):
        sambench.load_model("sam2")


def test_family_inferred_from_a_bare_path(small_path):
    assert load_model(str(small_path)).info().family == "sam2"


@pytest.mark.slow
def test_point_task_end_to_end_with_the_family_inferred(tmp_path, small_path, synth_dir, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "point", "--model", str(small_path), "--dataset", str(synth_dir),
                 "--limit", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["family"] == "sam2"
    assert results["model"]["capabilities"]["low_res_frame"] == "stretched"
    metrics = results["results"][0]["metrics"]
    assert 0 <= metrics["miou@1"] <= 1 and "miou@9" in metrics
