"""Named official checkpoints: ``FAMILY:NAME`` → a verified file in the cache.

``sambench/checkpoints.yaml`` lists each released checkpoint (URL, file name, sha256, licence,
where each value comes from). :func:`resolve` turns ``("sam", "vit_b")`` into
``$SAMBENCH_CACHE/checkpoints/sam_vit_b_01ec64.pth``, downloading it once with a progress bar.

The contract, for every failure (no network, 404, cut connection, full disk, hash mismatch):
one :class:`SambenchError`, and no file under the final name unless its hash was checked. A
download goes to a ``.part`` file beside the target, resumes with HTTP ranges when the
connection drops (a few retries within the call), is hashed as it is written, and is renamed
into place only when the hash matches; the ``.part`` file is removed on every failure.

- Offline (``--offline`` or ``SAMBENCH_OFFLINE=1``): no network access; a missing file is an
  error that names the URL and the path to place it at.
- A table entry without a published sha256 cannot be verified: it is refused unless the user
  allows it (``--allow-unverified`` or ``SAMBENCH_ALLOW_UNVERIFIED=1``); the first download then
  records the hash it saw in ``<file>.sha256`` and says so, and later loads must match it.
- ``hf:`` entries (gated Hub repositories such as SAM 3) go through ``huggingface_hub`` with the
  user's own login, into the user's Hub cache.
- ``bundled:`` entries are files shipped inside the package (the demo model): never fetched,
  hashed on every load against the table.
"""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Optional
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import yaml

from sambench.errors import SambenchError, UnknownNameError
from sambench.registry import Registry
from sambench.resources import cache_root

log = logging.getLogger("sambench")

TABLE = Path(__file__).with_name("checkpoints.yaml")
RETRIES = 3  # reconnections (with a Range request) after a dropped connection, per download
_CHUNK = 1 << 20


@lru_cache(maxsize=1)
def table() -> dict[str, dict]:
    """``"family:name"`` → entry (url or hf, file, sha256, licence, sources)."""
    return yaml.safe_load(TABLE.read_text())


def offline() -> bool:
    return os.environ.get("SAMBENCH_OFFLINE", "") not in ("", "0")


def _allow_unverified() -> bool:
    return os.environ.get("SAMBENCH_ALLOW_UNVERIFIED", "") not in ("", "0")


def checkpoint_dir() -> Path:
    return cache_root() / "checkpoints"


# Model names that read another family's released files (the official code on SAM's checkpoints).
SAME_FILES = {"sam-official": "sam"}


def resolve(family: str, checkpoint: Optional[str]) -> tuple[str, Optional[str]]:
    """The model and the file its loader should read: ``(family, checkpoint)`` unchanged unless
    ``checkpoint`` is a name in the table (and not an existing path); then the fetched, verified
    cache file, and the entry's ``family`` when another model loads it (``sam2.1:*`` -> ``sam2``)."""
    if checkpoint is None or Path(checkpoint).exists():
        return family, checkpoint
    base = SAME_FILES.get(family, family)
    key = f"{base}:{checkpoint}"
    if key in table():
        return (family if family in SAME_FILES else table()[key].get("family", family)), str(fetch(key))
    if any(k.startswith(f"{base}:") for k in table()) and not any(c in checkpoint for c in "/\\."):
        names = Registry("named checkpoint")  # a name, not a file: say which names exist
        for known in table():
            names.add(known, known)
        raise UnknownNameError(names.unknown_message(key) + "; a checkpoint file needs its path")
    return family, checkpoint


def fetch(key: str) -> Path:
    """The verified local file of table entry ``key``, downloaded if it is not cached."""
    entry = table()[key]
    if "hf" in entry:
        return _fetch_hub(key, entry)
    if "bundled" in entry:
        return _bundled(key, entry)
    target = checkpoint_dir() / entry["file"]
    if not target.is_file():
        if offline():
            raise SambenchError(f"{key}: offline and not in the cache; download {entry['url']} and place it at "
                                f"{target}" + (f" (sha256 {entry['sha256']})" if entry.get("sha256") else ""))
        expected = _expected(key, entry, target)
        _download(key, entry["url"], target, expected)
    _verify_cached(key, entry, target)
    return _unzip(entry, target) if entry.get("unzip") else target


def _bundled(key: str, entry: dict) -> Path:
    """A file shipped inside the package, checked against the table's sha256 (a few MB: hashed
    on every load, so a damaged install is an error, never other weights)."""
    path = Path(__file__).parent / entry["bundled"]
    if not path.is_file():
        raise SambenchError(f"{key}: {path} is missing from this installation of sambench; reinstall it")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise SambenchError(f"{key}: {path} has sha256 {digest}, expected {entry['sha256']}; reinstall sambench")
    return path


def _expected(key: str, entry: dict, target: Path) -> Optional[str]:
    """The hash a download must have: the table's, else None when the user allows unverified."""
    if entry.get("sha256"):
        return entry["sha256"]
    if not _allow_unverified():
        raise SambenchError(f"{key}: no published sha256 for {entry['url']}, so it cannot be verified; "
                            "pass --allow-unverified (or set SAMBENCH_ALLOW_UNVERIFIED=1) to download it and "
                            f"record the hash it has, or place a file you trust at {target}")
    return None


