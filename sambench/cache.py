"""On-disk embedding cache: encode each image once per model and preprocessing.

The image encoder dominates every task's cost, so embeddings are kept on disk keyed by the
model fingerprint (checkpoint sha256, config, dtype, preprocessing) and the image content
hash, and reused across tasks, prompt modes and reruns.

* Entries are safetensors files (no pickle) whose metadata repeats both keys and the sha256 of
  the payload; a read that does not match in every respect is discarded and recomputed.
* Writes go to a temporary file and are renamed into place, so concurrent writers (several
  ranks, several runs) never expose half a file; the last complete write wins.
* A size cap evicts least recently used entries (reads refresh the file's mtime).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

log = logging.getLogger("sambench")

DEFAULT_MAX_BYTES = 20 * 2**30


def image_hash(image: np.ndarray) -> str:
    """Content hash of a decoded image (pixels, shape and dtype)."""
    h = hashlib.sha256()
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _payload_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    evicted: int = 0
    embed_seconds: float = 0.0  # getting embeddings: cache reads, plus encoding on a miss
    encode_seconds: float = 0.0  # of which running the image encoder (misses only)


class EmbeddingCache:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stats = CacheStats()

    def path(self, model_key: str, img_hash: str) -> Path:
        return self.root / model_key[:16] / img_hash[:2] / f"{img_hash}.safetensors"

    def get(self, model_key: str, img_hash: str) -> Optional[dict[str, np.ndarray]]:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        path = self.path(model_key, img_hash)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        try:
            arrays = load(raw)
            meta = _metadata(raw)
            valid = (meta.get("model_key") == model_key and meta.get("image_hash") == img_hash
                     and meta.get("payload") == _payload_digest(arrays))
        except (SafetensorError, ValueError, KeyError, TypeError, AttributeError):
            valid = False
        if not valid:
            log.warning("embedding cache: discarding corrupt or mismatched entry %s", path)
            self.stats.corrupt += 1
            self.stats.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.stats.hits += 1
        try:
            os.utime(path)  # LRU: a read makes the entry recent
        except OSError:
            pass
        return arrays

    def put(self, model_key: str, img_hash: str, arrays: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save

        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        meta = {"model_key": model_key, "image_hash": img_hash, "payload": _payload_digest(arrays)}
        path = self.path(model_key, img_hash)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(arrays)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(save(arrays, metadata=meta))
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the run goes on without caching this embedding
            log.warning("embedding cache: cannot write %s: %s", path, exc.strerror or exc)
            return
        finally:
            tmp.unlink(missing_ok=True)
        self.stats.writes += 1
        self.evict()

    def entries(self) -> list[tuple[Path, os.stat_result]]:
        out = []
        for p in self.root.rglob("*.safetensors"):
            try:
                out.append((p, p.stat()))
            except FileNotFoundError:  # evicted by a concurrent process
                pass
        return out

    def size(self) -> int:
        return sum(st.st_size for _, st in self.entries())

    def evict(self) -> None:
        entries = self.entries()
        total = sum(st.st_size for _, st in entries)
        if total <= self.max_bytes:
            return
        for path, st in sorted(entries, key=lambda e: e[1].st_mtime):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= st.st_size
            self.stats.evicted += 1

    def clear(self) -> int:
        n = 0
        for path, _ in self.entries():
            path.unlink(missing_ok=True)
            n += 1
        return n


def _metadata(raw: bytes) -> dict:
    """The ``__metadata__`` block of a safetensors file (its JSON header)."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]).get("__metadata__") or {}


class CachedModel:
    """Wraps a model whose embeddings can be stored (``embedding_to_arrays`` /
    ``embedding_from_arrays`` / ``embedding_key``) so ``embed`` consults the cache first.
    Every other attribute is the wrapped model's."""

    def __init__(self, model, cache: EmbeddingCache):
        self.model = model
        self.cache = cache
        self.key = model.embedding_key()

    def embed(self, image: np.ndarray):
        start = time.perf_counter()
        h = image_hash(image)
        arrays = self.cache.get(self.key, h)
        if arrays is not None:
            embedding = self.model.embedding_from_arrays(arrays)
        else:
            encode = time.perf_counter()
            embedding = self.model.embed(image)
            self.cache.stats.encode_seconds += time.perf_counter() - encode
            self.cache.put(self.key, h, self.model.embedding_to_arrays(embedding))
        self.cache.stats.embed_seconds += time.perf_counter() - start
        return embedding

    def __getattr__(self, name):
        return getattr(self.model, name)


def supports_cache(model) -> bool:
    return all(hasattr(model, m) for m in ("embedding_key", "embedding_to_arrays", "embedding_from_arrays"))
