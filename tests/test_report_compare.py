"""`sambench compare`: paired differences on identical prompts, and refusals when the runs
cannot be paired."""
import json
import shutil

import numpy as np
import pytest

from sambench.cli import main
from sambench.errors import SambenchError
from sambench.report.compare import compare_runs
from sambench.report.records import point_frame, point_values

from test_report_support import base_run, copy_run, edit_results, worse_copy  # noqa: F401


def test_a_run_against_itself_differs_by_nothing(base_run):
    result = compare_runs(base_run, base_run)
    (row,) = result["datasets"]
    assert row["delta"] == 0 and row["delta_ci95"] == [0.0, 0.0]
    assert row["wins"] == row["losses"] == 0 and row["ties"] == row["n_masks"] and row["p_sign"] == 1.0


def test_known_paired_difference_with_bootstrap_ci_and_sign_test(base_run, tmp_path):
    worse = worse_copy(base_run, tmp_path / "worse", drop=0.1)
    protocol = json.loads((base_run / "results.json").read_text())["results"][0]["protocol"]
    a = point_values(point_frame(base_run, "synth-shapes"), "miou@1", protocol)
    expected = float((a - np.maximum(0.0, a - 0.1)).mean())
    result = compare_runs(base_run, worse)
    (row,) = result["datasets"]
    assert row["n_masks"] == len(a) and row["delta"] == pytest.approx(expected)
    assert row["a"] == pytest.approx(a.mean())
    lo, hi = row["delta_ci95"]
    assert 0 < lo <= row["delta"] <= hi <= 0.1 + 1e-9
    wins = int((a > 1e-9).sum())  # masks with IoU 0 cannot get worse
    assert (row["wins"], row["losses"]) == (wins, 0)
    assert row["p_sign"] == pytest.approx(2 * 0.5 ** wins)
    assert result["mean"]["delta"] == pytest.approx(expected)
    # the same numbers from the other side, and deterministic
    back = compare_runs(worse, base_run)["datasets"][0]
    assert back["delta"] == pytest.approx(-expected) and (back["wins"], back["losses"]) == (0, wins)
    assert compare_runs(base_run, worse) == result


def test_cli_prints_a_table_or_json(base_run, tmp_path, capsys):
    worse = worse_copy(base_run, tmp_path / "worse")
    assert main(["compare", str(base_run), str(worse)]) == 0
    out = capsys.readouterr().out
    assert "synth-shapes" in out and "disk-worse" in out and "sign test" in out
    assert main(["compare", str(base_run), str(worse), "--json", "--metric", "miou@1_oracle"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "miou@1_oracle" and data["datasets"][0]["delta"] == 0  # oracle untouched


def test_different_masks_are_refused(base_run, tmp_path, capsys):
    other = copy_run(base_run, tmp_path / "fewer")
    path = sorted((other / "records" / "point" / "synth-shapes").glob("*.json"))[0]
    rec = json.loads(path.read_text())
    dropped = rec["rows"][0]["mask"]
    rec["rows"] = [r for r in rec["rows"] if r["mask"] != dropped]
    path.write_text(json.dumps(rec))
    assert main(["compare", str(base_run), str(other)]) == 2
    err = capsys.readouterr().err
    assert "synth-shapes: the runs scored different masks" in err and "1 in only one" in err


def test_different_datasets_versions_and_seeds_are_refused(base_run, tmp_path):
    renamed = copy_run(base_run, tmp_path / "renamed")
    edit_results(renamed, lambda d: d["results"][0].update(dataset="other-set"))
    with pytest.raises(SambenchError, match="different datasets"):
        compare_runs(base_run, renamed)

    versioned = copy_run(base_run, tmp_path / "v2")
    edit_results(versioned, lambda d: d["results"][0].update(task_version=3))
    with pytest.raises(SambenchError, match="task version 2 vs 3"):
        compare_runs(base_run, versioned)

    seeded = copy_run(base_run, tmp_path / "seed7")
    edit_results(seeded, lambda d: d["run"].update(seed=7))
    with pytest.raises(SambenchError, match="rerun one with --seed 0"):
        compare_runs(base_run, seeded, "random_miou@1")
    assert compare_runs(base_run, seeded, "miou@1")["datasets"][0]["delta"] == 0  # center: seed-free

    no_records = copy_run(base_run, tmp_path / "bare")
    shutil.rmtree(no_records / "records")
    with pytest.raises(SambenchError, match="no records for point/synth-shapes"):
        compare_runs(base_run, no_records)
    with pytest.raises(SambenchError, match="not a per-mask point metric"):
        compare_runs(base_run, base_run, "ods")
