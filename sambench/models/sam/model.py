"""The ``sam`` model: our SAM v1 behind the :class:`~sambench.models.base.PromptableModel` protocol.

:class:`SamModel` (:mod:`.family`) is :class:`~sambench.models.family_model.FamilyModel` with the
SAM family: ``embed`` runs the image encoder once per image (``embed_batch`` for several
at once); ``predict`` runs the prompt encoder and mask decoder for all prompts of an image in
one call (chunked to bound memory) and returns masks, IoU predictions and low-res logits. Pre-
and post-processing are the official ``SamPredictor``'s (:mod:`.transforms`).

Options (``load_model("sam", checkpoint=..., **options)``):

- ``device``: ``"cpu"`` / ``"cuda"``; ``dtype``: ``"float32"`` (default, the parity path) or
  ``"bfloat16"`` / ``"float16"`` (``torch.autocast``; the neck and post-processing stay fp32);
- ``attention``: ``"math"`` or ``"sdpa"`` for the image encoder (same numbers in fp32);
  ``"auto"`` (default) is ``math`` in fp32, where it is bit-identical to the official code, and
  ``sdpa`` in bf16/fp16, where it is twice as fast and nothing is bit-identical anyway;
- ``compile``: ``torch.compile`` the image encoder;
- ``decoder_num_heads``: the decoder's head count, which checkpoints do not record (8);
- ``prompt_chunk``: prompts per decoder pass (memory vs. per-call overhead);
- ``text_encoder``: the text encoder's name for a text-path checkpoint that does not record it
  (a ``.pth`` without a ``<checkpoint>.json`` sidecar); must agree with a recorded one.

A checkpoint with the optional text path (``prompt_encoder.text_proj``) takes ``text=``
embeddings ``(D,)`` / ``(B, D)`` in ``predict``, alone or with points / a box; ``text_dim`` and
``text_encoder`` say what it expects (docs/text.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from sambench.errors import SambenchError
from sambench.models.family import load_family_model
from sambench.models.family_model import SamEmbedding, finish_prediction  # noqa: F401 (re-exported)
from sambench.models.sam.checkpoint import read_state_dict, recorded_text_encoder, sha256_file
from sambench.models.sam.family import FAMILY, SamModel
from sambench.models.sam.family import preprocess as _preprocess
from sambench.models.sam.sam import SamConfig

PREPROCESS = _preprocess(SamConfig()).describe()


def build_sam_model(checkpoint: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                    **options) -> SamModel:
    """The ``sam`` registry factory (:func:`~sambench.models.family.load_family_model`)."""
    if checkpoint is None:
        raise SambenchError("model sam needs a checkpoint: --model sam:PATH "
                            "(a SAM v1 .pth or .safetensors, e.g. sam_vit_b_01ec64.pth)")
    return load_family_model(FAMILY, checkpoint, device, dtype, **options)


def describe(spec: str | Path, decoder_num_heads: int = 8) -> dict:
    """Inferred config, parameter count and sha256 of a checkpoint (``sambench models info``).

    ``spec`` is a checkpoint path or ``"sam:PATH"``.
    """
    checkpoint = str(spec)
    if checkpoint.startswith(("sam:", "sam-official:")):
        checkpoint = checkpoint.split(":", 1)[1]
    state = FAMILY.state_dict(read_state_dict(checkpoint), checkpoint)
    sam = FAMILY.module(state, checkpoint, decoder_num_heads=decoder_num_heads)
    text_encoder = recorded_text_encoder(checkpoint) if sam.config.text_dim else None
    info = SamModel(sam, checkpoint=str(checkpoint), sha256=sha256_file(checkpoint),
                    text_encoder=text_encoder).info()
    return info.to_json()
