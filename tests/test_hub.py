"""Named checkpoints (sambench.hub) against a loopback HTTP server: never the internet.

Every failure must leave no file under the final name and no ``.part`` file behind.
"""
from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest

from sambench import hub
from sambench.errors import SambenchError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, more than one read chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good: the payload (honours Range); /cut: the first request stops half-way;
    /norange: cuts once and ignores Range (a restart); anything else: 404."""

    cuts: dict = {}
    files: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        body = self.files.get(name)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if self.headers.get("Range") and name != "norange":
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in ("cut", "norange") and self.cuts.get(name, 0) == 0:
            self.cuts[name] = 1
            self.wfile.write(body[start:start + len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def server():
    _Handler.cuts = {}
    _Handler.files = {"good": PAYLOAD, "cut": PAYLOAD, "norange": PAYLOAD, "bad": PAYLOAD[:-1] + b"X"}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("SAMBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("SAMBENCH_ALLOW_UNVERIFIED", raising=False)
    return tmp_path / "checkpoints"


def use_table(monkeypatch, base, **entries):
    table = {f"sam:{name}": {"url": f"{base}/{path}", "file": f"{name}.pth", "sha256": sha,
                             "licence": "test", "source": "test"}
             for name, (path, sha) in entries.items()}
    monkeypatch.setattr(hub, "table", lambda: table)


def leftovers(folder):
    return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


def test_good_download_is_verified_cached_and_reused(server, cache, monkeypatch):
    use_table(monkeypatch, server, b=("good", SHA))
    family, path = hub.resolve("sam", "b")
    assert family == "sam" and open(path, "rb").read() == PAYLOAD
    assert leftovers(cache) == ["b.pth", "b.pth.sha256"]
    _Handler.files.clear()  # a second resolve must not touch the network
    assert hub.resolve("sam", "b") == ("sam", path)
    assert hub.resolve("sam-official", "b") == ("sam-official", path)  # the official code reads SAM's files


@pytest.mark.parametrize("path", ["cut", "norange"])
def test_a_cut_connection_resumes_or_restarts(server, cache, monkeypatch, path):
    use_table(monkeypatch, server, b=(path, SHA))
    assert open(hub.resolve("sam", "b")[1], "rb").read() == PAYLOAD
    assert _Handler.cuts[path] == 1
    assert leftovers(cache) == ["b.pth", "b.pth.sha256"]


def test_hash_mismatch_leaves_nothing(server, cache, monkeypatch):
    use_table(monkeypatch, server, b=("bad", SHA))
    with pytest.raises(SambenchError, match="expected " + SHA):
        hub.resolve("sam", "b")
    assert leftovers(cache) == []


def test_404_and_unreachable_host_are_one_clear_error(server, cache, monkeypatch):
    use_table(monkeypatch, server, b=("missing", SHA))
    with pytest.raises(SambenchError, match="HTTP 404"):
        hub.resolve("sam", "b")
    use_table(monkeypatch, "http://127.0.0.1:1", b=("good", SHA))  # nothing listens on port 1
    with pytest.raises(SambenchError, match="cannot reach"):
        hub.resolve("sam", "b")
    assert leftovers(cache) == []


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(server, cache, monkeypatch):
    import builtins
    import errno

    class FullDisk:
        """A file that takes the first 100 kB, then fails as a full disk does."""

        def __init__(self, file):
            self.file = file

        def write(self, data):
            if self.file.tell() + len(data) > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def fake_open(path, mode="r", *args, **kwargs):
        file = builtins.open(path, mode, *args, **kwargs)
        return FullDisk(file) if "w" in mode else file

    use_table(monkeypatch, server, b=("good", SHA))
    monkeypatch.setattr(hub, "open", fake_open, raising=False)
    with pytest.raises(SambenchError, match="cannot write .*No space left on device"):
        hub.resolve("sam", "b")
    assert leftovers(cache) == []


def test_offline_refuses_the_network_and_says_where_to_put_the_file(server, cache, monkeypatch):
    use_table(monkeypatch, server, b=("good", SHA))
    monkeypatch.setenv("SAMBENCH_OFFLINE", "1")
    with pytest.raises(SambenchError, match=f"offline.*place it at {cache / 'b.pth'}"):
        hub.resolve("sam", "b")
    assert _Handler.cuts == {} and leftovers(cache) == []
    cache.mkdir(parents=True)
    (cache / "b.pth").write_bytes(PAYLOAD)  # placed by hand: verified, then used
    assert hub.resolve("sam", "b") == ("sam", str(cache / "b.pth"))


def test_a_corrupt_cached_file_is_moved_aside(cache, monkeypatch):
    use_table(monkeypatch, "http://127.0.0.1:1", b=("good", SHA))
    cache.mkdir(parents=True)
    (cache / "b.pth").write_bytes(b"truncated")
    with pytest.raises(SambenchError, match="moved it to"):
        hub.resolve("sam", "b")
    assert leftovers(cache) == ["b.pth.mismatch"]


def test_unknown_hash_needs_consent_then_records_the_hash(server, cache, monkeypatch):
    use_table(monkeypatch, server, b=("good", None))
    with pytest.raises(SambenchError, match="--allow-unverified"):
        hub.resolve("sam", "b")
    assert leftovers(cache) == []
    monkeypatch.setenv("SAMBENCH_ALLOW_UNVERIFIED", "1")
    _, path = hub.resolve("sam", "b")
    assert (cache / "b.pth.sha256").read_text().split()[0] == SHA
    monkeypatch.delenv("SAMBENCH_ALLOW_UNVERIFIED")
    assert hub.resolve("sam", "b") == ("sam", path)  # the recorded hash now verifies it


def test_paths_and_unknown_names_pass_through(cache, tmp_path):
    existing = tmp_path / "vit_b"
    existing.write_bytes(b"x")
    assert hub.resolve("sam", str(existing)) == ("sam", str(existing))
    assert hub.resolve("sam", "my_finetune.pth") == ("sam", "my_finetune.pth")
    assert hub.resolve("grabcut", None) == ("grabcut", None)
    with pytest.raises(SambenchError, match="unknown named checkpoint 'sam:vit_hh'; did you mean sam:vit_h"):
        hub.resolve("sam", "vit_hh")


def test_every_table_entry_is_complete():
    """A hash is a sha256 with a public record named down to the commit; a missing one says why."""
    files = [entry["file"] for entry in hub.table().values()]
    assert len(files) == len(set(files))
    for key, entry in hub.table().items():
        family, _, name = key.partition(":")
        assert family and name and entry["file"] and entry["licence"] and entry["source"], key
        assert sum(k in entry for k in ("url", "hf", "bundled")) == 1, key
        if "bundled" in entry:  # shipped inside the package: its hash is the committed file's
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and entry["sha256_source"], key
        elif entry["sha256"] is None:
            assert entry["sha256_source"].startswith("unknown"), key
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), key
            assert re.search(r"\S+/\S+ \S+ @ [0-9a-f]{40}", entry["sha256_source"]), key


def test_load_model_resolves_a_named_checkpoint(server, cache, monkeypatch, tmp_path, one_thread):
    from sambench import load_model
    from sambench.models.sam import write_random_checkpoint

    ckpt = tmp_path / "tiny.pth"
    write_random_checkpoint(str(ckpt), "tiny", seed=0)
    _Handler.files["tiny"] = ckpt.read_bytes()
    use_table(monkeypatch, server, tiny=("tiny", hashlib.sha256(ckpt.read_bytes()).hexdigest()))
    hub.table()["sam9:tiny"] = dict(hub.table()["sam:tiny"], family="sam")  # a version another model loads
    for spec in ("sam:tiny", "sam9:tiny"):
        model = load_model(spec)
        assert model.info().checkpoint == str(cache / "tiny.pth")
        assert model.info().sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_cli_offline_flag_refuses_the_network(cache, monkeypatch, capsys):
    from sambench.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # so the flag's changes to the environment are undone
    monkeypatch.setenv("SAMBENCH_OFFLINE", "0")
    assert main(["models", "fetch", "sam:vit_b", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "offline and not in the cache; download https://dl.fbaipublicfiles.com/segment_anything/" in err
    assert str(cache / "sam_vit_b_01ec64.pth") in err and leftovers(cache) == []


def test_hub_entries_use_the_users_huggingface_hub(cache, monkeypatch, tmp_path):
    import sys

    table = {"sam3:sam3": {"hf": {"repo": "facebook/sam3", "file": "sam3.pt"}, "file": "sam3.pt", "sha256": None}}
    monkeypatch.setattr(hub, "table", lambda: table)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(SambenchError, match="pip install huggingface_hub"):
        hub.resolve("sam3", "sam3")
    monkeypatch.delitem(sys.modules, "huggingface_hub")
    huggingface_hub = pytest.importorskip("huggingface_hub", reason="installed with datasets")
    calls = []
    (tmp_path / "sam3.pt").write_bytes(b"w")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, **kw: calls.append((repo, name, kw)) or str(tmp_path / "sam3.pt"))
    monkeypatch.setenv("SAMBENCH_OFFLINE", "1")
    assert hub.resolve("sam3", "sam3") == ("sam3", str(tmp_path / "sam3.pt"))
    assert calls == [("facebook/sam3", "sam3.pt", {"revision": None, "local_files_only": True})]
