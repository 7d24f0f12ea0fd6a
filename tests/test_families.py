"""The family abstraction: registry, recognition from keys, checkpoint mapping, preprocessing."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

import sambench
from sambench.cli import main
from sambench.errors import SambenchError
from sambench.models import FAMILIES, detect_family, get_family, list_models
from sambench.models.family import CheckpointMapper, Family, Preprocess, random_checkpoint
from sambench.models.family_model import SamEmbedding
from sambench.models.sam import write_random_checkpoint
from sambench.models.sam.family import FAMILY as SAM
from sambench.models.sam.parity import synthetic_image


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("fam") / "tiny.pth", "tiny", seed=3)


@pytest.fixture
def toy_family(monkeypatch):
    """A second family, registered for one test, recognised by a key SAM checkpoints lack."""
    toy = Family(name="toy", description="a test family",
                 detect=lambda state: "image_encoder.toy_pos_embed" in state,
                 mapper=CheckpointMapper(required=("image_encoder.",)),
                 infer_config=SAM.infer_config, build=SAM.build, preprocess=SAM.preprocess,
                 capabilities=SAM.capabilities)
    module = types.ModuleType("toy_family")
    module.FAMILY = toy
    monkeypatch.setitem(sys.modules, "toy_family", module)
    monkeypatch.setitem(FAMILIES, "toy", "toy_family:FAMILY")
    return toy


def test_sam_is_registered_and_listed():
    assert get_family("sam") is SAM
    assert "sam" in dict(list_models())
    with pytest.raises(SambenchError, match="unknown model family 'nope'"):
        get_family("nope")


def test_path_alone_infers_the_family(tiny_sam, one_thread):
    state = torch.load(tiny_sam, weights_only=True)
    assert detect_family(state) is SAM
    inferred = sambench.load_model(str(tiny_sam))
    named = sambench.load_model(f"sam:{tiny_sam}")
    assert inferred.info().to_json() == named.info().to_json()
    image = synthetic_image(60, 80, seed=1)
    a = inferred.predict(inferred.embed(image), points=[[30, 20]], labels=[1])
    b = named.predict(named.embed(image), points=[[30, 20]], labels=[1])
    assert np.array_equal(a.low_res_logits, b.low_res_logits) and np.array_equal(a.scores, b.scores)


def test_unrecognised_path_is_one_clear_error(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "resnet.pth")
    with pytest.raises(SambenchError, match="cannot tell the model family of .*resnet.pth.*--model FAMILY:"):
        sambench.load_model(str(tmp_path / "resnet.pth"))


def test_wrong_family_names_the_detected_one(tiny_sam, tmp_path, toy_family):
    state = torch.load(tiny_sam, weights_only=True)
    state["image_encoder.toy_pos_embed"] = state.pop("image_encoder.pos_embed")
    path = tmp_path / "toy.pth"
    torch.save(state, path)
    assert detect_family(state) is toy_family
    with pytest.raises(SambenchError) as err:
        sambench.load_model(f"sam:{path}")
    assert str(err.value) == f"{path} is a toy checkpoint, not sam: load it as --model toy:{path}"
    # the toy family itself rejects the plain SAM checkpoint, naming sam
    with pytest.raises(SambenchError, match=f"is a sam checkpoint, not toy: load it as --model sam:{tiny_sam}"):
        sambench.load_model(f"toy:{tiny_sam}")


def test_mapper_renames_ignores_and_requires():
    mapper = CheckpointMapper(renames=(("encoder.", "image_encoder."),), ignored=("image_encoder.head.",),
                              required=("image_encoder.stem.", "mask_decoder.extra."))
    state = {"encoder.stem.weight": torch.zeros(1), "encoder.head.weight": torch.zeros(1),
             "mask_decoder.x": torch.zeros(1)}
    mapped = mapper.apply(state)
    assert sorted(mapped) == ["image_encoder.stem.weight", "mask_decoder.x"]
    assert mapper.missing(mapped) == ["mask_decoder.extra."]


def test_strict_load_names_unexpected_keys(tiny_sam, tmp_path):
    state = torch.load(tiny_sam, weights_only=True)
    state["mask_decoder.surprise.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(SambenchError, match="unexpected keys mask_decoder.surprise.weight"):
        sambench.load_model(f"sam:{tmp_path / 'extra.pth'}")


def test_unknown_family_option(tiny_sam):
    with pytest.raises(SambenchError, match="unknown option.*for model sam: hq_token_only"):
        sambench.load_model(f"sam:{tiny_sam}", hq_token_only=True)


def test_random_checkpoint_randomises_every_tensor(tmp_path):
    path = random_checkpoint(SAM, tmp_path / "r.pth", "tiny", seed=1)
    state = torch.load(path, weights_only=True)
    assert state.keys() == SAM.build(SAM.presets["tiny"]()).state_dict().keys()
    constant = [k for k, v in state.items() if v.numel() > 1 and torch.unique(v).numel() == 1]
    assert constant == []


def test_models_info_of_a_path(tiny_sam, capsys):
    assert main(["models", "info", str(tiny_sam), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "sam" and info["variant"] == "tiny"
    assert info["params"] > 0 and len(info["sha256"]) == 64
    assert main(["models", "info", str(tiny_sam)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["family", "sam"] and lines[1].split() == ["variant", "tiny"]


def test_embedding_extras_round_trip():
    emb = SamEmbedding(torch.randn(1, 4, 2, 2), (10, 12), (8, 10), {"interm": torch.randn(1, 2, 2, 3)})
    back = SamEmbedding.from_numpy(emb.to_numpy())
    assert torch.equal(back.extras["interm"], emb.extras["interm"]) and back.original_size == (10, 12)


def test_preprocess_sam_path_is_the_official_one():
    """SAM's declaration takes the exact SamPredictor path; describe() is the recorded string."""
    from sambench.models.sam import transforms

    image = synthetic_image(37, 50, seed=2)
    pre = Preprocess(64)
    x, size = pre.image(image, "cpu")
    mean = torch.tensor(pre.pixel_mean).view(-1, 1, 1)
    std = torch.tensor(pre.pixel_std).view(-1, 1, 1)
    ref, ref_size = transforms.preprocess(image, 64, mean, std)
    assert size == ref_size == (47, 64) and torch.equal(x, ref)
    assert pre.describe() == "resize_longest_side(pil_bilinear)+normalize+pad"


