"""Embedding cache: keying, invalidation, corruption, concurrent writers, LRU eviction."""
import multiprocessing as mp
import os
import time

import numpy as np

from sambench.cache import CachedModel, EmbeddingCache, image_hash


class CountingModel:
    def __init__(self, key="model-a"):
        self.key = key
        self.encodes = 0

    def embedding_key(self):
        return self.key

    def embed(self, image):
        self.encodes += 1
        return image.astype(np.float32).mean(axis=2) * (2 if self.key == "model-b" else 1)

    def embedding_to_arrays(self, emb):
        return {"emb": emb}

    def embedding_from_arrays(self, arrays):
        return arrays["emb"]

    def info(self):
        return "info"


def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (16, 12, 3), dtype=np.uint8) for _ in range(3)]


def test_hit_after_miss_and_keyed_by_model_and_image(tmp_path):
    cache = EmbeddingCache(tmp_path)
    a = CachedModel(CountingModel("model-a"), cache)
    ims = images()
    first = [a.embed(im) for im in ims]
    again = [a.embed(im) for im in ims]
    assert a.model.encodes == 3 and cache.stats.hits == 3
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    b = CachedModel(CountingModel("model-b"), cache)  # other checkpoint/config/dtype
    assert np.array_equal(b.embed(ims[0]), 2 * first[0]) and b.model.encodes == 1
    changed = ims[0].copy()
    changed[0, 0, 0] ^= 1  # one pixel differs: another image
    a.embed(changed)
    assert a.model.encodes == 4
    assert a.info() == "info"  # everything else is the wrapped model's


def test_corrupt_or_mismatched_entries_are_recomputed(tmp_path):
    cache = EmbeddingCache(tmp_path)
    model = CachedModel(CountingModel(), cache)
    im = images()[0]
    expected = model.embed(im)
    path = cache.path("model-a", image_hash(im))
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # flip a payload byte: checksum mismatch
    path.write_bytes(bytes(raw))
    assert np.array_equal(model.embed(im), expected) and model.model.encodes == 2
    assert cache.stats.corrupt == 1
    path.write_bytes(b"garbage")  # not safetensors at all
    assert np.array_equal(model.embed(im), expected) and cache.stats.corrupt == 2
    # an entry written for another key under this path is not used
    other = EmbeddingCache(tmp_path)
    other.put("model-a", "0" * 64, {"emb": np.zeros(3)})
    os.replace(other.path("model-a", "0" * 64), path)
    assert np.array_equal(model.embed(im), expected) and cache.stats.corrupt == 3


def _writer(root, seed):
    cache = EmbeddingCache(root)
    for _ in range(200):
        cache.put("k", "h" * 64, {"emb": np.full(5000, seed, np.float32)})


def test_concurrent_writers_never_expose_partial_files(tmp_path):
    procs = [mp.get_context("spawn").Process(target=_writer, args=(tmp_path, s)) for s in (1, 2)]
    for p in procs:
        p.start()
    cache = EmbeddingCache(tmp_path)
    reads = 0
    while any(p.is_alive() for p in procs):
        arrays = cache.get("k", "h" * 64)
        if arrays is not None:
            reads += 1
            assert arrays["emb"][0] in (1, 2) and (arrays["emb"] == arrays["emb"][0]).all()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0 and cache.stats.corrupt == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_size_cap_evicts_least_recently_used(tmp_path):
    one = np.zeros(1000, np.float32)  # ~4 KB per entry
    cache = EmbeddingCache(tmp_path, max_bytes=10_000)
    cache.put("k", "a" * 64, {"emb": one})
    time.sleep(0.02)
    cache.put("k", "b" * 64, {"emb": one})
    time.sleep(0.02)
    assert cache.get("k", "a" * 64) is not None  # a is now more recent than b
    time.sleep(0.02)
    cache.put("k", "c" * 64, {"emb": one})  # over the cap: evict b
    assert cache.get("k", "b" * 64) is None
    assert cache.get("k", "a" * 64) is not None and cache.get("k", "c" * 64) is not None
    assert cache.stats.evicted == 1 and cache.size() <= 10_000
    assert cache.clear() == 2 and cache.size() == 0


def test_sam_embeddings_round_trip_through_the_cache(tmp_path):
    import sambench
    from sambench.cache import supports_cache
    from sambench.models.sam import write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "tiny.pth", "tiny", seed=0)
    model = sambench.load_model("sam", checkpoint=str(ckpt))
    assert supports_cache(model)
    other = sambench.load_model("sam", checkpoint=str(ckpt), dtype="bfloat16")
    assert other.embedding_key() != model.embedding_key()  # dtype is part of the key
    cached = CachedModel(model, EmbeddingCache(tmp_path / "cache"))
    image = images()[0]
    fresh, again = cached.embed(image), cached.embed(image)
    assert cached.cache.stats.hits == 1
    a = model.predict(fresh, points=[[3, 4]], labels=[1])
    b = model.predict(again, points=[[3, 4]], labels=[1])
    assert np.array_equal(a.low_res_logits, b.low_res_logits) and np.array_equal(a.masks, b.masks)
