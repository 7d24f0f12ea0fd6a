"""Where the declarative folders (tasks/, dataset_adapters/, reports/) live.

In a source checkout or editable install they sit at the repository root; a regular install
carries them inside the package as ``sambench.assets.*`` (see setup.py).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def asset_dir(name: str) -> Path:
    """Path of ``tasks``, ``dataset_adapters`` or ``reports``."""
    source = _REPO_ROOT / name
    if source.is_dir() and (_REPO_ROOT / "sambench" / "__init__.py").is_file():
        return source
    installed = resources.files(f"sambench.assets.{name}")
    return Path(str(installed))