def test_preprocess_variants():
    image = synthetic_image(30, 60, seed=4)
    from sambench.models.family import PIXEL_MEAN, PIXEL_STD

    unit_stats = dict(pixel_mean=tuple(m / 255 for m in PIXEL_MEAN), pixel_std=tuple(s / 255 for s in PIXEL_STD),
                      pixel_range=1)
    unit = Preprocess(64, **unit_stats)
    x255, _ = Preprocess(64).image(image, "cpu")
    x1, _ = unit.image(image, "cpu")
    assert torch.allclose(x1, x255, atol=1e-5) and unit.describe().endswith("to_unit+normalize+pad")
    stretch = Preprocess(64, "stretch", "torch-bilinear-antialias", **unit_stats)
    xs, size = stretch.image(image, "cpu")
    assert size == (64, 64) and xs.shape == (1, 3, 64, 64) and stretch.frame == "stretched"
    assert np.allclose(stretch.coords(np.array([[60.0, 30.0]]), (30, 60)), [[64.0, 64.0]])
    assert np.allclose(Preprocess(64).coords(np.array([[60.0, 30.0]]), (30, 60)), [[64.0, 32.0]])
    low = torch.randn(2, 1, 16, 16)
    up = stretch.upsample_logits(low, (64, 64), (30, 60))
    assert up.shape == (2, 1, 30, 60)
    masks = stretch.logits_to_masks(low[:, None, 0], (64, 64), (30, 60))
    assert masks.shape == (2, 1, 30, 60) and np.array_equal(masks[:, 0], (up[:, 0] > 0).numpy())


# -- the released families: recognition, one-line errors, end to end ------------------------
@pytest.fixture(scope="module")
def family_checkpoints(tmp_path_factory):
    from sambench.models import hq_sam, mobilesam

    root = tmp_path_factory.mktemp("families")
    return {"mobilesam": random_checkpoint(mobilesam.FAMILY, root / "mobile_sam.pt", "small", seed=1),
            "hq-sam": random_checkpoint(hq_sam.FAMILY, root / "sam_hq_tiny.pth", "tiny", seed=1)}


