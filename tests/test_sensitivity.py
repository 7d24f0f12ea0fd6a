"""`sambench sensitivity`: the open choices each protocol declares, re-scoring a run under an
alternative, Δ equal to a separately computed run, the paired CI, the report section."""
import json

import numpy as np
import pytest
import yaml

from sambench.cli import main
from sambench.models import MODELS
from sambench.sensitivity import parse_vary, plan, unit_values

from stand_in import DiskModel
from test_report_support import needs_chromium, render


class FeedModel(DiskModel):
    """The stand-in disks, 4 px wider when a mask input is fed back: feed_back_logits matters."""

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None, multimask=True):
        from sambench.models.base import batch_prompts, unbatch
        from sambench.types import Prediction

        batch = batch_prompts(points, labels, box, mask_input)
        h, w = embedding
        ys, xs = np.mgrid[0:h, 0:w]
        radii = (3, 8, 20) if multimask else (8,)
        grow = 0 if batch.mask_input is None else 4
        masks = np.zeros((batch.size, len(radii), h, w), bool)
        for b in range(batch.size):
            pos = batch.points[b][batch.labels[b] == 1].mean(axis=0)
            for k, r in enumerate(radii):
                masks[b, k] = (xs - pos[0]) ** 2 + (ys - pos[1]) ** 2 <= (r + grow) ** 2
        scores = np.tile(np.array([0.2, 0.9, 0.5][:len(radii)], np.float32), (batch.size, 1))
        return unbatch(Prediction(masks, scores, np.zeros((batch.size, len(radii), 256, 256), np.float32)), batch)


if "test-disk-feed" not in MODELS:
    MODELS.add("test-disk-feed", lambda checkpoint=None, device="cpu", dtype="float32": FeedModel(),
               "test stand-in that reads mask inputs")


def suite_file(path, synth_dir, **options):
    path.write_text(yaml.safe_dump({"name": "s", "version": 1, "tasks": [
        {"task": "point", "datasets": [str(synth_dir)],
         "options": {"first_point": ["center"], "n_points": [1, 2, 3, 5], **options}}]}))
    return str(path)


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    """A run, its sensitivity to feed_back_logits, and a separate run with that option changed."""
    tmp = tmp_path_factory.mktemp("sensitivity")
    out = {}
    for name, options in (("base", {}), ("nofeed", {"feed_back_logits": False})):
        out[name] = tmp / name
        assert main(["run", "--model", "test-disk-feed", "--suite", suite_file(tmp / f"{name}.yaml", synth_dir, **options),
                     "--out", str(out[name]), "--limit", "2", "--no-report"]) == 0
    assert main(["sensitivity", str(out["base"]), "--vary", "feed_back_logits=false"]) == 0
    return out


def test_every_task_declares_its_open_choices():
    from sambench.tasks import open_choices
    from sambench.tasks.edges import EdgesProtocol
    from sambench.tasks.instances import InstancesProtocol
    from sambench.tasks.point import PointProtocol
    from sambench.tasks.proposals import ProposalsProtocol

    expected = {PointProtocol: {"feed_back_logits", "multimask_later", "ignore"},
                InstancesProtocol: {"refine", "refine_multimask", "score"},
                ProposalsProtocol: {"rank_by"},
                EdgesProtocol: {"boundary", "boundary_holes", "box_nms_thresh", "normalize", "edge_nms"}}
    for protocol, names in expected.items():
        choices = open_choices(protocol)
        assert set(choices) == names
        for name, choice in choices.items():
            default = protocol.__dataclass_fields__[name].default
            assert choice["source"] and default in choice["values"] and len(choice["values"]) > 1


def test_default_plan_varies_every_open_choice(runs):
    pinned = json.loads((runs["base"] / "run.json").read_text())
    items = plan(pinned, None)
    assert [(i["option"], i["value"]) for i in items] == [
        ("feed_back_logits", False), ("multimask_later", True), ("ignore", "background")]
    assert plan(pinned, parse_vary(["point.multimask_later=true,false"]))[0]["value"] is True
    with pytest.raises(Exception, match="no task of this run has"):
        plan(pinned, parse_vary(["rank_by=random"]))
    with pytest.raises(Exception, match="ignore 'wrong' is not one of"):  # before anything runs
        plan(pinned, parse_vary(["ignore=wrong"]))


