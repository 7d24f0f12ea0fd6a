"""``clip:DIR``: the text tower of a CLIP model in the Hugging Face transformers layout.

The SAM paper's text-to-mask used the largest public CLIP, ViT-L/14@336px, with ℓ2-normalised
embeddings (SAM App. D.5); ``openai/clip-vit-large-patch14-336`` is that model in
this layout. Only a local folder is read (``local_files_only``): sambench never downloads
weights. The projected text embedding (``text_embeds``, 768-d for ViT-L/14) is returned,
i.e. the vector CLIP compares with image embeddings. Texts longer than CLIP's 77 tokens are
truncated, as CLIP itself does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from sambench.errors import SambenchError
from sambench.text.base import TextEncoder, quiet_transformers

USAGE = ("--text-encoder clip:DIR, DIR a local transformers CLIP folder (config.json, weights, "
         "tokenizer), e.g. a copy of openai/clip-vit-large-patch14-336 (the paper's ViT-L/14@336px)")


def _loading(what: str, model_dir, load):
    """``load()``, a transformers loading error becoming one ``SambenchError`` line."""
    try:
        with quiet_transformers():  # the other tower's unused weights would be listed key by key
            return load()
    except (OSError, ValueError, RuntimeError) as exc:
        raise SambenchError(f"{what}: cannot load {model_dir}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def load_tower(model_dir, model_class, tower: str, what: str):
    """One tower (``"text"`` / ``"vision"``) of a local transformers CLIP folder, with the
    projection of a full CLIP config (shared by both towers)."""
    from transformers import AutoConfig

    def load():
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        tower_config = getattr(config, f"{tower}_config", config)
        if hasattr(config, "projection_dim"):
            tower_config.projection_dim = config.projection_dim
        return model_class.from_pretrained(str(model_dir), config=tower_config, local_files_only=True)
    return _loading(what, model_dir, load)


class ClipTextEncoder(TextEncoder):
    name = "clip"

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        super().__init__()
        try:
            from transformers import AutoTokenizer, CLIPTextModelWithProjection
        except ImportError:
            raise SambenchError("text encoder clip needs transformers: pip install 'sambench[text]'") from None
        what = "text encoder clip"
        self.model = load_tower(model_dir, CLIPTextModelWithProjection, "text", what)
        self.tokenizer = _loading(what, model_dir, lambda: AutoTokenizer.from_pretrained(
            str(model_dir), local_files_only=True))
        self.device = device
        self.model = self.model.to(device).eval()
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 77))
        self.identity = f"CLIP text tower from {model_dir} ({getattr(self.model.config, '_name_or_path', '')})"

    def _encode(self, phrases: list[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(phrases), 64):
            tokens = self.tokenizer(phrases[start:start + 64], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.append(self.model(**tokens).text_embeds.float().cpu().numpy())
        return np.concatenate(out)


def build_clip(arg: Optional[str] = None, device: str = "cpu", dim: Optional[int] = None) -> ClipTextEncoder:
    if not arg:
        raise SambenchError(f"text encoder clip needs a local path: {USAGE}")
    model_dir = Path(arg).expanduser()
    if not (model_dir / "config.json").is_file():
        raise SambenchError(f"text encoder clip: {model_dir} is not a transformers model folder "
                            f"(no config.json); {USAGE}")
    return ClipTextEncoder(model_dir, device)
