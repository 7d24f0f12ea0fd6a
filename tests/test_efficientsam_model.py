"""The ``efficientsam`` family end to end: loading, prompts it refuses, the cache, the point task."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sambench
from sambench.cache import CachedModel, EmbeddingCache
from sambench.cli import main
from sambench.errors import SambenchError
from sambench.models import detect_family
from sambench.models.efficientsam import FAMILY, write_random_checkpoint
from sambench.models.sam import write_random_checkpoint as write_sam
from sambench.models.sam.parity import synthetic_image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("esam") / "efficient_sam_tiny.pt", "tiny", seed=4)


@pytest.fixture(scope="module")
def model(tiny):
    return sambench.load_model(f"efficientsam:{tiny}", num_heads=2, decoder_num_heads=4, img_size=128)


def test_official_layout_and_path_inference(tiny, model, one_thread):
    raw = torch.load(tiny, weights_only=True)
    assert list(raw) == ["model"]  # {"model": state_dict}, as the released files
    assert detect_family(raw["model"]) is FAMILY
    inferred = sambench.load_model(str(tiny), num_heads=2, decoder_num_heads=4, img_size=128)
    assert inferred.info().to_json() == model.info().to_json()
    caps = model.info().to_json()["capabilities"]
    assert caps == {"low_res_shape": [32, 32], "low_res_frame": "stretched", "multimask_outputs": 3,
                    "mask_input": False, "max_points": 6, "score": "predicted_iou"}


def test_released_sizes_inferred(tmp_path):
    for preset, dim, heads in (("vit_t", 192, 3), ("vit_s", 384, 6)):
        path = write_random_checkpoint(tmp_path / f"{preset}.pt", preset)
        info = sambench.load_model(str(path)).info().to_json()
        assert (info["config"]["variant"], info["config"]["embed_dim"], info["config"]["num_heads"]) == (preset, dim, heads)
        assert info["capabilities"]["low_res_shape"] == [256, 256]
        path.unlink()


def test_bad_checkpoints_are_one_line(tiny, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    sam = write_sam(tmp_path / "sam.pth", "tiny")
    state = torch.load(tiny, weights_only=True)["model"]
    del state["mask_decoder.iou_prediction_head.fc.bias"]
    torch.save({"model": state}, tmp_path / "partial.pt")
    cases = [(f"efficientsam:{truncated}", "truncated or not a torch file"),
             (f"efficientsam:{sam}", f"is a sam checkpoint, not efficientsam: load it as --model sam:{sam}"),
             (f"sam:{tiny}", f"is a efficientsam checkpoint, not sam"),
             (f"efficientsam:{tmp_path / 'partial.pt'}", "missing keys mask_decoder.iou_prediction_head.fc.bias"),
             (f"efficientsam:{tmp_path / 'none.pt'}", "checkpoint not found")]
    for spec, message in cases:
        with pytest.raises(SambenchError) as err:
            sambench.load_model(spec, num_heads=2, decoder_num_heads=4) if spec.startswith("efficientsam") \
                else sambench.load_model(spec)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_refuses_what_it_cannot_answer(model, one_thread):
    emb = model.embed(synthetic_image(40, 50, seed=1))
    with pytest.raises(SambenchError, match="no mask input"):
        model.predict(emb, points=[[5, 5]], labels=[1], mask_input=np.zeros((1, 32, 32), np.float32))
    with pytest.raises(SambenchError, match="at most 6 points"):
        model.predict(emb, points=[[5, 5]] * 5, labels=[1] * 5, box=[1, 1, 20, 20])
    pred = model.predict(emb, points=[[5, 5]] * 4, labels=[1, 0, 1, 0], box=[1, 1, 20, 20], multimask=False)
    assert pred.masks.shape == (1, 40, 50) and pred.low_res_logits.shape == (1, 32, 32)
    with pytest.raises(SambenchError, match="unknown single_mask"):
        sambench.load_model(model.checkpoint, num_heads=2, decoder_num_heads=4, img_size=128, single_mask="x")


def test_batched_equals_one_by_one_and_cache_round_trip(model, tmp_path, one_thread):
    image = synthetic_image(36, 52, seed=2)
    points = np.array([[[3, 4], [30, 20]], [[40, 10], [8, 30]]], np.float32)
    labels = np.array([[1, 0], [1, 1]])
    emb = model.embed(image)
    batched = model.predict(emb, points=points, labels=labels)
    for i in range(2):
        one = model.predict(emb, points=points[i], labels=labels[i])
        np.testing.assert_allclose(one.low_res_logits, batched.low_res_logits[i], atol=1e-5)
    cached = CachedModel(model, EmbeddingCache(tmp_path / "cache"))
    cached.embed(image)
    again = cached.predict(cached.embed(image), points=points, labels=labels)
    assert cached.cache.stats.hits == 1
    np.testing.assert_array_equal(again.low_res_logits, batched.low_res_logits)


def test_demo_run_reports_unsupported_metrics(tiny, tmp_path, one_thread, capsys):
    out = tmp_path / "run"
    code = main(["run", "--suite", "demo", "--model", f"efficientsam:{tiny}", "--limit", "1", "--out", str(out),
                 "--no-cache", "--model-option", "num_heads=2", "--model-option", "decoder_num_heads=4",
                 "--model-option", "img_size=128"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["family"] == "efficientsam"
    point = [e for e in results["results"] if e["task"] == "point"]
    assert point and all(e["status"] == "ok" for e in point)
    for entry in point:
        assert {f"miou@{n}" for n in (1, 2, 3, 5)} <= set(entry["metrics"])
        assert "miou@9" not in entry["metrics"] and "noc@85" not in entry["metrics"]
        assert "at most 6 points" in entry["unsupported_metrics"]["miou@9"]
        assert entry["protocol"]["feed_back_logits"] is False
        assert "no mask input" in entry["protocol"]["adapted"]["feed_back_logits"]
    html = (out / "report.html").read_text()
    assert "n/a*" in html and "miou@9, random_miou@9: needs 9 clicks" in html
    assert "n/a for this model" in capsys.readouterr().out
    assert main(["leaderboard", str(out), "--out", str(tmp_path / "board")]) == 0
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "efficientsam" in board and "efficient_sam_tiny.pt" in board
