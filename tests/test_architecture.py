"""The worked examples of docs/architecture.md, run as written: each code block is written
where its first line says (a plugin module on sys.path, a task file, a dataset card), then the
examples are used through the command line and the report."""
import importlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sambench.cli import main
from sambench.results import load_results

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
BLOCK = re.compile(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", re.S)


def doc_files() -> dict[str, str]:
    """``{path: text}`` of every example block of the page."""
    return {path: body for path, body in BLOCK.findall(DOC.read_text())}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The page's files installed: modules importable, tasks and cards beside the real ones."""
    from sambench import resources

    root = tmp_path_factory.mktemp("architecture")
    assets = root / "assets"
    for name in ("tasks", "dataset_adapters", "reports/reference"):
        shutil.copytree(resources.asset_dir(name.split("/")[0]) / name.partition("/")[2], assets / name)
    files = doc_files()
    for path, body in files.items():
        target = (root / "plugins" / path) if path.endswith(".py") else (assets / path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    mp = pytest.MonkeyPatch()
    for module in ("sambench.tasks", "sambench.datasets.cards", "sambench.report.reference"):
        mp.setattr(f"{module}.asset_dir", lambda name: assets / name)
    mp.syspath_prepend(str(root / "plugins"))
    for path in files:
        if path.endswith(".py"):
            importlib.import_module(Path(path).stem)
    yield root, files
    mp.undo()


@pytest.fixture(scope="module")
def npz_data(examples):
    """Two images in the example ``npz`` format: two squares, one of them large."""
    root = examples[0] / "toy-npz"
    root.mkdir()
    for k in range(2):
        image = np.full((48, 64, 3), 40 * k, np.uint8)
        labels = np.zeros((48, 64), np.int64)
        labels[5:25, 5:25] = 1
        labels[30:40, 40:60 - 10 * k] = 2
        image[labels > 0] = 200
        np.savez(root / f"img{k}.npz", image=image, labels=labels)
    return root


def test_the_page_has_every_example():
    assert set(doc_files()) == {"tasks/point-center3.yaml", "my_format.py", "dataset_adapters/toy-npz.yaml",
                                "my_task.py", "tasks/area.yaml", "my_model.py", "my_section.py"}


def test_a_task_variant_new_format_and_model_family_run_and_report(examples, npz_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "point-center3", "--dataset", f"toy-npz={npz_data}", "--model", "centre-box",
                 "--model-option", "half=4", "--out", str(out), "--no-cache"]) == 0
    entry = load_results(out)["results"][0]
    assert entry["runner"] == "point" and entry["task"] == "point-center3" and entry["n_images"] == 2
    assert entry["protocol"]["first_point"] == ["center"] and entry["protocol"]["n_points"] == [1, 2, 3]
    assert {"miou@1", "miou@2", "miou@3", "miou@1_oracle"} <= set(entry["metrics"])
    assert not any(k.startswith("random_") for k in entry["metrics"])
    assert load_results(out)["model"]["config"] == {"half": 4}
    assert 0 < entry["metrics"]["miou@1"] < 1
    html = (out / "report.html").read_text()
    assert 'id="point-center3"' in html and "Point task: single-point valid mask" in html
    assert 'id="point-center3-examples"' in html


def test_a_new_task_with_its_metric_spec_and_section(examples, npz_data, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--task", "area", "--dataset", f"toy-npz={npz_data}", "--out", str(out)]) == 0
    results = load_results(out)
    entry = results["results"][0]
    assert entry["runner"] == "area" and results["model"]["name"] == "none"
    shares = [400 / 3072, 200 / 3072, 400 / 3072, 100 / 3072]
    assert entry["metrics"]["area_share"] == pytest.approx(np.mean(shares))
    assert entry["metric_spec"] == [{"name": "area_share", "label": "area share", "scale": 100, "digits": 1,
                                     "higher_is_better": True, "headline": True}]
    html = (out / "report.html").read_text()
    assert "Instance area" in html and f"{100 * np.mean(shares):.1f}" in html
    assert main(["leaderboard", str(out), "--out", str(tmp_path / "board")]) == 0
    assert "area/area_share/toy-npz" in (tmp_path / "board" / "leaderboard.csv").read_text()


def test_the_task_option_flag_reaches_the_variant(examples, npz_data, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--task", "point-center3", "--dataset", f"toy-npz={npz_data}", "--model", "centre-box",
                 "--task-option", "n_points=[1, 2]", "--out", str(out), "--no-cache", "--no-report"]) == 0
    assert json.loads((out / "results.json").read_text())["results"][0]["protocol"]["n_points"] == [1, 2]
    assert main(["run", "--task", "point-center3", "--dataset", f"toy-npz={npz_data}", "--model", "centre-box",
                 "--task-option", "first_point=[middle]", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()  # one clear error before anything runs
    assert main(["run", "--task", "point-center3", "--dataset", f"toy-npz={npz_data}", "--model", "centre-box",
                 "--task-option", "no_such_option=1", "--out", str(tmp_path / "bad")]) == 2


def test_runners_keep_nothing_between_calls(examples, npz_data, tmp_path, monkeypatch):
    """After a run a runner holds exactly what its constructor set: what it learnt about a
    dataset lived in the context the engine passed around."""
    from sambench.tasks import TaskSpec

    built = []
    build = TaskSpec.build
    monkeypatch.setattr(TaskSpec, "build", lambda spec: built.append((spec, build(spec))) or built[-1][1])
    for task, model in (("point-center3", ["--model", "centre-box"]), ("area", [])):
        assert main(["run", "--task", task, "--dataset", f"toy-npz={npz_data}", *model, "--no-cache",
                     "--no-report", "--out", str(tmp_path / task)]) == 0
    assert {type(runner).__name__ for _, runner in built} == {"PointTask", "AreaTask"}
    for spec, runner in built:
        assert vars(runner) == vars(build(spec))
