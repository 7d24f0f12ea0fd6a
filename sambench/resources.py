"""Where the declarative folders (tasks/, dataset_adapters/, reports/) and the user's cache live.

In a source checkout or editable install they sit at the repository root; a regular install
carries them inside the package as ``sambench.assets.*`` (see setup.py).
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent


def asset_dir(name: str) -> Path:
    """Path of ``tasks``, ``dataset_adapters`` or ``reports``."""
    source = _REPO_ROOT / name
    if source.is_dir() and (_REPO_ROOT / "sambench" / "__init__.py").is_file():
        return source
    return _PACKAGE / "assets" / name


def cache_root() -> Path:
    """``$SAMBENCH_CACHE`` (unset or empty: ``~/.cache/sambench``): checkpoints, embeddings and
    generated data each have a folder below it."""
    return Path(os.environ.get("SAMBENCH_CACHE") or Path.home() / ".cache" / "sambench")
