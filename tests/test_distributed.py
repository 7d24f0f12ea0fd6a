"""Two gloo ranks give the same results as one, also after a rank's work is lost."""
import json
import os
import subprocess
import sys
from pathlib import Path

ENTRY = Path(__file__).with_name("dist_entry.py")


def launch(nproc, out, dataset, port):
    env = dict(os.environ, PYTHONPATH=str(ENTRY.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={port}", str(ENTRY), "run", "--model", "test-disk", "--task", "point",
           "--dataset", str(dataset), "--out", str(out), "--no-cache", "--no-report"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_two_ranks_equal_one_and_survive_a_lost_shard(synth_dir, tmp_path):
    one = launch(1, tmp_path / "one", synth_dir, 29517)
    two = launch(2, tmp_path / "two", synth_dir, 29518)
    assert two["run"]["world_size"] == 2
    assert two["results"][0]["metrics"] == one["results"][0]["metrics"]
    assert two["results"][0]["n_masks"] == one["results"][0]["n_masks"]
    # rank 1 owned image index 1; lose its record as if that rank had been killed
    records = sorted((tmp_path / "two" / "records" / "point" / "synth-shapes").glob("*.json"))
    assert len(records) == 3
    records[1].unlink()
    (tmp_path / "two" / "results.json").unlink()
    again = launch(2, tmp_path / "two", synth_dir, 29519)
    assert again["results"][0]["metrics"] == one["results"][0]["metrics"]
