"""The point protocol end to end on a scripted model, against values worked out by hand."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sambench.models.base import Capabilities, ModelInfo, batch_prompts, unbatch
from sambench.tasks.point import PointProtocol, PointTask, aggregate
from sambench.types import Instance, Prediction, Sample
from sambench import masks as mask_codec

H = W = 20


def square(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


GT = square(5, 15, 5, 15)  # 100 px
SMALL = square(8, 12, 8, 12)  # 16 px inside GT: IoU 0.16


class ScriptedModel:
    """Multimask: [SMALL (score .9), GT (score .5), empty (score .1)]; single mask: GT."""

    def __init__(self):
        self.calls = []

    def info(self):
        return ModelInfo("scripted", "test")

    def embed(self, image):
        return image

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        batch = batch_prompts(points, labels, box, mask_input)
        self.calls.append((batch.size, batch.points.shape[1], multimask, batch.mask_input))
        masks = [SMALL, GT, np.zeros((H, W), bool)] if multimask else [GT]
        scores = [0.9, 0.5, 0.1] if multimask else [0.7]
        k = len(masks)
        logits = np.stack([np.full((256, 256), float(i)) for i in range(k)])
        pred = Prediction(np.repeat(np.stack(masks)[None], batch.size, 0),
                          np.tile(np.array(scores, np.float32), (batch.size, 1)),
                          np.repeat(logits[None], batch.size, 0))
        return unbatch(pred, batch)


def make_sample():
    instances = [Instance("a", mask_codec.encode(GT)), Instance("b", mask_codec.encode(GT)),
                 Instance("crowd", mask_codec.encode(SMALL), iscrowd=True)]
    image = np.zeros((H, W, 3), np.uint8)
    return Sample("img1", "toy", H, W, instances, image_loader=lambda: image)


def test_point_protocol_by_hand():
    model = ScriptedModel()
    task = PointTask({"first_point": ["center"], "n_points": [1, 2, 3, 5, 9]})
    record = task.run_sample(model, make_sample(), None, seed=0)
    # the crowd mask is counted, not prompted
    assert record.errors == [{"kind": "crowd_excluded", "detail": "mask crowd"}]
    m = task.aggregate([record], None, seed=0)
    assert m["miou@1"] == pytest.approx(0.16)  # most confident of 3 = SMALL
    assert m["miou@1_oracle"] == pytest.approx(1.0)
    for n in (2, 3, 5, 9):  # click 2 gives GT; then no error is left and no click is made
        assert m[f"miou@{n}"] == pytest.approx(1.0)
    assert m["noc@85"] == 2 and m["noc@90"] == 2
    lo, hi = m["miou@1_ci95"]
    assert lo == pytest.approx(0.16) and hi == pytest.approx(0.16)
    # one batched call per step with both masks; step 1 multimask, step 2 fed back logits of
    # the chosen mask (index 0 -> logits 0.0); no further calls once both are perfect
    assert [(c[0], c[1], c[2]) for c in model.calls] == [(2, 1, True), (2, 2, False)]
    assert model.calls[1][3].shape == (2, 1, 256, 256) and (model.calls[1][3] == 0.0).all()
    rows = [r for r in record.rows if r["mask"] == "a"]
    assert [r["step"] for r in rows] == list(range(1, 10))
    assert rows[0]["point"] == [9, 9, 1] and rows[1]["point"][2] == 1
    assert all(r["point"] is None for r in rows[2:])


def test_no_feedback_option_and_random_prefix():
    model = ScriptedModel()
    task = PointTask({"first_point": ["random"], "n_points": [1, 3], "feed_back_logits": False})
    record = task.run_sample(model, make_sample(), None, seed=3)
    m = task.aggregate([record], None, seed=0)
    assert set(k for k in m if not k.endswith("_ci95")) == {
        "random_miou@1", "random_miou@3", "random_miou@1_oracle", "random_noc@85", "random_noc@90"}
    assert m["random_miou@1"] == pytest.approx(0.16)
    assert model.calls[1][3] is None
    first = [r for r in record.rows if r["step"] == 1]
    assert all(GT[r["point"][1], r["point"][0]] for r in first)


def test_aggregate_is_mean_over_masks_across_images():
    rows = lambda ious: [{"mask": "m", "mode": "center", "step": s + 1, "iou": v, "oracle_iou": 1.0}
                         for s, v in enumerate(ious)]
    from sambench.types import SampleRecord

    recs = [SampleRecord("i1", rows([0.2, 0.4])), SampleRecord("i2", rows([0.6, 1.0]))]
    m = aggregate(recs, PointProtocol(first_point=["center"], n_points=[1, 2]), seed=0)
    assert m["miou@1"] == pytest.approx(0.4) and m["miou@2"] == pytest.approx(0.7)


def test_unknown_option_is_a_clear_error():
    from sambench.errors import SambenchError

    with pytest.raises(SambenchError, match="unknown options"):
        PointTask({"n_pointz": [1]})
    with pytest.raises(SambenchError, match="unknown options"):
        PointTask({"click_rule": "ritm"})  # a description, not a setting: gone from the protocol


@pytest.mark.parametrize("options, message", [
    ({"first_point": ["middle"]}, "first_point"), ({"first_point": []}, "first_point"),
    ({"n_points": [0, 1]}, "n_points"), ({"n_points": [1.5]}, "n_points"),
    ({"noc_thresholds": [85]}, "noc_thresholds"),
])
def test_bad_values_fail_when_the_runner_is_built(options, message):
    """An unknown first point used to run as center, then fail with a KeyError after the run."""
    from sambench.errors import SambenchError

    with pytest.raises(SambenchError, match=message):
        PointTask(options)


def test_metric_spec_matches_the_metrics():
    protocol = PointTask({"n_points": [1, 3]}).protocol(None)
    spec = PointTask.metric_spec(protocol)
    assert [m.name for m in spec if m.headline] == ["miou@1", "miou@1_oracle", "random_miou@1"]
    assert {m.name for m in spec} == {"miou@1", "miou@1_oracle", "miou@3", "noc@85", "noc@90", "random_miou@1",
                                      "random_miou@1_oracle", "random_miou@3", "random_noc@85", "random_noc@90"}
    assert all(not m.higher_is_better for m in spec if "noc" in m.name)


def test_unreadable_image_is_counted(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    sample = Sample("x", "toy", H, W, [Instance("a", mask_codec.encode(GT))], image_path=bad)
    record = PointTask({}).run_sample(ScriptedModel(), sample, None, seed=0)
    kinds = [e["kind"] for e in record.errors]
    assert kinds == ["image", "mask_not_scored"] and "unreadable image" in record.errors[0]["detail"]
    assert record.rows == []


# -- ignore regions -----------------------------------------------------------------------------
OBJ = square(4, 12, 2, 8)  # 8 x 6 = 48 px
VOID = square(4, 12, 10, 18)  # 8 x 8 = 64 px, apart from the object


class SpillModel:
    """Every mask it returns is the object plus the void region (3 equal masks in multimask)."""

    def info(self):
        return ModelInfo("spill", "test")

    def embed(self, image):
        return image

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        batch = batch_prompts(points, labels, box, mask_input)
        k = 3 if multimask else 1
        masks = np.broadcast_to(OBJ | VOID, (batch.size, k, H, W)).copy()
        pred = Prediction(masks, np.full((batch.size, k), 0.5, np.float32), np.zeros((batch.size, k, 256, 256)))
        return unbatch(pred, batch)


def void_sample():
    image = np.zeros((H, W, 3), np.uint8)
    return Sample("v", "toy", H, W, [Instance("o", mask_codec.encode(OBJ))], image_loader=lambda: image,
                  void_loader=lambda: VOID)


@pytest.mark.parametrize("ignore", ["exclude", "background"])
def test_ignore_region_by_hand(ignore):
    task = PointTask({"first_point": ["center"], "n_points": [1, 2, 3], "ignore": ignore})
    assert task.protocol(None)["ignore"] == ignore
    rows = task.run_sample(SpillModel(), void_sample(), None, seed=0).rows
    # first click: the object's centre either way (the void region is not part of the object)
    assert rows[0]["point"] == [4, 6, 1]  # distance 3: rows 6..9 x cols 4..5, first in raster order
    if ignore == "exclude":
        # the spill lies in the void region: counted in neither intersection nor union, so the
        # mask is perfect at once and no further click is made
        assert [r["iou"] for r in rows] == [1.0, 1.0, 1.0]
        assert rows[1]["point"] is None and rows[2]["point"] is None
    else:
        # background: the void region is a false positive, IoU 48 / 112, and click 2 is negative
        # at its deepest pixel (distance 4 in the 8 x 8 square; first in raster order)
        assert [r["iou"] for r in rows] == [pytest.approx(48 / 112)] * 3
        assert rows[1]["point"] == [13, 7, 0] and rows[2]["point"] == [14, 7, 0]


def test_ignore_mask_gathers_void_and_crowd_regions():
    from sambench.datasets.labelmap import void_of
    from sambench.datasets.labels import LabelRule

    label = np.zeros((H, W), np.uint8)
    label[VOID] = 255
    label[OBJ] = 3
    crowd = square(15, 18, 0, 4)
    sample = Sample("s", "toy", H, W, [Instance("o", mask_codec.encode(OBJ)),
                                       Instance("c", mask_codec.encode(crowd), iscrowd=True)],
                    void_loader=void_of(label, LabelRule(mode="categories", ignore=[255])))
    assert (sample.ignore_mask() == (VOID | crowd)).all()
    assert void_of(label, LabelRule(mode="categories")) is None
    assert Sample("t", "toy", H, W, [Instance("o", mask_codec.encode(OBJ))]).ignore_mask() is None


def test_best_of_3_at_later_clicks_is_an_option():
    model = ScriptedModel()
    task = PointTask({"first_point": ["center"], "n_points": [1, 2], "multimask_later": True})
    record = task.run_sample(model, make_sample(), None, seed=0)
    # step 2 is multimask too: the most confident of 3 is SMALL again; the oracle stays a 1-point number
    assert [c[2] for c in model.calls] == [True, True]
    step2 = [r for r in record.rows if r["step"] == 2]
    assert all(r["iou"] == pytest.approx(0.16) and "oracle_iou" not in r for r in step2)


def test_empty_gt_mask_is_counted_and_never_prompted():
    model = ScriptedModel()
    image = np.zeros((H, W, 3), np.uint8)
    sample = Sample("e", "toy", H, W, [Instance("a", mask_codec.encode(GT)),
                                       Instance("empty", mask_codec.encode(np.zeros((H, W), bool)))],
                    image_loader=lambda: image)
    record = PointTask({"first_point": ["center"], "n_points": [1, 2]}).run_sample(model, sample, None, seed=0)
    assert record.errors == [{"kind": "empty_mask", "detail": "mask empty: no pixel, not prompted"}]
    assert {r["mask"] for r in record.rows} == {"a"} and model.calls[0][0] == 1


class LimitedModel(ScriptedModel):
    """Declares no mask input and at most 6 points; always answers SMALL (never converges)."""

    def info(self):
        return ModelInfo("limited", "limited", capabilities=Capabilities(mask_input=False, max_points=6))

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        batch = batch_prompts(points, labels, box, mask_input)
        assert batch.mask_input is None and batch.points.shape[1] <= 6
        self.calls.append(batch.points.shape[1])
        k = 3 if multimask else 1
        return unbatch(Prediction(np.repeat(SMALL[None, None], batch.size, 0).repeat(k, 1),
                                  np.full((batch.size, k), 0.5, np.float32),
                                  np.zeros((batch.size, k, 256, 256), np.float32)), batch)


def test_point_task_follows_declared_capabilities():
    model = LimitedModel()
    task = PointTask({"first_point": ["center", "random"], "n_points": [1, 2, 3, 5, 9]})
    assert task.unsupported(model) is None  # the task runs, adapted
    context = task.prepare(SimpleNamespace(name="d"), Path("out"), model)
    record = task.run_sample(model, make_sample(), context, seed=0)
    assert max(model.calls) == 6 and max(row["step"] for row in record.rows) == 6
    metrics = task.aggregate([record], context, seed=0)
    for prefix in ("", "random_"):
        assert all(f"{prefix}miou@{n}" in metrics for n in (1, 2, 3, 5))
        assert f"{prefix}miou@9" not in metrics and f"{prefix}noc@85" not in metrics
    unsupported = task.result_fields([record], metrics, context)["unsupported_metrics"]
    assert set(unsupported) == {f"{p}{m}" for p in ("", "random_") for m in ("miou@9", "noc@85", "noc@90")}
    assert "at most 6 points" in unsupported["miou@9"]
    protocol = task.protocol(context)
    assert protocol["feed_back_logits"] is False and protocol["clicks_run"] == 6
    assert "no mask input" in protocol["adapted"]["feed_back_logits"]
    assert "at most 6 points" in protocol["adapted"]["max_points"]


def test_point_task_unadapted_for_a_capable_model():
    task = PointTask({"first_point": ["center"], "n_points": [1, 2, 3, 5, 9]})
    before = task.protocol(None)
    context = task.prepare(SimpleNamespace(name="d"), Path("out"), ScriptedModel())
    assert task.protocol(context) == before and "adapted" not in before
    assert task.result_fields([], {}, context) == {}