def _verify_cached(key: str, entry: dict, target: Path) -> None:
    """A cached file is hashed once (then ``<file>.sha256`` remembers it for this size); a file
    that does not match is moved aside, never used."""
    stamp = target.with_name(target.name + ".sha256")
    size = target.stat().st_size
    recorded = stamp.read_text().split() if stamp.is_file() else []
    if len(recorded) == 2 and recorded[1] == str(size) and (not entry.get("sha256") or recorded[0] == entry["sha256"]):
        return
    digest = _sha256(target)
    expected = entry.get("sha256") or (recorded[0] if recorded else None)
    if expected and digest != expected:
        bad = target.with_name(target.name + ".mismatch")
        os.replace(target, bad)
        raise SambenchError(f"{key}: {target} has sha256 {digest}, expected {expected}; moved it to {bad}")
    if expected is None:
        if not _allow_unverified():
            raise SambenchError(f"{key}: {target} cannot be verified (no published sha256); pass --allow-unverified "
                                "to use it and record its hash")
        log.warning("%s: no published sha256; recorded the hash of %s: %s", key, target, digest)
    stamp.write_text(f"{digest} {size}\n")


def _sha256(path: Path) -> str:
    from sambench.models.sam.checkpoint import sha256_file  # torch is loaded for the model anyway

    return sha256_file(path)


def _download(key: str, url: str, target: Path, expected: Optional[str]) -> None:
    """``url`` → ``target`` via ``target.part``; renamed only once complete and verified."""
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.{os.getpid()}.part")
    retries = 0
    try:
        with open(part, "wb") as out, tqdm(desc=key, unit="B", unit_scale=True, unit_divisor=1024,
                                            disable=not sys.stderr.isatty()) as bar:
            while True:
                error = None
                try:
                    total = _read_into(url, out, bar)
                except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as exc:
                    total, error = None, exc
                if error is None and (total is None or out.tell() >= total):
                    break  # complete (or no length announced: the stream's end is the file's end)
                retries += 1
                if retries > RETRIES:
                    raise SambenchError(f"{key}: download of {url} kept failing ({error or 'connection closed early'}); "
                                        "nothing was saved, rerun to try again")
                log.warning("%s: connection lost at %d bytes (%s); resuming", key, out.tell(), error or "short read")
        seen = _sha256(part)
        if expected and seen != expected:
            raise SambenchError(f"{key}: downloaded {url} has sha256 {seen}, expected {expected}; "
                                "the file was discarded")
        if not expected:
            log.warning("%s: no published sha256; recorded the hash of the download: %s", key, seen)
        os.replace(part, target)
        target.with_name(target.name + ".sha256").write_text(f"{seen} {target.stat().st_size}\n")
    except HTTPError as exc:
        raise SambenchError(f"{key}: {url} answered HTTP {exc.code} {exc.reason}") from None
    except URLError as exc:
        raise SambenchError(f"{key}: cannot reach {url} ({exc.reason}); check the network, or download it "
                            f"yourself and place it at {target}") from None
    except OSError as exc:  # disk full, permissions
        raise SambenchError(f"{key}: cannot write {part}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)


def _read_into(url: str, out, bar) -> Optional[int]:
    """Append ``url`` from byte ``out.tell()`` on; returns the file's total size (None when the
    server does not say). A server that ignores the range request restarts the file."""
    start = out.tell()
    headers = {"User-Agent": "sambench"}
    if start:
        headers["Range"] = f"bytes={start}-"
    with urlopen(Request(url, headers=headers), timeout=60) as resp:
        if start and resp.status != 206:
            out.seek(0)
            out.truncate()
            bar.reset()
            start = 0
        length = resp.headers.get("Content-Length")
        for block in iter(lambda: resp.read(_CHUNK), b""):
            out.write(block)
            bar.update(len(block))
    return start + int(length) if length is not None else None


def _unzip(entry: dict, archive: Path) -> Path:
    """The member of a verified archive, extracted once beside it (via a temporary name)."""
    member = archive.with_name(entry["unzip"])
    if not member.is_file():
        tmp = member.with_name(member.name + f".{os.getpid()}.part")
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(entry["unzip"]) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            os.replace(tmp, member)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise SambenchError(f"cannot extract {entry['unzip']} from {archive}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
    return member


def _fetch_hub(key: str, entry: dict) -> Path:
    """A Hub file through huggingface_hub: the user's token and cache, HF_HUB_OFFLINE respected."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:
        raise SambenchError(f"{key} is on the Hugging Face Hub: pip install huggingface_hub, then "
                            "`huggingface-cli login` with an account that accepted its licence") from None
    repo, name = entry["hf"]["repo"], entry["hf"]["file"]
    try:
        path = Path(hf_hub_download(repo, name, revision=entry["hf"].get("revision"), local_files_only=offline()))
    except GatedRepoError:
        raise SambenchError(f"{key}: https://huggingface.co/{repo} is gated: accept its licence there and log in "
                            "(`huggingface-cli login` or HF_TOKEN); sambench uses your own token") from None
    except LocalEntryNotFoundError:
        raise SambenchError(f"{key}: {name} of {repo} is not in your Hugging Face cache and the network is "
                            "off (offline mode); fetch it once online") from None
    except RepositoryNotFoundError:
        raise SambenchError(f"{key}: Hub repository {repo} not found (or not visible to your token)") from None
    except OSError as exc:
        raise SambenchError(f"{key}: cannot fetch {name} from {repo}: {exc}") from None
    if entry.get("sha256") and _sha256(path) != entry["sha256"]:
        raise SambenchError(f"{key}: {path} does not have the sha256 {entry['sha256']}")
    return path


def describe() -> list[tuple[str, str]]:
    """(name, one line) for every named checkpoint, for ``sambench models list``."""
    rows = []
    for key, entry in table().items():
        if "bundled" in entry:
            where = "shipped with sambench"
        else:
            where = f"hf:{entry['hf']['repo']}" if "hf" in entry else entry["url"].split("/")[2]
        verified = "sha256" if entry.get("sha256") else "no published sha256"
        rows.append((key, f"{entry['file']} ({where}; {verified}; {entry['licence']})"))
    return rows
