"""What every text encoder shares: ℓ2 normalisation, a phrase cache and one error for bad input.

The SAM paper feeds ℓ2-normalised CLIP embeddings (SAM App. D.5; docs/protocols.md); every encoder
here returns that form whatever its library does, and repeated phrases (a category name on
every image, a referring expression reused across modes) are encoded once.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np

from sambench.errors import SambenchError


@contextlib.contextmanager
def quiet_transformers():
    """Load weights without transformers' per-key reports and progress bars (our own loading
    messages are the errors we raise); its settings are restored afterwards."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; a zero row is an error (no direction)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if (norms == 0).any() or not np.isfinite(vectors).all():
        raise SambenchError("text encoder returned a zero or non-finite embedding")
    return (vectors / norms).astype(np.float32)


class TextEncoder:
    """Phrases → ``(N, dim)`` float32 ℓ2-normalised embeddings, cached per phrase.

    Subclasses set ``name`` (the registry name a checkpoint records), ``dim`` and
    ``identity`` (which weights, for results.json) and implement ``_encode``.
    """

    name: str = ""
    dim: int = 0
    identity: str = ""
    max_cache: int = 200_000  # phrases kept (RefCOCO val has ~11k expressions)

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}

    def _encode(self, phrases: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, phrases: Sequence[str] | str) -> np.ndarray:
        """``(N, dim)`` embeddings of ``phrases`` (a single string gives ``(1, dim)``)."""
        if isinstance(phrases, str):
            phrases = [phrases]
        phrases = list(phrases)
        for phrase in phrases:
            if not isinstance(phrase, str) or not phrase.strip():
                raise SambenchError(f"text encoder {self.name}: phrases must be non-empty strings, got {phrase!r}")
        todo = list(dict.fromkeys(p for p in phrases if p not in self._cache))
        if todo:
            vectors = l2_normalise(self._encode(todo))
            if vectors.shape != (len(todo), self.dim):
                raise SambenchError(f"text encoder {self.name} returned {vectors.shape}, "
                                    f"expected ({len(todo)}, {self.dim})")
            if len(self._cache) + len(todo) > self.max_cache:
                self._cache.clear()
            self._cache.update(zip(todo, vectors))
        if not phrases:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[p] for p in phrases])

    def info(self) -> dict:
        return {"name": self.name, "dim": self.dim, "identity": self.identity}
