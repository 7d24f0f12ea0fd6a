"""Regression tests for hostile input and faults (docs/reliability.md): every defect found
by the probes of December 2026 has a test here or in tests/robustness/.

Each bad-data case is run through both `sambench run` (a counted skip with an example) and
`sambench datasets check` (an ERROR line naming the file and id); the two must agree.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sambench.cli import main
from sambench.datasets import resolve
from sambench.datasets.base import BROKEN
from sambench.datasets.check import check
from sambench.errors import SambenchError

import stand_in  # noqa: F401  (registers the test-disk model)
from stand_in import DiskModel

SQUARE = [[4, 4, 20, 4, 20, 20, 4, 20]]


def write_coco(root: Path, annotations: list, images: list | None = None, size: int = 32) -> Path:
    """A COCO folder: images 1 and 2 (size x size grey squares) and the given annotations."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = images or [{"id": i, "file_name": f"{i}.png", "height": size, "width": size} for i in (1, 2)]
    for img in images:
        path = root / "images" / img["file_name"]
        if not path.exists():
            Image.fromarray(np.full((size, size, 3), 40 * (int(img["id"]) % 5), np.uint8)).save(path)
    data = {"images": images, "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 100 + k, "image_id": 1, "category_id": 1, "iscrowd": 0, **a}
                            for k, a in enumerate(annotations)]}
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def good(image_id: int = 1) -> dict:
    return {"image_id": image_id, "segmentation": SQUARE}


def run_json(*args, capsys=None) -> tuple[int, dict | None]:
    rc = main(["run", "--model", "test-disk", "--task", "point", "--no-cache", "--no-report", "--json", *args])
    out = capsys.readouterr().out if capsys else ""
    return rc, (json.loads(out.strip().splitlines()[-1]) if rc == 0 and capsys else None)


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sambench: error:")]
    assert len(err) == 1, err
    return err[0]


# ---- 1. validate before decoding: run and `datasets check` agree on every case ----------

