"""``sambench bench``: the point task timed for our SAM and the official loop on one checkpoint."""
from __future__ import annotations

import json

import pytest

from sambench.cli import main
from sambench.models.sam import write_random_checkpoint


def test_bench_reports_both_implementations_with_equal_scores(synth_dir, tmp_path, capsys):
    ckpt = write_random_checkpoint(tmp_path / "tiny.pth", "tiny", seed=3)
    assert main(["bench", "--model", f"sam:{ckpt}", "--dataset", str(synth_dir), "--limit", "1",
                 "--impl", "ours", "--impl", "official", "--json"]) == 0
    rows = {r["impl"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"ours", "official"}
    for row in rows.values():
        assert row["images"] == 1 and row["masks"] > 0 and row["warmup_s"] > 0
        assert row["seconds"] >= row["encode_s"] + row["decode_s"] > 0
    # same weights, fp32 parity path: the same clicks and the same IoUs
    ours, official = rows["ours"]["metrics"], rows["official"]["metrics"]
    assert ours.keys() == official.keys()
    for key in ours:
        assert ours[key] == pytest.approx(official[key], abs=1e-6), key


@pytest.mark.parametrize("args, message", [
    (["--model", "grabcut"], "--model sam:CHECKPOINT"),
    (["--model", "sam:/no/such.pth"], "checkpoint not found"),
])
def test_bench_mistakes(args, message, capsys):
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_implementation(tmp_path, capsys):
    ckpt = write_random_checkpoint(tmp_path / "tiny.pth", "tiny", seed=3)
    assert main(["bench", "--model", f"sam:{ckpt}", "--impl", "ours-fastest"]) == 2
    assert "unknown implementation 'ours-fastest'" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_default_implementations_leave_out_emulated_bf16(native, monkeypatch, caplog):
    """On a CPU without bf16 units the bf16 rows would time oneDNN's emulation: left out, said."""
    from sambench import bench
    from sambench.models import runtime as sam_model

    monkeypatch.setattr(sam_model, "cpu_has_native", lambda dtype: native)
    impls = bench.default_implementations()
    if native:
        assert impls == list(bench.IMPLEMENTATIONS) and not caplog.records
    else:
        assert impls == ["ours", "ours-fast", "official"]
        assert "leaving out ours-bf16, ours-bf16-compiled" in caplog.text
