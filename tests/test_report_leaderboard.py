"""`sambench leaderboard`: one ranked table across runs in CSV, Markdown and HTML, refusing
runs that are not comparable unless --allow-mixed."""
import json
import shutil

import pandas as pd
import pytest

from sambench.cli import main
from sambench.errors import SambenchError
from sambench.report.leaderboard import build_leaderboard

from test_report_support import (OTHER_TASKS, base_run, copy_run, edit_results, needs_chromium,  # noqa: F401
                                 render, worse_copy)


def with_edges(run, ods):
    edges = json.loads(json.dumps(OTHER_TASKS[0]))
    edges["metrics"]["ods"] = ods
    edit_results(run, lambda d: d["results"].append(edges))
    return run


@pytest.fixture
def two_runs(base_run, tmp_path):
    best = with_edges(copy_run(base_run, tmp_path / "best"), 0.70)
    worse = with_edges(worse_copy(base_run, tmp_path / "worse"), 0.75)
    return best, worse


def test_leaderboard_files_rank_and_provenance(two_runs, tmp_path, capsys):
    best, worse = two_runs
    out = tmp_path / "board"
    assert main(["leaderboard", str(worse), str(best), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| rank | model |" in printed and "leaderboard.html" in printed

    csv = pd.read_csv(out / "leaderboard.csv")
    assert list(csv["model"]) == ["disk", "disk-worse"]  # ranked by point mIoU@1
    assert list(csv["rank"]) == [1, 2]
    assert "point/miou@1/synth-shapes" in csv and "edges/ods/bsds500" in csv and "edges/r50/bsds500" in csv
    truth = json.loads((best / "results.json").read_text())["results"][0]["metrics"]["miou@1"]
    assert csv.loc[0, "point/miou@1/synth-shapes"] == pytest.approx(truth)  # fractions in the CSV
    for column in ("runs", "run_ids", "created", "sambench", "device", "seed", "suite"):
        assert column in csv
    assert csv.loc[1, "runs"] == "worse" and csv.loc[1, "run_ids"] == "worse"

    md = (out / "leaderboard.md").read_text()
    assert f"{100 * truth:.1f}" in md and "## Provenance" in md and "0.700" in md  # edges as fractions
    html = (out / "leaderboard.html").read_text()
    assert "<table" in html and "disk-worse" in html and "Ranked by point/miou@1/synth-shapes" in html

    assert main(["leaderboard", str(worse), str(best), "--out", str(out), "--rank-by", "edges/ods/bsds500",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in data["rows"]] == ["disk-worse", "disk"]


@needs_chromium
def test_leaderboard_html_renders(two_runs, tmp_path):
    out = tmp_path / "board"
    assert main(["leaderboard", *map(str, two_runs), "--out", str(out)]) == 0
    dom, shot, console = render(out / "leaderboard.html", tmp_path, height=900)
    assert console == [] and dom.count("<tr>") >= 4 and shot.std() > 10


def test_runs_with_other_versions_or_samples_are_refused_unless_mixed(base_run, tmp_path, capsys):
    other = worse_copy(base_run, tmp_path / "v2")
    edit_results(other, lambda d: d["results"][0].update(task_version=3))
    assert main(["leaderboard", str(base_run), str(other), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not comparable" in err and "point/synth-shapes: task version differ" in err and "--allow-mixed" in err

    fewer = worse_copy(base_run, tmp_path / "fewer")
    sorted((fewer / "records" / "point" / "synth-shapes").glob("*.json"))[0].unlink()
    with pytest.raises(SambenchError, match="samples differ"):
        build_leaderboard([base_run, fewer])

    board = build_leaderboard([base_run, other], allow_mixed=True)
    assert any("Mixed (--allow-mixed): point/synth-shapes: task version" in n for n in board.notes)


def test_partial_coverage_and_duplicates(base_run, tmp_path):
    with_more = copy_run(base_run, tmp_path / "more")

    def add_dataset(d):
        d["results"].append(dict(d["results"][0], dataset="synth-extra"))

    edit_results(with_more, add_dataset)
    shutil.copytree(with_more / "records" / "point" / "synth-shapes", with_more / "records" / "point" / "synth-extra")
    other = worse_copy(base_run, tmp_path / "worse")
    with pytest.raises(SambenchError, match="disk-worse: no results for point/synth-extra"):
        build_leaderboard([with_more, other])
    board = build_leaderboard([with_more, other], allow_mixed=True)
    frame = board.frame(display=True)
    assert frame.loc[frame["model"] == "disk-worse", "point mIoU 1 pt · mean"].item().endswith("*")
    assert any("fewer datasets" in n for n in board.notes)

    with pytest.raises(SambenchError, match="scored point/synth-shapes in both"):
        build_leaderboard([base_run, copy_run(base_run, tmp_path / "again")])


@pytest.mark.parametrize("bad, message", [
    ({"schema": "sambench.results/0"}, "schema 'sambench.results/0'"),
    (None, "no results.json"),
])
def test_broken_inputs_give_clear_errors(base_run, tmp_path, capsys, bad, message):
    run = copy_run(base_run, tmp_path / "bad")
    if bad is None:
        (run / "results.json").unlink()
    else:
        edit_results(run, lambda d: d.update(bad))
    assert main(["leaderboard", str(base_run), str(run), "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


def test_a_results_json_kept_alone_lines_up_by_its_counts(base_run, tmp_path):
    bare = worse_copy(base_run, tmp_path / "bare")
    shutil.rmtree(bare / "records")
    board = build_leaderboard([base_run, bare])
    assert [r["model"] for r in board.rows] == ["disk", "disk-worse"] and board.notes[1:] == []