def _compressed(runs: list[int]) -> str:
    """COCO's compressed counts for a list of runs (as pycocotools' rleToString writes them)."""
    out = []
    for i, value in enumerate(runs):
        x = value - runs[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


CASES = {  # name -> (annotations, images or None, the kind both must report)
    "nan_polygon": ([{"segmentation": [[4, float("nan"), 20, 4, 20, 20]]}], None, "bad_segmentation"),
    "huge_polygon": ([{"segmentation": [[4, 1e30, 20, 4, 20, 20]]}], None, "bad_segmentation"),
    "two_point_polygon": ([{"segmentation": [[4, 4, 20, 20]]}], None, "bad_segmentation"),
    "odd_polygon": ([{"segmentation": [[4, 4, 20, 20, 9]]}], None, "bad_segmentation"),
    "garbage_rle": ([{"segmentation": {"size": [32, 32], "counts": "\x01\x02garbage~~"}}], None, "bad_segmentation"),
    "long_rle": ([{"segmentation": {"size": [32, 32], "counts": [500, 600]}}], None, "bad_segmentation"),
    "long_compressed_rle": ([{"segmentation": {"size": [32, 32], "counts": _compressed([500, 600])}}], None,
                            "bad_segmentation"),
    "short_rle": ([{"segmentation": {"size": [32, 32], "counts": [100, 50]}}], None, "bad_segmentation"),
    "short_compressed_rle": ([{"segmentation": {"size": [32, 32], "counts": _compressed([100, 50])}}], None,
                             "bad_segmentation"),
    "rle_size": ([{"segmentation": {"size": [16, 64], "counts": [1000, 24]}}], None, "bad_segmentation"),
    "huge_declared_size": ([{"segmentation": SQUARE}],
                           [{"id": 1, "file_name": "1.png", "height": 60000, "width": 60000},
                            {"id": 2, "file_name": "2.png", "height": 32, "width": 32}], "bad_image_size"),
    "declared_size_differs": ([{"segmentation": SQUARE}], [{"id": 1, "file_name": "1.png", "height": 40, "width": 32},
                                   {"id": 2, "file_name": "2.png", "height": 32, "width": 32}], "image"),
    "duplicate_image_id": ([], [{"id": 1, "file_name": "1.png", "height": 32, "width": 32},
                                {"id": 2, "file_name": "2.png", "height": 32, "width": 32},
                                {"id": 2, "file_name": "3.png", "height": 32, "width": 32}], "duplicate_image_id"),
    "orphan_annotation": ([{"image_id": 7, "segmentation": SQUARE}], None, "orphan_annotation"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_and_check_agree_on_bad_data(case, tmp_path, capsys):
    annotations, images, kind = CASES[case]
    # images 1 and 2 are 32x32 on disk; the defect is in image 1 (or in the file as a whole)
    root = write_coco(tmp_path / case, [good(2)] + [{"image_id": 1, **a} for a in annotations], images)
    rc, results = run_json("--dataset", str(root), "--out", str(tmp_path / "run"), capsys=capsys)
    assert rc == 0
    (entry,) = results["results"]
    assert entry["counts"].get(kind, 0) >= 1, entry["counts"]
    assert kind in entry["count_examples"]
    report = check(resolve(str(root)))
    errors = {message.split(" (")[0] for level, message in report.lines if level == "ERROR"}
    assert kind in errors
    named = next(m for level, m in report.lines if level == "ERROR" and m.startswith(kind))
    assert "annotations.json" in named or "1.png" in named or "image 1" in named or "1:" in named
    reported_by_run = {k for k in entry["counts"] if k in BROKEN or k == "image"}
    assert reported_by_run == errors, (reported_by_run, errors)
    assert report.exit_code == 1


def test_datasets_check_cli_survives_a_nan_polygon(tmp_path, capsys):
    root = write_coco(tmp_path / "d", [{"image_id": 1, "segmentation": [[4, float("nan"), 20, 4, 20, 20]]}])
    assert main(["datasets", "check", str(root)]) == 1
    assert "ERROR    bad_segmentation (1): 1: annotations.json: annotation 100" in capsys.readouterr().out


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_a_30000_square_png_is_a_counted_skip_with_the_pixel_limit_named(tmp_path, capsys):
    root = write_coco(tmp_path / "d", [good(1), good(2)])
    _png_header_only(root / "images" / "1.png", 30000, 30000)
    rc, results = run_json("--dataset", str(root), "--out", str(tmp_path / "run"), capsys=capsys)
    assert rc == 0
    (entry,) = results["results"]
    assert entry["counts"]["image"] == 1 and "--max-pixels" in entry["count_examples"]["image"]


def test_the_pixel_limit_can_be_raised_and_lowered(tmp_path, capsys):
    root = write_coco(tmp_path / "d", [good(1), good(2)])
    rc, results = run_json("--dataset", str(root), "--out", str(tmp_path / "a"), "--max-pixels", "1000",
                           capsys=capsys)
    assert rc == 0 and results["results"][0]["counts"]["bad_image_size"] == 2  # 32x32 = 1024 > 1000
    rc, results = run_json("--dataset", str(root), "--out", str(tmp_path / "b"), "--max-pixels", "1024",
                           capsys=capsys)
    assert rc == 0 and results["results"][0]["counts"] == {}


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    from sambench.types import read_image

    values = np.array([[0, 257, 32896, 65535]], np.uint16)  # -> 0, 1, 128, 255
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    image = read_image(tmp_path / "g16.png")
    assert image.dtype == np.uint8 and image.shape == (1, 4, 3)
    assert image[0, :, 0].tolist() == [0, 1, 128, 255]
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tiff")
    assert read_image(tmp_path / "f.tiff")[0, :, 1].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 3.0]], np.float32)).save(tmp_path / "big.tiff")
    with pytest.raises(SambenchError, match="outside 0..1"):
        read_image(tmp_path / "big.tiff")


# ---- 2. stale results are impossible ---------------------------------------------------

class _CheckpointModel(DiskModel):
    """The disk model with a checkpoint file whose sha256 it reports (as sam does)."""

    def __init__(self, checkpoint):
        from sambench.rundir import file_sha256

        self.sha = file_sha256(checkpoint)

    def info(self):
        info = super().info()
        info.sha256 = self.sha
        return info


def _register_checkpoint_model():
    from sambench.models import MODELS

    if "test-ckpt" not in MODELS:
        MODELS.add("test-ckpt", lambda checkpoint=None, device="cpu", dtype="float32": _CheckpointModel(checkpoint),
                   "test")


