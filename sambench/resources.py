"""Where the declarative folders (tasks/, dataset_adapters/, reports/) live.

In a source checkout or editable install they sit at the repository root; a regular install
carries them inside the package as ``sambench.assets.*`` (see setup.py).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent


def asset_dir(name: str) -> Path:
    """Path of ``tasks``, ``dataset_adapters`` or ``reports``."""
    source = _REPO_ROOT / name
    if source.is_dir() and (_REPO_ROOT / "sambench" / "__init__.py").is_file():
        return source
    return _PACKAGE / "assets" / name