def test_delta_equals_a_separately_computed_run(runs, capsys):
    summary = json.loads((runs["base"] / "sensitivity.json").read_text())
    (item,) = summary["variants"]
    assert (item["task"], item["option"], item["setting"], item["value"]) == ("point", "feed_back_logits", True, False)
    entry = json.loads((runs["base"] / "results.json").read_text())["results"][0]
    base = entry["metrics"]
    other = json.loads((runs["nofeed"] / "results.json").read_text())["results"][0]["metrics"]
    m = item["metrics"]["miou@3"]
    (row,) = m["datasets"]
    assert abs(row["delta"] - (other["miou@3"] - base["miou@3"])) <= 1e-12
    assert abs(m["mean"]["delta"] - (other["miou@3"] - base["miou@3"])) <= 1e-12
    assert row["delta"] != 0  # the option matters for this model
    assert item["metrics"]["miou@1"]["mean"]["delta"] == 0  # the first click has no feed-back
    # the paired CI: a bootstrap over the 2 images of the per-mask differences
    lo, hi = row["delta_ci95"]
    assert lo <= row["delta"] <= hi
    base_units = unit_values("point", [json.loads(p.read_text()) for p in
                                       (runs["base"] / "records/point/synth-shapes").glob("*.json")], "miou@3",
                             entry["protocol"])
    assert np.mean(list(base_units.values())) == pytest.approx(base["miou@3"], abs=1e-12)
    # every declared metric is compared, flagged headline as the runner's metric spec says
    spec = {m["name"]: m["headline"] for m in entry["metric_spec"]}
    assert {name: m["headline"] for name, m in item["metrics"].items()} == spec
    assert spec["miou@5"] and not spec["miou@3"]


def test_sensitivity_prints_the_table_and_resumes(runs, capsys):
    assert main(["sensitivity", str(runs["base"]), "--vary", "feed_back_logits=false", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "feed_back_logits" in out and "true → false" in out and "miou@5" in out and "miou@3" not in out
    assert main(["sensitivity", str(runs["base"]), "--vary", "n_pointz=1"]) == 2


@needs_chromium
def test_report_shows_the_section(runs, tmp_path):
    html = (runs["base"] / "report.html").read_text()
    assert "Protocol sensitivity" in html and "feed_back_logits" in html
    dom, shot, console = render(runs["base"] / "report.html", tmp_path)
    assert console == [] and 'id="sensitivity"' in dom and shot.std() > 10


def test_docs_list_every_open_choice():
    from pathlib import Path

    from sambench.tasks import open_choices
    from sambench.tasks.edges import EdgesProtocol
    from sambench.tasks.instances import InstancesProtocol
    from sambench.tasks.point import PointProtocol
    from sambench.tasks.proposals import ProposalsProtocol

    text = (Path(__file__).resolve().parents[1] / "docs" / "sensitivity.md").read_text()
    for task, protocol in (("point", PointProtocol), ("instances", InstancesProtocol),
                           ("proposals", ProposalsProtocol), ("edges", EdgesProtocol)):
        for name in open_choices(protocol):
            assert f"| {task} | `{name}`" in text, f"docs/sensitivity.md lacks {task}.{name}"


def test_paired_intervals_of_the_other_tasks_from_their_records():
    from sambench.sensitivity import _bootstrap_delta

    rng = np.random.default_rng(0)
    # proposals: AR@1000 is the mean over masks of the mean recall over thresholds
    prop = [{"sample_id": s, "rows": [{"mask": m, "matched": {"all": [1] * k + [0] * (10 - k)}}
                                      for m, k in (("a", 10), ("b", 5))]} for s in ("i1", "i2")]
    assert unit_values("proposals", prop, "ar@1000", {}) == {("i1", "a"): 1.0, ("i1", "b"): 0.5,
                                                         ("i2", "a"): 1.0, ("i2", "b"): 0.5}
    worse = json.loads(json.dumps(prop))
    worse[0]["rows"][0]["matched"]["all"] = [0] * 10
    boot = _bootstrap_delta("proposals", "ar@1000", prop, worse, ({}, {}), rng, 200)
    assert set(np.round(boot, 12)) <= {0.0, -0.5, -0.25}  # images drawn: (i2, i2), (i1, i2), (i1, i1)
    # edges: ODS recomputed from the drawn images' pooled counts; a run against itself moves nothing
    counts = np.zeros((99, 4))
    counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3] = 5, 10, 4, 8
    edges = [{"sample_id": s, "rows": [{"counts": counts.tolist()}]} for s in ("i1", "i2")]
    assert (_bootstrap_delta("edges", "ods", edges, edges, ({"nthresh": 99},) * 2, rng, 20) == 0).all()
    # AP is a whole-dataset ranking: no interval
    assert _bootstrap_delta("instances", "ap", prop, prop, ({}, {}), rng, 20) is None