def test_models_list_shows_the_families(capsys):
    assert main(["models", "list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {"sam", "mobilesam", "hq-sam"} <= set(names)


def test_families_are_recognised_from_their_keys(family_checkpoints, tiny_sam, capsys):
    for name, path in {**family_checkpoints, "sam": tiny_sam}.items():
        state = torch.load(path, weights_only=True)
        assert detect_family(state).name == name
        assert main(["models", "info", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["family"] == name and info["params"] > 0 and len(info["sha256"]) == 64


def test_mobilesam_checkpoint_keeps_its_unused_classifier(family_checkpoints):
    state = torch.load(family_checkpoints["mobilesam"], weights_only=True)
    assert {"image_encoder.head.weight", "image_encoder.norm_head.bias"} <= set(state)  # released layout


@pytest.mark.parametrize("spec, message", [
    ("sam:{mobilesam}", "{mobilesam} is a mobilesam checkpoint, not sam: load it as --model mobilesam:{mobilesam}"),
    ("mobilesam:{hq-sam}", "{hq-sam} is a hq-sam checkpoint, not mobilesam (it has no image_encoder.patch_embed.seq): "
                           "load it as --model hq-sam:{hq-sam}"),
    ("hq-sam:{sam}", "{sam} is a sam checkpoint, not hq-sam (it has no mask_decoder.hf_token, mask_decoder.hf_mlp, "
                     "mask_decoder.compress_vit_feat, mask_decoder.embedding_encoder, "
                     "mask_decoder.embedding_maskfeature): load it as --model sam:{sam}"),
])
def test_wrong_family_is_one_line(family_checkpoints, tiny_sam, spec, message):
    paths = {**{k: str(v) for k, v in family_checkpoints.items()}, "sam": str(tiny_sam)}
    with pytest.raises(SambenchError) as err:
        sambench.load_model(spec.format(**paths))
    assert str(err.value) == message.format(**paths)


def test_partial_hq_head_names_the_missing_keys(family_checkpoints, tmp_path):
    state = torch.load(family_checkpoints["hq-sam"], weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("mask_decoder.embedding_maskfeature.")}
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(SambenchError, match=r"is not a hq-sam checkpoint \(it has no mask_decoder.embedding_maskfeature\)$"):
        sambench.load_model(f"hq-sam:{tmp_path / 'partial.pth'}")


@pytest.mark.parametrize("family", ["mobilesam", "hq-sam"])
def test_truncated_and_pickled_checkpoints_are_one_line(family_checkpoints, tmp_path, family):
    data = family_checkpoints[family].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(SambenchError, match="unreadable checkpoint .*truncated or not a torch file"):
        sambench.load_model(f"{family}:{tmp_path / 'cut.pth'}")
    state = torch.load(family_checkpoints[family], weights_only=True)
    torch.save({"model": state, "payload": object()}, tmp_path / "pickled.pth")
    for spec in (f"{family}:{tmp_path / 'pickled.pth'}", str(tmp_path / "pickled.pth")):
        with pytest.raises(SambenchError, match="refusing to load") as err:
            sambench.load_model(spec)
        assert "\n" not in str(err.value)


def test_hq_sam_declares_one_mask_and_records_hq_token_only(family_checkpoints, one_thread):
    model = sambench.load_model(f"hq-sam:{family_checkpoints['hq-sam']}", hq_token_only=True)
    info = model.info()
    assert info.capabilities.multimask_outputs == 1 and info.config["hq_token_only"] is True
    emb = model.embed(synthetic_image(50, 70, seed=3))
    assert set(emb.extras) == {"interm"}
    pred = model.predict(emb, points=[[20, 30]], labels=[1], multimask=True)
    assert pred.masks.shape == (1, 50, 70) and pred.scores.shape == (1,)
    restored = model.embedding_from_arrays(model.embedding_to_arrays(emb))  # the cache keeps the feature
    again = model.predict(restored, points=[[20, 30]], labels=[1], multimask=True)
    assert np.array_equal(again.low_res_logits, pred.low_res_logits)
    with pytest.raises(SambenchError, match="hq_token_only must be true or false"):
        sambench.load_model(f"hq-sam:{family_checkpoints['hq-sam']}", hq_token_only="yes")


@pytest.mark.parametrize("family", ["mobilesam", "hq-sam"])
def test_demo_suite_end_to_end(family_checkpoints, tmp_path, family, one_thread):
    out = tmp_path / "run"
    assert main(["run", "--suite", "demo", "--model", f"{family}:{family_checkpoints[family]}", "--limit", "1",
                 "--no-report", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["family"] == family
    assert results["model"]["capabilities"]["multimask_outputs"] == (1 if family == "hq-sam" else 3)
    assert all(entry["status"] == "ok" for entry in results["results"])


def test_models_random_cli(tmp_path, capsys):
    assert main(["models", "random", "hq-sam", "tiny", str(tmp_path / "hq.pth"), "--seed", "2"]) == 0
    assert detect_family(torch.load(tmp_path / "hq.pth", weights_only=True)).name == "hq-sam"
    capsys.readouterr()
    assert main(["models", "random", "hq-sam", "huge", str(tmp_path / "x.pth")]) == 2
    assert "sambench: error: unknown hq-sam preset 'huge'" in capsys.readouterr().err


def test_published_rows_need_the_same_boxes():
    """A reference row shows only where task, dataset and box source all match."""
    from sambench.report.reference import rows_for

    def models(protocol):
        return {row["model"] for _, row in rows_for("instances", "coco2017", protocol)}

    vitdet = models({"prompt": "detections", "box_source": "vitdet-h"})
    assert {"SAM (ViTDet-H boxes)", "EdgeSAM", "EfficientViT-SAM-L0"} <= vitdet and "Light HQ-SAM" not in vitdet
    sam2_rows = {f"{model} Hiera-L, {output} (FocalNet-DINO boxes)"
                 for model in ("SAM 2.1", "HQ-SAM 2") for output in ("single mask", "multimask")}
    assert models({"prompt": "detections", "box_source": "focalnet-dino"}) == {
        "MobileSAM (HQ-SAM README)", "Light HQ-SAM", *sam2_rows}
    assert models({"prompt": "detections"}) == set() == models({"prompt": "gt-box"})
    assert "EfficientViT-SAM-XL1" in {r["model"] for _, r in rows_for("instances", "lvis-v1", {"box_source": "vitdet-h"})}
    assert "EdgeSAM" not in {r["model"] for _, r in rows_for("instances", "lvis-v1", {"box_source": "vitdet-h"})}
