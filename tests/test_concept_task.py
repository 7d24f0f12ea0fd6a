"""The concept task end to end on synth-concepts: its cgF1 equals ``concept-eval`` and SAM 3's
evaluator on the predictions file it writes; routes, unsupported models, counts."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sambench import datasets
from sambench.cli import main
from sambench.errors import SambenchError
from sambench.metrics.cgf1 import METRIC_NAMES
from sambench.models import MODELS
from sambench.models.base import ConceptPrediction, ModelInfo
from sambench.tasks.concept import ConceptProtocol
from sambench.tasks.concept_eval import evaluate_files
from test_cgf1 import assert_equal, official_cgf1


class BlobConcepts:
    """Every connected region that differs from the background colour, scored by its size:
    phrase-blind, so negatives and misses both happen (a stand-in, not a baseline)."""

    def info(self):
        return ModelInfo("blob-concepts", "test")

    def embed(self, image):
        return image

    def predict(self, *args, **kwargs):
        raise SambenchError("blob-concepts takes noun phrases only")

    def predict_concept(self, image, phrase):
        fg = np.any(image != image[0, 0], axis=-1).astype(np.uint8)
        n, labels = cv2.connectedComponents(fg)
        masks = np.stack([labels == k for k in range(1, n)]) if n > 1 else np.zeros((0, *fg.shape), bool)
        areas = masks.reshape(len(masks), -1).sum(axis=1)
        scores = np.clip(areas / 2500.0, 0, 1) if len(masks) else np.zeros(0)
        boxes = np.zeros((len(masks), 4), np.float32)
        return ConceptPrediction(masks, scores, boxes)


if "test-blob-concepts" not in MODELS:
    MODELS.add("test-blob-concepts", lambda checkpoint=None, device="cpu", dtype="float32": BlobConcepts(),
               "test stand-in")


def gt_files() -> list[str]:
    root = datasets.resolve("synth-concepts").root
    return [str(root / "annotations" / f"synth-concepts_{k}.json") for k in "ab"]


def run_json(args, capsys) -> dict:
    assert main(args + ["--json", "--no-cache"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def blob_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("concept") / "run"
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before conftest's per-test cache
        mp.setenv("SAMBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        assert main(["run", "--task", "concept", "--dataset", "synth-concepts", "--model", "test-blob-concepts",
                     "--out", str(out), "--no-cache"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_task_equals_concept_eval_and_the_reference(blob_run):
    out, results = blob_run
    entry = results["results"][0]
    assert entry["task"] == "concept" and entry["status"] == "ok"
    metrics = entry["metrics"]
    predictions = out / "concept" / "synth-concepts" / "predictions_concept.json"
    files = evaluate_files(str(predictions), gt_files())
    for name in METRIC_NAMES:
        assert metrics[name] == files[name], name
    assert metrics["pairs"] == files["n_pairs"] == 58 and entry["counts"]["not_exhaustive"] == 2
    assert metrics["oracle_choice"] == files["oracle_choice"]
    assert 0 < metrics["il_tp"] and 0 < metrics["il_fp"] and metrics["cgf1"] is not None
    reference = official_cgf1({"task": (str(predictions), gt_files(), "segm")}, out)
    assert_equal(metrics, reference["task"], "segm", "task")
    assert "Concept segmentation" in (out / "report.html").read_text()


def test_rerun_resumes_to_the_same_numbers(blob_run, capsys):
    out, results = blob_run
    again = run_json(["run", "--task", "concept", "--dataset", "synth-concepts", "--model",
                      "test-blob-concepts", "--out", str(out), "--no-report"], capsys)
    assert again["results"][0]["metrics"] == results["results"][0]["metrics"]


def test_models_without_a_phrase_path_are_unsupported(tmp_path, capsys):
    assert main(["run", "--task", "concept", "--dataset", "synth-concepts", "--model", "grabcut",
                 "--out", str(tmp_path / "g"), "--no-cache"]) == 2
    assert "answers no noun phrase" in capsys.readouterr().err


def test_det_route_scores_every_box_of_the_pair(tmp_path, capsys):
    """Ground-truth boxes of annotator a as 'detections' for GrabCut: every positive pair has a
    prediction, negatives none, so the image-level counts are known exactly."""
    ann = json.loads(open(gt_files()[0]).read())
    phrase = {img["id"]: img["text_input"] for img in ann["images"]}
    dets = [{"image_id": a["image_id"], "phrase": phrase[a["image_id"]], "score": 0.9,
             "box": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]}
            for a in ann["annotations"]]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: det\nversion: 1\ntasks:\n  - task: concept\n    datasets: [synth-concepts]\n"
                     f"    options: {{routes: [det], concept_detections: {tmp_path / 'dets.json'}}}\n")
    results = run_json(["run", "--suite", str(suite), "--model", "grabcut", "--out", str(tmp_path / "r"),
                        "--no-report"], capsys)
    metrics = results["results"][0]["metrics"]
    assert metrics["det_il_fp"] == 0 and metrics["det_il_fn"] == 0 and metrics["det_il_tn"] > 0
    assert metrics["det_il_mcc"] == pytest.approx(1.0, abs=1e-5) and "cgf1" not in metrics
    assert results["results"][0]["protocol"]["concept_detections_sha256"]


@pytest.mark.parametrize("options, message", [
    ({"routes": ["everything"]}, "routes"),
    ({"routes": ["det"]}, "needs a detections file"),
    ({"score_threshold": 2}, "score_threshold"),
])
def test_bad_options(options, message):
    with pytest.raises(SambenchError, match=message):
        ConceptProtocol(**options)
