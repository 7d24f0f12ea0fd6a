"""The ``sam`` adapter: protocol shapes, batching, chunking, upsampling and pre/post-processing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sambench
from sambench.errors import SambenchError
from sambench.models.base import PromptableModel
from sambench.models.sam import SamEmbedding, write_random_checkpoint
from sambench.models.sam.parity import synthetic_image
from sambench.models.sam.transforms import resize_image, upsample_logits


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth", "tiny", seed=5)


@pytest.fixture(scope="module")
def grid64_path(tmp_path_factory):
    """Native 256² low-res frame (like the released models) with a narrow, cheap decoder."""
    return write_random_checkpoint(tmp_path_factory.mktemp("sam") / "g64.pth", "tiny", seed=6,
                                   img_size=256, patch_size=4, embed_dim=32, window_size=7,
                                   prompt_embed_dim=64, mask_in_chans=8, decoder_mlp_dim=128)


@pytest.fixture(scope="module")
def model(grid64_path):
    return sambench.load_model("sam", checkpoint=str(grid64_path))


@pytest.fixture(scope="module")
def embedding(model):
    return model.embed(synthetic_image(240, 320, seed=1))


def test_protocol_and_shapes(model, embedding):
    assert isinstance(model, PromptableModel)
    assert embedding.original_size == (240, 320) and embedding.input_size == (192, 256)
    single = model.predict(embedding, points=[[10, 20]], labels=[1])
    assert single.masks.shape == (3, 240, 320) and single.masks.dtype == bool
    assert single.scores.shape == (3,) and single.low_res_logits.shape == (3, 256, 256)
    one = model.predict(embedding, box=[5, 5, 100, 80], multimask=False)
    assert one.masks.shape == (1, 240, 320)
    batch = model.predict(embedding, points=np.zeros((4, 2, 2)), labels=np.ones((4, 2)))
    assert batch.masks.shape == (4, 3, 240, 320) and batch.scores.shape == (4, 3)
    assert batch.low_res_logits.dtype == np.float32 and batch.scores.dtype == np.float32


def test_batch_equals_one_call_per_prompt(model, embedding):
    """Batched prompts share the image-side work; results must equal separate calls."""
    rng = np.random.default_rng(0)
    points, labels = rng.uniform(0, 240, (3, 3, 2)), rng.integers(-1, 2, (3, 3))
    boxes = np.sort(rng.uniform(0, 240, (3, 2, 2)), axis=1).reshape(3, 4)
    masks = rng.normal(0, 3, (3, 1, 256, 256)).astype(np.float32)
    for kwargs in (dict(points=points, labels=labels), dict(box=boxes),
                   dict(points=points, labels=labels, box=boxes, mask_input=masks)):
        batched = model.predict(embedding, **kwargs, return_masks=False)
        for i in range(3):
            single = model.predict(embedding, **{k: v[i] for k, v in kwargs.items()},
                                   return_masks=False)
            np.testing.assert_allclose(batched.low_res_logits[i], single.low_res_logits, atol=2e-5)
            np.testing.assert_allclose(batched.scores[i], single.scores, atol=2e-6)


def test_chunking_and_long_prompts(grid64_path, model, embedding):
    """Chunks of 2 give the same numbers; 20 points (≥ 16 tokens) take the plain path."""
    chunked = sambench.load_model("sam", checkpoint=str(grid64_path), prompt_chunk=2)
    rng = np.random.default_rng(1)
    for n_points in (1, 20):
        kwargs = dict(points=rng.uniform(0, 300, (3, n_points, 2)), labels=np.ones((3, n_points)))
        a, b = model.predict(embedding, **kwargs), chunked.predict(embedding, **kwargs)
        np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, atol=2e-5)
        assert (a.masks == b.masks).mean() > 0.9999


def test_mask_prompts_factored_and_chunked(grid64_path, model, embedding):
    """Mask prompts kept factored in the first decoder layer give the dense computation's
    numbers, and chunks that share the image-side cache do not share per-prompt work."""
    rng = np.random.default_rng(2)
    kwargs = dict(points=rng.uniform(0, 300, (5, 3, 2)), labels=np.ones((5, 3)),
                  mask_input=rng.normal(0, 3, (5, 1, 256, 256)).astype(np.float32), multimask=False)
    one_chunk = sambench.load_model("sam", checkpoint=str(grid64_path), prompt_chunk=5)
    by_one = sambench.load_model("sam", checkpoint=str(grid64_path), prompt_chunk=1)
    a = one_chunk.predict(embedding, **kwargs, return_masks=False)
    b = by_one.predict(embedding, **kwargs, return_masks=False)
    np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, atol=2e-5)
    np.testing.assert_allclose(a.scores, b.scores, atol=2e-6)

    sam = model.sam
    with torch.inference_mode():
        pts = torch.as_tensor(kwargs["points"], dtype=torch.float32)
        lbl = torch.as_tensor(kwargs["labels"], dtype=torch.int64)
        masks = torch.as_tensor(kwargs["mask_input"])
        pe = sam.prompt_encoder.get_dense_pe()
        outs = []
        for factored in (False, True):
            sparse, dense = sam.prompt_encoder((pts, lbl), None, masks, factored=factored)
            outs.append(sam.mask_decoder(embedding.features, pe, sparse, dense, False, cache={}))
    (dense_logits, dense_iou), (low_logits, low_iou) = outs
    assert dense_logits.abs().max() > 1  # not a degenerate case
    torch.testing.assert_close(low_logits, dense_logits, atol=2e-5, rtol=0)
    torch.testing.assert_close(low_iou, dense_iou, atol=2e-6, rtol=0)


def test_upsample_only_what_you_keep(model, embedding):
    pred = model.predict(embedding, points=np.ones((3, 1, 2)) * 50, labels=np.ones((3, 1)))
    lean = model.predict(embedding, points=np.ones((3, 1, 2)) * 50, labels=np.ones((3, 1)),
                         return_masks=False)
    assert lean.masks is None
    np.testing.assert_array_equal(lean.low_res_logits, pred.low_res_logits)
    best = pred.scores.argmax(1)
    chosen = lean.low_res_logits[np.arange(3), best]
    np.testing.assert_array_equal(model.upsample(embedding, chosen), pred.masks[np.arange(3), best])
    logits = model.upsample(embedding, chosen, threshold=None)
    assert logits.dtype == np.float32 and np.array_equal(logits > 0, pred.masks[np.arange(3), best])
    single = model.predict(embedding, points=[[50, 50]], labels=[1], return_masks=False)
    assert single.masks is None and single.low_res_logits.shape == (3, 256, 256)


def test_embed_batch_and_cache_round_trip(model):
    images = [synthetic_image(240, 320, seed=1), synthetic_image(50, 400, seed=2),
              synthetic_image(300, 200, seed=3)]
    batched = model.embed_batch(images, batch_size=2)
    for image, emb in zip(images, batched):
        alone = model.embed(image)
        assert emb.original_size == alone.original_size and emb.input_size == alone.input_size
        torch.testing.assert_close(emb.features, alone.features, atol=1e-5, rtol=0)
    restored = SamEmbedding.from_numpy(batched[1].to_numpy())
    assert restored.original_size == (50, 400) and restored.input_size == (32, 256)
    assert torch.equal(restored.features, batched[1].features)


def test_tiny_preset_uses_its_own_frame(tiny_path):
    """The tiny preset's logits come in its own 64² frame (declared in its capabilities), go
    back unchanged as the mask prompt, and a mask prompt in another frame is a clear error."""
    model = sambench.load_model("sam", checkpoint=str(tiny_path))
    assert model.info().capabilities.low_res_shape == (64, 64)
    emb = model.embed(synthetic_image(100, 150, seed=4))
    first = model.predict(emb, points=[[30, 40]], labels=[1])
    assert first.low_res_logits.shape == (3, 64, 64)
    again = model.predict(emb, points=[[30, 40]], labels=[1], mask_input=first.low_res_logits[:1],
                          multimask=False)
    assert again.masks.shape == (1, 100, 150) and np.isfinite(again.low_res_logits).all()
    with pytest.raises(SambenchError, match=r"mask_input must be \(B, 1, 64, 64\) \(this model's low-res frame\)"):
        model.predict(emb, points=[[30, 40]], labels=[1], mask_input=np.zeros((1, 256, 256), np.float32))


def test_bfloat16_and_sdpa_options(grid64_path, model, embedding):
    assert model.attention == "math"  # auto in fp32: the bit-identical path
    image = synthetic_image(240, 320, seed=1)
    for options in (dict(attention="sdpa"), dict(dtype="bfloat16"),
                    dict(dtype="bfloat16", attention="sdpa")):
        other = sambench.load_model("sam", checkpoint=str(grid64_path), **options)
        assert other.attention == options.get("attention", "sdpa")  # auto: sdpa unless fp32
        emb = other.embed(image)
        assert emb.features.dtype == torch.float32
        rel = ((emb.features - embedding.features).norm() / embedding.features.norm()).item()
        assert rel < (1e-5 if "dtype" not in options else 3e-2), (options, rel)
        pred = other.predict(emb, points=[[60, 70]], labels=[1])
        assert pred.low_res_logits.dtype == np.float32 and np.isfinite(pred.low_res_logits).all()


@pytest.mark.parametrize("native", [True, False])
def test_emulated_bf16_is_said(grid64_path, native, monkeypatch, caplog):
    """A bf16 model on a CPU without bf16 units loads and works, with a log line saying why it
    is slow; fp32 never warns."""
    from sambench.models import runtime as sam_model

    monkeypatch.setattr(sam_model, "cpu_has_native", lambda dtype: native or dtype == torch.float32)
    sambench.load_model("sam", checkpoint=str(grid64_path))
    assert not caplog.records
    sambench.load_model("sam", checkpoint=str(grid64_path), dtype="bfloat16")
    assert ("no native bfloat16 matrix units" in caplog.text) is not native


def test_compiled_encoder_matches_eager(grid64_path, model, embedding):
    """``compile=True`` (inductor with freezing) gives the eager embedding within fp32
    rounding, has its own cache key, and leaves the decoder path as it was."""
    compiled = sambench.load_model("sam", checkpoint=str(grid64_path), compile=True)
    emb = compiled.embed(synthetic_image(240, 320, seed=1))
    rel = ((emb.features - embedding.features).norm() / embedding.features.norm()).item()
    assert rel < 1e-5, rel
    assert compiled.info().config["compile"] is True and "compile" not in model.info().config
    assert compiled.embedding_key() != model.embedding_key()
    ours = compiled.predict(emb, points=[[60, 70]], labels=[1])
    ref = model.predict(embedding, points=[[60, 70]], labels=[1])
    assert np.abs(ours.low_res_logits - ref.low_res_logits).max() < 1e-4


def test_compile_failure_is_one_clear_error(grid64_path, monkeypatch):
    """A machine where inductor cannot build (here: no C++ compiler) gets a SambenchError."""
    from torch._inductor import config

    monkeypatch.setattr(config.cpp, "cxx", (None, "/nonexistent/g++"))
    monkeypatch.setattr(config, "fx_graph_cache", False)  # a cached graph would need no compiler
    torch._dynamo.reset()
    compiled = sambench.load_model("sam", checkpoint=str(grid64_path), compile=True)
    with pytest.raises(SambenchError, match="torch.compile failed .*run without compile=true"):
        compiled.embed(synthetic_image(64, 80, seed=0))
    torch._dynamo.reset()


@pytest.mark.parametrize("original", [(37, 250), (480, 640), (1024, 1024), (1500, 2000), (700, 90)])
def test_upsampling_matches_the_reference_chain(original):
    """The crop-first first upsampling is bit-identical to interpolate-then-crop."""
    from sambench.models.base import resized_shape

    input_size = resized_shape(*original, 1024)
    low = torch.randn(2, 3, 256, 256)
    ref = F.interpolate(low, (1024, 1024), mode="bilinear", align_corners=False)
    ref = F.interpolate(ref[..., : input_size[0], : input_size[1]], original, mode="bilinear",
                        align_corners=False)
    assert torch.equal(upsample_logits(low, input_size, original, 1024), ref)


def test_resize_is_pil_bilinear_with_official_rounding():
    from PIL import Image

    image = synthetic_image(37, 250, seed=0)
    out = resize_image(image, 1024)
    assert out.shape == (152, 1024, 3)  # int(37 * 4.096 + 0.5) = 152
    expected = np.asarray(Image.fromarray(image).resize((1024, 152), Image.BILINEAR))
    np.testing.assert_array_equal(out, expected)
    same = synthetic_image(1024, 512, seed=0)
    np.testing.assert_array_equal(resize_image(same, 1024), same)


def test_bad_inputs(model, embedding):
    with pytest.raises(SambenchError, match="uint8 RGB"):
        model.embed(np.zeros((10, 10), np.uint8))
    with pytest.raises(SambenchError, match="uint8 RGB"):
        model.embed(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(SambenchError, match="points, a box or text"):
        model.predict(embedding)
    with pytest.raises(SambenchError, match="mask_input"):
        model.predict(embedding, points=[[1, 1]], labels=[1], mask_input=np.zeros((1, 64, 64)))


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunks_sharing_the_image_cache(grid64_path, model, embedding, chunk):
    """Prompt chunks of any size (one prompt per chunk included) share only what is shared."""
    other = sambench.load_model("sam", checkpoint=str(grid64_path), prompt_chunk=chunk)
    rng = np.random.default_rng(2)
    masks = rng.normal(0, 3, (5, 1, 256, 256)).astype(np.float32)
    for kwargs in (dict(points=rng.uniform(0, 240, (5, 2, 2)), labels=np.ones((5, 2))),
                   dict(box=np.array([[10, 10, 100, 90]] * 5) + np.arange(5)[:, None] * 7,
                        mask_input=masks)):
        ref = [model.predict(embedding, **{k: v[i] for k, v in kwargs.items()}, return_masks=False)
               for i in range(5)]
        got = other.predict(embedding, **kwargs, return_masks=False)
        for i in range(5):
            np.testing.assert_allclose(got.low_res_logits[i], ref[i].low_res_logits, atol=2e-5)


@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_modules_train(attention, tiny_path):
    """The modules stay differentiable (sambench.train uses them): several images, per-mask
    embeddings as the trainer passes them, mask prompts; in-place shortcuts only at inference."""
    from sambench.models.sam import load_sam

    sam, _ = load_sam(tiny_path)
    sam.train()
    sam.image_encoder.set_attention(attention)
    images = torch.randn(2, 3, 256, 256)
    features = sam.image_encoder(images)
    per_mask = features[torch.tensor([0, 0, 1])]
    points = (torch.rand(3, 2, 2) * 255, torch.tensor([[1, 0], [1, -1], [1, 1]]))
    sparse, dense = sam.prompt_encoder(points, None, torch.randn(3, 1, 64, 64))
    logits, iou = sam.mask_decoder(per_mask, sam.prompt_encoder.get_dense_pe(), sparse, dense, True)
    assert logits.shape == (3, 3, 64, 64) and iou.shape == (3, 3)
    (logits.mean() + iou.mean()).backward()
    # a mask prompt and no boxes were given; multimask evaluates mask tokens 1-3 only
    unused = ("prompt_encoder.no_mask_embed", "prompt_encoder.point_embeddings.2",
              "prompt_encoder.point_embeddings.3", "mask_decoder.output_hypernetworks_mlps.0.")
    for name, p in sam.named_parameters():
        # token→image key biases shift all logits of a softmax equally: their gradient is
        # exactly zero, and the folded form does not compute it at all
        constant = "token_to_image.k_proj.bias" in name
        assert (p.grad is None) == name.startswith(unused) or constant, name
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert sam.image_encoder.blocks[1].attn.rel_pos_h.grad.abs().sum() > 0
