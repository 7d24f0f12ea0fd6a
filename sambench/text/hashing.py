"""``hash``: bag-of-words feature hashing, a text encoder with no weights and no dependency.

Each lower-cased word and each pair of neighbouring words adds ±1 at a position chosen by
SHA-1 (stable across processes and machines, unlike Python's ``hash``), then the vector is
ℓ2-normalised. Word pairs keep "the red dot on the blue band" apart from "the blue dot on the
red band". It knows exact words only (no synonyms), so it is for tests, CI and smoke runs of a
text path, not a stand-in for a semantic encoder.
"""
from __future__ import annotations

import hashlib
import re
from typing import Optional

import numpy as np

from sambench.errors import SambenchError
from sambench.text.base import TextEncoder

DEFAULT_DIM = 256
_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder(TextEncoder):
    name = "hash"

    def __init__(self, dim: int = DEFAULT_DIM) -> None:
        super().__init__()
        if dim < 2:
            raise SambenchError(f"text encoder hash: dimension must be at least 2, got {dim}")
        self.dim = dim
        self.identity = f"feature hashing (words + word pairs, sha1), {dim}-d"

    def _features(self, phrase: str) -> list[str]:
        words = _WORD.findall(phrase.lower())
        if not words:
            raise SambenchError(f"text encoder hash: no words in phrase {phrase!r}")
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    def _encode(self, phrases: list[str]) -> np.ndarray:
        out = np.zeros((len(phrases), self.dim), np.float32)
        for row, phrase in enumerate(phrases):
            for feature in self._features(phrase):
                digest = hashlib.sha1(feature.encode()).digest()
                index = int.from_bytes(digest[:8], "little") % self.dim
                out[row, index] += 1.0 if digest[8] & 1 else -1.0
            if not out[row].any():  # features cancelled out: fall back to the first one
                out[row, int.from_bytes(hashlib.sha1(phrase.encode()).digest()[:8], "little") % self.dim] = 1.0
        return out


def build_hash(arg: Optional[str] = None, device: str = "cpu", dim: Optional[int] = None) -> HashingEncoder:
    if arg is not None:
        try:
            given = int(arg)
        except ValueError:
            raise SambenchError(f"text encoder hash:{arg}: the argument is the dimension (an integer)") from None
        return HashingEncoder(given)
    return HashingEncoder(dim or DEFAULT_DIM)
