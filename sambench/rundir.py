"""The run directory's guards: one writer at a time, no stale resume, damaged records recovered.

- **Lock**: ``<out>/.lock`` held with ``flock`` for the whole run and naming its holder
  (pid, host, start time). A second process is refused with that name; the kernel drops the
  lock of a killed process, so a lock left behind is taken over (and said so).
- **Pins**: ``run.json`` holds the settings (:meth:`RunConfig.fingerprint`) and the content a
  resume must find unchanged: the checkpoint's sha256 and each dataset's fingerprint (the
  sha256 of every annotation file, the list of the other files (images) with sizes and
  mtimes, and with ``--verify-data`` their own sha256). Anything different refuses the resume with one
  line; ``--restart`` starts the folder over.
- **Temporary files** of a killed run (``.NAME.PID.tmp``) are removed when the lock is taken.
- **Records**: a record file that does not parse or validate is moved to
  ``records/.damaged/``, logged, and its sample recomputed; a non-finite number is refused
  with the model and sample named, before anything is written.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Optional

from sambench.errors import SambenchError
from sambench.results import atomic_write_json
from sambench.types import SampleRecord

log = logging.getLogger("sambench")

# Annotation files are hashed on every run; every other file (images, label maps, HDF5,
# parquet: often large) is pinned by size and mtime, and hashed only with --verify-data.
ANNOTATION_SUFFIXES = {".json", ".mat", ".txt", ".csv", ".xml", ".yaml", ".yml", ".p", ".pkl", ".pickle"}
# What --restart removes: everything a run writes (never other files a user keeps there).
_RUN_FILES = ("run.json", "results.json", "report.html", "report.pdf", "records", "sample_lists")


def writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` as a folder, or one clear line saying why it cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SambenchError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SambenchError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    return path


class RunLock:
    """An exclusive ``flock`` on ``<out>/.lock``; the file names the holder for whoever waits."""

    def __init__(self, out: Path):
        self.path = Path(out) / ".lock"
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise SambenchError(f"{self.path.parent} is in use by {_describe(holder)}; wait for it "
                                    "to finish or use another --out") from None
            raise SambenchError(f"cannot lock {self.path}: {exc.strerror}") from None
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if previous:
            log.warning("taking over the lock of %s in %s (it is no longer running)",
                        _describe(previous), self.path.parent)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: nobody to take over from
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']} (since {info['started']})"
    except (ValueError, KeyError, TypeError):
        return holder[:200]


def restart(out: Path, task_names=()) -> None:
    """Remove what a previous run wrote in ``out`` (``--restart``): records, pins, results,
    reports and the tasks' own folders (instances: its COCO results JSON); other files stay."""
    for name in (*_RUN_FILES, *task_names):
        path = Path(out) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def data_fingerprint(root: Path, verify: bool = False) -> dict:
    """What identifies a dataset folder's content without reading every image.

    ``annotations``: sha256 over (path, content sha256) of every annotation file (by suffix,
    :data:`ANNOTATION_SUFFIXES`); ``images``: sha256 over (path, size, mtime) of every other
    file; with ``verify`` also ``images_sha256`` over those files' content. Paths are relative
    and sorted; hidden files (caches, editors' swap files) are left out.
    """
    root = Path(root)
    if not root.exists():
        return {"absent": True}
    annotations, images, contents = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    n_files = n_images = 0
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(root).as_posix() if path != root else path.name
        if rel.startswith(".") or "/." in rel:
            continue
        if path.suffix.lower() in ANNOTATION_SUFFIXES:
            annotations.update(f"{rel}\0{file_sha256(path)}\n".encode())
            n_files += 1
        else:
            st = path.stat()
            images.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            n_images += 1
            if verify:
                contents.update(f"{rel}\0{file_sha256(path)}\n".encode())
    fp = {"annotation_files": n_files, "annotations": annotations.hexdigest(),
          "other_files": n_images, "images": images.hexdigest()}
    if verify:
        fp["images_sha256"] = contents.hexdigest()
    return fp


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(config, info: dict, roots: dict) -> RunLock:
    """Make the run directory ready (rank 0, before any record is written): writable, locked,
    emptied by ``--restart``, its settings and content pinned or checked against the pins.
    ``roots``: dataset name -> folder. Returns the held lock (release it when done)."""
    out = writable_dir(config.out, "run directory (--out)")
    lock = RunLock(out).acquire()
    try:
        for tmp in out.rglob(".*.tmp"):  # left by a killed run (we hold the lock: no writer is live)
            tmp.unlink(missing_ok=True)
        if config.restart:
            restart(out, [t.name for t in config.suite.tasks])
        content = {"checkpoint_sha256": info.get("sha256"),
                   "data": {name: data_fingerprint(root, config.verify_data) for name, root in roots.items()}}
        pin(out, config.fingerprint(), content, fresh=config.restart)
    except BaseException:
        lock.release()
        raise
    return lock


