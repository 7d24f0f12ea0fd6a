"""Engine: run directory contract, resume after an interrupted run, CLI errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from sambench.cli import main

from stand_in import DiskModel  # noqa: E402  (registers the test-disk model)


def run_cli(*args):
    return main(["run", "--model", "test-disk", "--task", "point", "--no-cache", *args])


def test_run_directory_follows_the_contract(synth_dir, tmp_path):
    out = tmp_path / "run"
    assert run_cli("--dataset", str(synth_dir), "--out", str(out), "--seed", "3") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema"] == "sambench.results/1"
    for key in ("id", "created", "sambench_version", "git_sha", "command", "seed", "device",
                "dtype", "torch", "python", "platform", "duration_s"):
        assert key in results["run"]
    assert results["run"]["seed"] == 3
    assert set(results["model"]) >= {"name", "family", "checkpoint", "sha256", "params", "config"}
    (entry,) = results["results"]
    assert entry["task"] == "point" and entry["task_version"] == 2 and entry["dataset"] == "synth-shapes"
    assert entry["n_images"] == 3 and entry["n_masks"] > 10
    names = {"miou@1", "miou@2", "miou@3", "miou@5", "miou@9", "miou@1_oracle",
             "random_miou@1", "random_miou@9", "random_miou@1_oracle", "noc@85", "noc@90"}
    assert names <= set(entry["metrics"])
    assert all(0 <= entry["metrics"][n] <= 1 for n in names if not n.startswith("noc"))
    lo, hi = entry["metrics"]["miou@1_ci95"]
    assert lo <= entry["metrics"]["miou@1"] <= hi
    assert len(list((out / "records" / "point" / "synth-shapes").glob("*.json"))) == 3
    assert "mIoU against number of points" in (out / "report.html").read_text()


def test_resume_after_interrupt_gives_identical_metrics(synth_dir, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert run_cli("--dataset", str(synth_dir), "--out", str(full)) == 0
    expected = json.loads((full / "results.json").read_text())["results"][0]["metrics"]

    from sambench.tasks.point import PointTask

    original = PointTask.run_sample
    seen = []

    def interrupted(self, model, sample, context, seed):
        seen.append(sample.id)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return original(self, model, sample, context, seed)

    part = tmp_path / "part"
    monkeypatch.setattr(PointTask, "run_sample", interrupted)
    assert run_cli("--dataset", str(synth_dir), "--out", str(part)) == 130
    assert not (part / "results.json").exists()
    assert len(list((part / "records").rglob("*.json"))) == 1
    monkeypatch.setattr(PointTask, "run_sample", original)
    before = DiskModel.calls
    assert run_cli("--dataset", str(synth_dir), "--out", str(part)) == 0
    assert DiskModel.calls - before == 2  # the finished sample is not recomputed
    assert json.loads((part / "results.json").read_text())["results"][0]["metrics"] == expected
    assert len(list((part / "records").rglob("*.json"))) == 3


def test_each_dataset_is_opened_once_per_task(synth_dir, tmp_path, monkeypatch):
    """Scoring and aggregating share one parse of the annotations (LVIS-size files take minutes)."""
    from sambench.datasets import DatasetRef

    opened = []
    original = DatasetRef.open
    monkeypatch.setattr(DatasetRef, "open", lambda self, *a, **k: opened.append(self.name) or original(self, *a, **k))
    assert run_cli("--dataset", str(synth_dir), "--out", str(tmp_path / "run"), "--no-report") == 0
    assert opened == ["synth-shapes"]  # (the report opens it again, for its example images)


def test_warm_cache_rerun_encodes_nothing(synth_dir, tmp_path):
    args = ["run", "--model", "test-disk", "--task", "point", "--dataset", str(synth_dir),
            "--cache", str(tmp_path / "cache")]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    before = DiskModel.calls
    assert main(args + ["--out", str(tmp_path / "b"), "--seed", "5"]) == 0
    assert DiskModel.calls == before
    cache = json.loads((tmp_path / "b" / "results.json").read_text())["run"]["embedding_cache"]
    assert cache["hits"] == 3 and cache["misses"] == 0
    assert cache["encode_seconds"] == 0 and cache["embed_seconds"] >= 0
    cold = json.loads((tmp_path / "a" / "results.json").read_text())["run"]["embedding_cache"]
    assert cold["misses"] == 3 and cold["embed_seconds"] >= cold["encode_seconds"] >= 0


def test_resume_with_other_settings_is_refused(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--dataset", str(synth_dir), "--out", str(out), "--limit", "1") == 0
    assert run_cli("--dataset", str(synth_dir), "--out", str(out), "--limit", "1", "--seed", "9") == 2
    assert "different settings (seed)" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["run", "--model", "nosuch", "--task", "point", "--dataset", "synth-shapes"], "unknown model 'nosuch'"),
    (["run", "--model", "grabcat", "--task", "point", "--dataset", "synth-shapes"], "did you mean grabcut"),
    (["run", "--model", "grabcut", "--task", "pointt", "--dataset", "synth-shapes"], "unknown task 'pointt'"),
    (["run", "--model", "grabcut", "--task", "point", "--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
    (["run", "--model", "grabcut", "--task", "point", "--dataset", "coco2017=/no/such/dir"], "folder not found"),
    (["run", "--model", "grabcut", "--task", "point", "--dataset", "coco2017"], "--data-root"),
    (["run", "--suite", "nosuite"], "unknown suite"),
    (["run", "--task", "point", "--dataset", "synth-shapes"], "names no model"),
    (["run", "--model", "grabcut", "--task", "point", "--dataset", "synth-shapes",
      "--model-option", "iterations"], "--model-option wants KEY=VALUE"),
    (["run", "--model", "grabcut", "--task", "point", "--dataset", "synth-shapes",
      "--model-option", "iteration=2"], "unknown option(s) for model grabcut: iteration"),
    (["run", "--model", "grabcut", "--task", "instances"], "task instances has no bundled data: pass --dataset"),
    (["report", "/no/such/run"], "no results.json"),
])
def test_user_mistakes_give_one_clear_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sambench: error:") and message in err[0]


def test_model_options_reach_the_loader(synth_dir, tmp_path):
    """``--model-option`` values are YAML scalars, reach the model and pin the run."""
    from sambench.cli import parse_options

    assert parse_options(["compile=true", "prompt_chunk=4", "attention=sdpa", "x=a=b"]) == {
        "compile": True, "prompt_chunk": 4, "attention": "sdpa", "x": "a=b"}
    out = tmp_path / "run"
    assert main(["run", "--model", "grabcut", "--task", "point", "--dataset", str(synth_dir), "--limit", "1",
                 "--model-option", "iterations=1", "--out", str(out), "--no-report"]) == 0
    assert json.loads((out / "run.json").read_text())["model_options"] == {"iterations": 1}
    assert json.loads((out / "results.json").read_text())["run"]["model_options"] == {"iterations": 1}


def test_malformed_annotations_give_one_clear_line(tmp_path, capsys):
    (tmp_path / "annotations.json").write_text("{oops")
    assert main(["run", "--model", "grabcut", "--task", "point", "--dataset", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "malformed JSON" in capsys.readouterr().err


def test_console_script_with_grabcut(synth_dir, tmp_path):
    """The acceptance command of the foundation issue, through the installed entry point."""
    out = tmp_path / "x"
    proc = subprocess.run([sys.executable, "-m", "sambench", "run", "--task", "point", "--model", "grabcut",
                           "--dataset", str(synth_dir), "--limit", "1", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    metrics = summary["results"][0]["metrics"]
    assert summary["model"]["name"] == "grabcut" and 0 < metrics["miou@1"] <= 1
    assert metrics["miou@9"] > metrics["miou@1"]  # corrective clicks help even GrabCut
    assert (out / "report.html").is_file()


def test_models_and_datasets_lists(capsys):
    assert main(["models", "list"]) == 0
    assert "grabcut" in capsys.readouterr().out
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "synth-shapes" in out and "coco2017" in out


def test_empty_gt_mask_is_counted_logged_and_never_scored(synth_dir, tmp_path, caplog):
    import shutil

    folder = shutil.copytree(synth_dir, tmp_path / "with-empty")
    data = json.loads((folder / "annotations.json").read_text())
    image = data["images"][0]
    data["annotations"].append({"id": 999, "image_id": image["id"], "category_id": data["annotations"][0]["category_id"],
                                "iscrowd": 0, "bbox": [0, 0, 0, 0], "area": 0,
                                "segmentation": {"size": [image["height"], image["width"]],
                                                 "counts": [image["height"] * image["width"]]}})
    (folder / "annotations.json").write_text(json.dumps(data))
    out = tmp_path / "run"
    assert main(["run", "--model", "test-disk", "--task", "point", "--no-cache", "--no-report",
                 "--dataset", str(folder), "--out", str(out), "--limit", "1"]) == 0
    (entry,) = json.loads((out / "results.json").read_text())["results"]
    assert entry["counts"]["empty_mask"] == 1
    scored = {row["mask"] for path in (out / "records").rglob("*.json")
              for row in json.loads(path.read_text())["rows"]}
    assert scored and "999" not in scored
    assert "empty_mask" in caplog.text


def test_every_instance_prompting_task_skips_empty_masks():
    """point, instances-gtbox and text decode their instances through decode_instances: a custom
    adapter's empty mask is counted there and never reaches a prompt."""
    from sambench import masks as mask_codec
    from sambench.tasks import decode_instances
    from sambench.types import Instance, Sample, SampleRecord

    full = np.ones((4, 4), bool)
    sample = Sample("s", "toy", 4, 4, [Instance("a", mask_codec.encode(full)),
                                       Instance("e", mask_codec.encode(~full))])
    record = SampleRecord("s")
    gts, ids = decode_instances(sample, record, include_crowd=False)
    assert ids == ["a"] and [e["kind"] for e in record.errors] == ["empty_mask"]
