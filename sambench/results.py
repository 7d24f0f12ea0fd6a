"""results.json: the run summary (schema ``sambench.results/1``, README "What a run writes") and provenance."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sambench.errors import SambenchError

SCHEMA = "sambench.results/1"


def scored(entry: dict) -> bool:
    """Whether a results entry holds numbers: status ``ok`` (the default of files written before
    statuses existed); ``absent`` and ``unsupported`` entries are reported, never scored."""
    return entry.get("status", "ok") == "ok"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so a killed run never leaves half a file.

    Any failure (a full disk, a NaN, which JSON cannot hold) removes the temporary file;
    a NaN is a ``ValueError`` for the caller to name, a disk problem a :class:`SambenchError`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1 if path.name == "results.json" else None, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SambenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def git_sha() -> str | None:
    """The commit of the sambench source tree, when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def provenance(command: str, seed: int, device: str, dtype: str) -> dict:
    import torch

    from sambench import __version__

    return {"id": uuid.uuid4().hex[:12],
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sambench_version": __version__, "git_sha": git_sha(), "command": command,
            "seed": seed, "device": device, "dtype": dtype, "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "duration_s": None}


def load_results(run_dir: Path) -> dict:
    """Read and check a run directory's results.json (clear errors for the wrong thing)."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise SambenchError(f"{run_dir}: no results.json (not a sambench run directory?)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SambenchError(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SambenchError(f"{path}: schema {data.get('schema') if isinstance(data, dict) else None!r} "
                            f"is not {SCHEMA!r}")
    problem = _malformed(data)
    if problem:
        raise SambenchError(f"{path}: malformed results ({problem}); rerun the run to rewrite it")
    return data


def _malformed(data: dict) -> str | None:
    """What a results dict lacks that every reader relies on (None: nothing)."""
    for key in ("run", "model"):
        if not isinstance(data.get(key), dict):
            return f"no {key!r} object"
    if not isinstance(data.get("results"), list):
        return "no 'results' list"
    for i, entry in enumerate(data["results"]):
        if not isinstance(entry, dict):
            return f"results[{i}] is not an object"
        for key, kind in (("task", str), ("dataset", str), ("metrics", dict)):
            if not isinstance(entry.get(key), kind):
                return f"results[{i}] has no {key!r} {kind.__name__}"
    return None
