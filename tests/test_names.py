"""Names a person would type: dataset aliases, close-match suggestions, a task alone on its
bundled data, and a run with no data at all."""
import json
import shutil

import pytest

from sambench.cli import main
from sambench.datasets import load_cards, resolve
from sambench.errors import SambenchError, UnknownNameError
from sambench.registry import Registry


@pytest.mark.parametrize("typed, card", [("coco", "coco2017"), ("COCO", "coco2017"), ("lvis", "lvis-v1"),
                                         ("sa-1b", "sa1b"), ("sa1b", "sa1b"), ("bsds", "bsds500"),
                                         ("ade", "ade20k"), ("ADE20K", "ade20k"), ("ZeroWaste-f", "zerowaste-f"),
                                         ("PIDRay", "pidray"), ("BBBC038v1", "bbbc038v1")])
def test_aliases_and_the_papers_spellings(typed, card):
    assert load_cards().get(typed).name == card


def test_suggestions_consider_prefixes_and_aliases():
    with pytest.raises(UnknownNameError, match="did you mean coco2017"):
        load_cards().get("coc")
    with pytest.raises(UnknownNameError, match="did you mean .*lvis-v1"):
        load_cards().get("lvis-v1-val")
    reg = Registry("thing")
    reg.add("alpha", 1)
    reg.alias("first", "alpha")
    with pytest.raises(ValueError, match="already"):
        reg.alias("Alpha", "beta")
    assert "first" in reg and reg.aliases("alpha") == ["first"]


def test_coco_equals_dir_works(synth_dir, tmp_path):
    import stand_in  # noqa: F401  (registers test-disk)

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(synth_dir / "annotations.json", root / "annotations" / "instances_val2017.json")
    shutil.copytree(synth_dir / "images", root / "val2017")
    ref = resolve(f"coco={root}")
    assert ref.name == "coco2017" and ref.root == root
    out = tmp_path / "run"
    assert main(["run", "--task", "point", "--model", "test-disk", "--dataset", f"coco={root}", "--limit", "1",
                 "--no-report", "--out", str(out)]) == 0
    (entry,) = json.loads((out / "results.json").read_text())["results"]
    assert entry["dataset"] == "coco2017" and entry["status"] == "ok" and entry["n_masks"] > 0


def test_a_task_alone_runs_on_its_bundled_data(tmp_path):
    out = tmp_path / "edges"
    assert main(["run", "--task", "edges", "--model", "sobel", "--no-report", "--out", str(out)]) == 0
    (entry,) = json.loads((out / "results.json").read_text())["results"]
    assert entry["dataset"] == "synth-edges" and entry["status"] == "ok" and 0 < entry["metrics"]["ods"] <= 1


def test_the_text_task_alone_runs_on_bundled_data(tmp_path, one_thread):
    from sambench.models.sam import write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "tiny_text.pth", "tiny", seed=0, text_dim=32, text_encoder="hash")
    out = tmp_path / "text"
    assert main(["run", "--task", "text", "--model", f"sam:{ckpt}", "--limit", "1", "--no-report",
                 "--no-cache", "--out", str(out)]) == 0
    (entry,) = json.loads((out / "results.json").read_text())["results"]
    assert entry["dataset"] == "synth-shapes" and entry["status"] == "ok" and "text_miou" in entry["metrics"]


def test_a_suite_with_no_dataset_present_is_an_error(tmp_path, capsys):
    assert main(["run", "--suite", "sa23-point", "--data-root", str(tmp_path), "--model", "grabcut",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"none of the 23 datasets of this run is present under --data-root {tmp_path}" in err
    assert "ppdls, bbbc038v1, doors" in err and "sambench datasets list" in err
    assert not (tmp_path / "run").exists()


def test_datasets_list_shows_aliases(capsys):
    assert main(["datasets", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "coco,coco-2017" in lines["coco2017"] and "bsds" in lines["bsds500"]


def test_unknown_names_in_the_checkpoint_table_are_refused(capsys):
    assert main(["models", "fetch", "sam:vit_q"]) == 2
    assert "no named checkpoint 'sam:vit_q'" in capsys.readouterr().err


def test_a_bad_hf_spec_is_one_line():
    with pytest.raises(SambenchError, match="REPO_ID"):
        resolve("hf:a/b/c")