def pin(out: Path, settings: dict, content: dict, fresh: bool) -> None:
    """Write ``run.json`` for a new run, or refuse a resume whose settings or content differ.

    ``content``: ``{"checkpoint_sha256": ..., "data": {dataset: fingerprint}}``. ``fresh``
    (``--restart``) means the folder was just emptied."""
    pinned = Path(out) / "run.json"
    want = json.loads(json.dumps({**settings, "content": content}))
    if fresh or not pinned.is_file():
        atomic_write_json(pinned, want)
        return
    try:
        previous = json.loads(pinned.read_text())
        if not isinstance(previous, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise SambenchError(f"{pinned} is unreadable ({exc}); rerun with --restart to start {out} over") from None
    changed = sorted(k for k in settings if want.get(k) != previous.get(k))
    if changed:
        raise SambenchError(f"{out} holds a run with different settings ({', '.join(changed)}); "
                            "use another --out, or --restart to start it over")
    _compare_content(out, previous.get("content"), content)


def _compare_content(out: Path, before: Optional[dict], now: dict) -> None:
    again = "its records would be stale: use --restart to start it over, or another --out"
    if not isinstance(before, dict):
        raise SambenchError(f"{out}/run.json pins no content fingerprint (written by an older sambench), "
                            f"so a resume cannot be checked; {again}")
    if before.get("checkpoint_sha256") != now.get("checkpoint_sha256"):
        raise SambenchError(f"the checkpoint's content changed since {out} was started (sha256 "
                            f"{str(before.get('checkpoint_sha256'))[:12]} pinned, now "
                            f"{str(now.get('checkpoint_sha256'))[:12]}); {again}")
    for name, fp in now.get("data", {}).items():
        old = (before.get("data") or {}).get(name)
        if old is None:
            raise SambenchError(f"dataset {name} was not pinned when {out} was started; {again}")
        for key, what in (("absent", "presence"), ("annotations", "annotation files"),
                          ("images", "image files (list, sizes or modification times)"),
                          ("images_sha256", "image contents (--verify-data)")):
            compared = key == "absent" or (key in fp and key in old)  # image hashes: when both have them
            if compared and fp.get(key) != old.get(key):
                raise SambenchError(f"dataset {name} changed since {out} was started: its {what} "
                                    f"differ from those pinned in run.json; {again}")


def read_record(path: Path, sample_id: str) -> Optional[SampleRecord]:
    """The record at ``path``, or None after moving a damaged one to ``records/.damaged/``
    (it does not parse, is not a record, or is for another sample)."""
    try:
        data = json.loads(Path(path).read_text())
        record = SampleRecord.from_json(data)
        if (record.sample_id != sample_id or not isinstance(record.rows, list)
                or not isinstance(record.errors, list)
                or not all(isinstance(r, dict) for r in record.rows)
                or not all(isinstance(e, dict) and "kind" in e for e in record.errors)):
            raise ValueError("not a record of this sample")
        return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        damaged = _damaged_dir(Path(path)) / Path(path).name
        damaged.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, damaged)
        log.warning("damaged record %s (%s): moved to %s, its sample is recomputed",
                    path, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__, damaged)
        return None


def _damaged_dir(path: Path) -> Path:
    parts = path.parts
    index = len(parts) - 1 - parts[::-1].index("records")
    return Path(*parts[:index + 1], ".damaged", *parts[index + 1:-1])


def non_finite(value, where: str = "") -> Optional[str]:
    """The path of the first NaN or infinity in a JSON-like value (None: all finite)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where or "value"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite(item, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]")
        if found:
            return found
    return None
