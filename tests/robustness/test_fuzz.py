"""Property-based fuzzing of every parser of untrusted input (targets.py), each in its own
process under a 2 GB address-space cap (fuzz.py): a SambenchError or a counted skip, never
another exception, never a memory blow-up. CI runs 500 cases per parser; the slow run 10,000
(the figures in docs/reliability.md)."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from targets import TARGETS

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def fuzz(target: str, profile: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-W", "ignore", str(HERE / "fuzz.py"), target, profile],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, f"{target} crashed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ci_runs(request):
    """The selected targets' CI runs, started together on all cores (each is one process)."""
    selected = [item.callspec.params["target"] for item in request.session.items
                if item.originalname == "test_fuzz_ci"]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    runs = {target: pool.submit(fuzz, target, "ci") for target in selected}
    yield runs
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_ci(target, ci_runs):
    counts = ci_runs[target].result()
    assert counts["probes"] >= 500
    assert counts["ok"] + counts["skip"] + counts["error"] == counts["probes"]


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_full(target):
    counts = fuzz(target, "full")
    assert counts["probes"] >= 10_000
    print(json.dumps(counts))