def test_resume_refuses_a_replaced_checkpoint_and_restart_starts_over(synth_dir, tmp_path, capsys):
    _register_checkpoint_model()
    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"first weights")
    args = ["run", "--model", f"test-ckpt:{ckpt}", "--task", "point", "--no-cache", "--no-report",
            "--dataset", str(synth_dir), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    ckpt.write_bytes(b"other weights")  # replaced in place, same path
    capsys.readouterr()
    assert main(args) == 2
    assert "checkpoint's content changed" in one_line_error(capsys)
    before = DiskModel.calls
    assert main(args + ["--restart"]) == 0
    assert DiskModel.calls - before == 3  # every image recomputed
    assert main(args) == 0  # and now it resumes


def test_resume_refuses_an_edited_dataset(synth_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    args = ["--dataset", str(data), "--out", str(tmp_path / "run")]
    assert run_json(*args)[0] == 0
    ann = data / "annotations.json"
    stat = ann.stat()
    ann.write_text(ann.read_text().replace('"iscrowd": 0', '"iscrowd": 0 '))  # same meaning, new bytes
    os.utime(ann, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    capsys.readouterr()
    assert run_json(*args)[0] == 2
    assert "annotation files differ" in one_line_error(capsys)
    assert run_json(*args, "--restart")[0] == 0
    image = sorted((data / "images").glob("*.png"))[0]
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # edited in place
    capsys.readouterr()
    assert run_json(*args)[0] == 2
    assert "image files" in one_line_error(capsys)


def test_verify_data_catches_an_image_edit_that_keeps_size_and_mtime(synth_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    args = ["--dataset", str(data), "--out", str(tmp_path / "run"), "--verify-data"]
    assert run_json(*args)[0] == 0
    image = sorted((data / "images").glob("*.png"))[0]
    stat = image.stat()
    raw = bytearray(image.read_bytes())
    raw[-20] ^= 0xFF  # same size
    image.write_bytes(bytes(raw))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_json(*args[:-1])[0] == 0  # without --verify-data, size and mtime match
    capsys.readouterr()
    assert run_json(*args)[0] == 2
    assert "image contents (--verify-data)" in one_line_error(capsys)


_HOLD = """
import fcntl, json, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}).encode())
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_process_is_refused_and_a_dead_holders_lock_is_taken_over(synth_dir, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_json("--dataset", str(synth_dir), "--out", str(out))[0] == 2
        assert f"in use by pid {holder.pid}" in one_line_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert run_json("--dataset", str(synth_dir), "--out", str(out))[0] == 0  # killed: taken over
    assert f"taking over the lock of pid {holder.pid}" in caplog.text


# ---- 3. damaged run directories recover ------------------------------------------------

@pytest.mark.parametrize("damage", [b"", b'{"sample_id": "x", "rows": [', b"\x00\xff garbage",
                                    b'{"sample_id": "other", "rows": [], "errors": []}', b"[1, 2]"])
def test_a_damaged_record_is_moved_aside_and_recomputed(synth_dir, tmp_path, damage, capsys):
    out = tmp_path / "run"
    rc, first = run_json("--dataset", str(synth_dir), "--out", str(out), capsys=capsys)
    record = sorted((out / "records" / "point" / "synth-shapes").glob("*.json"))[1]
    record.write_bytes(damage)
    before = DiskModel.calls
    rc, again = run_json("--dataset", str(synth_dir), "--out", str(out), capsys=capsys)
    assert rc == 0 and DiskModel.calls - before == 1
    assert again["results"][0]["metrics"] == first["results"][0]["metrics"]
    assert (out / "records" / ".damaged" / "point" / "synth-shapes" / record.name).read_bytes() == damage


class _NanModel(DiskModel):
    def predict(self, *args, **kwargs):
        pred = super().predict(*args, **kwargs)
        pred.scores[...] = np.nan
        return pred


def test_a_nan_score_is_one_line_naming_model_and_sample_and_leaves_no_tmp(synth_dir, tmp_path, capsys):
    from sambench.models import MODELS

    if "test-nan" not in MODELS:
        MODELS.add("test-nan", lambda checkpoint=None, device="cpu", dtype="float32": _NanModel(), "test")
    out = tmp_path / "run"
    rc = main(["run", "--model", "test-nan", "--task", "point", "--no-cache", "--dataset", str(synth_dir),
               "--out", str(out)])
    assert rc == 2
    line = one_line_error(capsys)
    assert "model test-nan gave a non-finite value" in line and "sample" in line and "score" in line
    assert not list(out.rglob("*.tmp"))


def test_a_checkpoint_with_nan_weights_is_one_line_and_leaves_no_tmp(synth_dir, tmp_path, capsys, one_thread):
    import torch

    from sambench.models.sam import PRESETS
    from sambench.models.sam.random_checkpoint import random_state_dict

    state = random_state_dict(PRESETS["tiny"]())
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tmp_path / "nan.pth")
    out = tmp_path / "run"
    rc = main(["run", "--model", f"sam:{tmp_path / 'nan.pth'}", "--task", "point", "--no-cache",
               "--dataset", str(synth_dir), "--limit", "1", "--out", str(out)])
    assert rc == 2
    assert "gave a non-finite value" in one_line_error(capsys)
    assert not list(out.rglob("*.tmp"))


# ---- 4. every user mistake is one line -------------------------------------------------

def test_out_and_cache_at_a_file_or_unwritable_place(synth_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["run", "--model", "test-disk", "--task", "point", "--dataset", str(synth_dir)]
    assert main(base + ["--out", str(blocker)]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert main(base + ["--out", str(blocker / "sub")]) == 2  # under a file: cannot be created
    assert "not writable" in one_line_error(capsys)
    assert main(base + ["--out", str(tmp_path / "ok"), "--cache", str(blocker)]) == 2
    assert "embedding cache (--cache)" in one_line_error(capsys)
    assert main(base + ["--out", str(tmp_path / "ok2"), "--cache", str(blocker / "sub")]) == 2
    assert "not writable" in one_line_error(capsys)


def test_a_full_disk_is_one_line_and_leaves_no_tmp(synth_dir, tmp_path, capsys, monkeypatch):
    import sambench.results

    writes = []

    def full(fd):
        writes.append(fd)
        if len(writes) > 2:  # run.json and a record go through, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sambench.results.os, "fsync", full)
    out = tmp_path / "run"
    assert run_json("--dataset", str(synth_dir), "--out", str(out))[0] == 2
    assert "No space left on device" in one_line_error(capsys)
    assert not list(out.rglob("*.tmp"))


def test_argparse_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--limit", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sambench: error:") and "--limit" in err[0]


def test_report_on_a_results_json_without_run(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"schema": "sambench.results/1", "results": []}))
    assert main(["report", str(tmp_path)]) == 2
    assert "malformed results (no 'run' object)" in one_line_error(capsys)


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_are_not_a_checkpoint_and_torch_advice_is_never_repeated(tmp_path, seed):
    """Seeded garbage: without a zip or pickle signature it is "not a checkpoint (unrecognised
    bytes)"; behind a pickle signature torch's unpickler fails in many ways (seed 5 reaches the
    generic branch), each one line naming the file and never torch's ``weights_only`` advice."""
    from sambench.models.sam import read_state_dict

    rng = np.random.default_rng(seed)
    cases = ((b"\x00" + rng.bytes(2000), r"is not a checkpoint \(unrecognised bytes"),
             (b"\x80\x02" + rng.bytes(500), r"is not a checkpoint|unreadable checkpoint"))
    for raw, message in cases:
        path = tmp_path / "random.pth"
        path.write_bytes(raw)
        with pytest.raises(SambenchError, match=message) as exc:
            read_state_dict(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
        assert "weights_only" not in str(exc.value)


def test_device_is_recorded_as_what_the_model_used(synth_dir, tmp_path, capsys):
    rc, results = run_json("--dataset", str(synth_dir), "--out", str(tmp_path / "run"), "--device", "cuda",
                           capsys=capsys)
    assert rc == 0 and results["run"]["device"] == "cpu"
    assert main(["run", "--model", "test-disk", "--task", "point", "--dataset", str(synth_dir),
                 "--out", str(tmp_path / "x"), "--device", "gpu"]) == 2
    assert "--device 'gpu'" in one_line_error(capsys)
