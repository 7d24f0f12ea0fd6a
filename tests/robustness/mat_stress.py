"""Mutation stress of the ``.mat`` structure check (sambench/matfile.py) against plain scipy.

``python tests/robustness/mat_stress.py N`` makes N seeded mutants of 21 valid files (the BSDS
fixture files, compressed as released and inflated, and 16 small ``savemat`` files, compressed
or not), each with 1 to 4 edits, mostly an aligned 32-bit word set to a type code, a size or a
limit (what scipy's C reader trusts). Every mutant is read twice, each way in child processes
under the 2 GB cap: by plain ``scipy.io.loadmat`` (a child killed by a signal is counted and a
new one goes on after that mutant) and by the check followed by scipy, which must never die.
Prints one JSON object: mutants, scipy segfaults (their indexes), and the checked outcomes.
"""
from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's sambench, before targets imports it
from targets import MAT_WORDS as WORDS  # noqa: E402  type codes, sizes and limits of tags and headers
MEMORY_CAP = 2 * 2**30


def bases() -> list[bytes]:
    import scipy.io

    from sambench.matfile import check_mat5

    out = []
    for path in sorted((ROOT / "tests" / "fixtures").rglob("*.mat")):
        raw = path.read_bytes()
        out += [raw, check_mat5(raw)]
    rng = np.random.default_rng(0)
    for k in range(8):
        n = 1 + k % 3
        cell = np.empty((1, n), dtype=object)
        for a in range(n):
            cell[0, a] = {"Segmentation": rng.integers(0, 4, (3 + k, 5)).astype(np.uint16),
                          "Boundaries": rng.integers(0, 2, (3 + k, 5)).astype(bool), "note": "ab"[: k % 3],
                          "c": np.array([[1.5 + 2j]]) if k % 2 else np.zeros((0, 0))}
        for compress in (False, True):
            buf = io.BytesIO()
            scipy.io.savemat(buf, {"groundTruth": cell, "x": np.arange(k)}, do_compression=compress)
            out.append(buf.getvalue())
    return out


def mutant(i: int, all_bases: list[bytes], small: list[bytes]) -> bytes:
    rng = np.random.default_rng(i)
    base = small[rng.integers(len(small))] if rng.random() < 0.85 else all_bases[rng.integers(len(all_bases))]
    data = bytearray(base)
    for _ in range(rng.integers(1, 5)):
        mode = rng.integers(0, 10)
        pos = int(rng.integers(0, len(data))) if len(data) else 0
        if mode < 5 and len(data) >= 136:  # an aligned word after the header: tags, counts, dims
            p = 128 + 4 * int(rng.integers(0, (len(data) - 132) // 4))
            w = WORDS[rng.integers(len(WORDS))] if rng.random() < 0.7 else int(rng.integers(0, 2**32))
            data[p:p + 4] = struct.pack("<I", w)
        elif mode < 8 and data:
            data[pos] = int(rng.integers(0, 256))
        elif mode == 8:
            data[pos:pos] = rng.bytes(int(rng.integers(1, 9)))
        else:
            del data[pos:]
    return bytes(data)


def child(mode: str, start: int, stop: int) -> None:
    """Read mutants start..stop-1, printing each index first; then the outcome counts."""
    import scipy.io

    from sambench.matfile import check_mat5

    warnings.simplefilter("ignore")
    all_bases = bases()
    small = [b for b in all_bases if len(b) < 100_000]
    counts: dict[str, int] = {}
    for i in range(start, stop):
        raw = mutant(i, all_bases, small)
        print(i, flush=True)
        key = "read"
        try:
            if mode == "checked":
                raw = check_mat5(raw)
        except ValueError:
            key = "refused by the check"
        else:
            try:
                scipy.io.loadmat(io.BytesIO(raw))
            except MemoryError:
                key = "memory error"
            except Exception:
                key = "scipy error"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts), flush=True)


def run(mode: str, n: int) -> tuple[dict, list[int]]:
    """All mutants in children; a child killed by a signal is restarted after its mutant."""
    counts: dict[str, int] = {}
    crashes: list[int] = []
    start = 0
    while start < n:
        proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(start), str(n)],
                                stdout=subprocess.PIPE, text=True)
        last = start - 1
        for line in proc.stdout:
            if line.startswith("{"):
                for key, value in json.loads(line).items():
                    counts[key] = counts.get(key, 0) + value
            else:
                last = int(line)
        code = proc.wait()
        if code == 0:
            break
        if code > 0 or last < start:  # not a signal during a read: a broken script, not a finding
            raise SystemExit(f"{mode} child failed (exit {code}) before mutant {start}")
        crashes.append(last)
        start = last + 1
    return counts, crashes


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        total = int(sys.argv[1])
        _, segfaults = run("scipy", total)
        checked, deaths = run("checked", total)
        print(json.dumps({"mutants": total, "scipy_segfaults": len(segfaults), "segfault_indexes": segfaults,
                          "checked": checked, "checked_deaths": deaths}))
