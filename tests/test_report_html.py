"""`sambench report`: the self-contained HTML (checked in headless Chromium), the PDF (checked
with poppler), the section registry and clear errors for broken inputs."""
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from sambench.cli import main
from sambench.errors import SambenchError
from sambench.report import ReportContext, Section, build_sections, write_report
from sambench.report.pdf import page_count
from sambench.results import load_results

from test_report_support import (base_run, copy_run, data_uri_pngs, edit_results, full_run,  # noqa: F401
                                 needs_chromium, needs_poppler, render, worse_copy)

SECTION_IDS = ["summary", "point", "point-compare", "point-examples", "edges", "proposals", "instances",
               "instances-gtbox", "custom-task"]


# 2 point figures (per-dataset bars, mIoU vs points), the compare Δ chart, 1 examples grid per
# point dataset, the proposals breakdown.
FIGURES = 2 + 1 + 1 + 1


@needs_chromium
def test_report_renders_in_chromium_with_every_section_and_figure(full_run, base_run, tmp_path, capsys):
    other = worse_copy(base_run, tmp_path / "worse")
    assert main(["report", str(full_run), "--compare", str(other)]) == 0
    assert "report:" in capsys.readouterr().out
    page = full_run / "report.html"
    source = page.read_text()
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", source)  # self-contained, no fetches

    dom, shot, console = render(page, tmp_path)
    assert console == []
    for anchor in SECTION_IDS:
        assert f'id="{anchor}"' in dom, anchor
    pngs = data_uri_pngs(dom)
    assert len(pngs) == FIGURES
    assert all(min(im.size) > 150 for im in pngs)
    assert shot.std() > 20 and (shot < 128).mean() > 0.01  # not blank: text and figures drawn

    # published rows appear where task and dataset match, labelled with their source
    for label in ("published: SAM (zero-shot)", "published: ViTDet-H", "published: SAM (ViTDet-H boxes)",
                  "SAM Table 3", "SAM Table 4", "SAM Table 5"):
        assert label in dom, label
    assert "published: SAM ViT-H" not in dom  # SA-23 rows only for runs on SA-23 datasets
    gtbox = dom[dom.index('id="instances-gtbox"'):dom.index('id="custom-task"')]
    assert "Ground-truth box + centre point prompts" in gtbox and "75.0–79.0" in gtbox and "published" not in gtbox
    assert "wins / losses" in dom and "disk-worse" in dom  # the paired comparison table


def test_report_shows_sa23_reference_rows_for_sa23_datasets(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "sa23")

    def as_sa23(data):
        entry = dict(data["results"][0], dataset="ppdls")
        data["results"] = [entry, dict(entry, dataset="gtea"), dict(entry, dataset="ndd20", status="absent")]

    edit_results(run, as_sa23)
    html = write_report(run).read_text()
    assert "this run: mean over 2 of 23 SA-23 datasets" in html
    assert "published: SAM ViT-H (SA-1B)" in html and "58.1" in html and "SAM2 Table 15" in html
    assert "not directly comparable" in html
    assert "absent" in html


@needs_poppler
def test_pdf_has_the_expected_pages_and_they_render(full_run, base_run, tmp_path):
    other = worse_copy(base_run, tmp_path / "worse")
    write_report(full_run, pdf=True, compare=[other])
    pdf = full_run / "report.pdf"
    ctx = ReportContext(full_run, load_results(full_run), others=[(other, load_results(other))])
    sections = build_sections(ctx)
    expected = page_count(sections)
    for sec in sections:
        sec.close()
    # summary page, then per section (point, compare, examples, edges, proposals, instances,
    # instances-gtbox, an unknown task) every table and figure on its own page
    assert expected == 1 + (1 + 2) + (1 + 1) + 1 + 1 + (1 + 1) + 1 + 2 + 1
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", info)[1]) == expected
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == expected
    from PIL import Image

    for path in pages:
        pixels = np.asarray(Image.open(path).convert("L"))
        assert pixels.std() > 5, f"{path.name} is blank"


def test_point_records_keep_the_predicted_masks_at_1_and_9_points(base_run, synth_dir):
    from sambench import datasets, masks
    from sambench.metrics.iou import mask_iou

    gts = {(s.id, i.id): i.mask() for s in datasets.resolve(str(synth_dir)).open() for i in s.instances}
    for path in (base_run / "records" / "point" / "synth-shapes").glob("*.json"):
        rec = json.loads(path.read_text())
        assert {r["step"] for r in rec["rows"] if "pred" in r} == {1, 9}
        for row in rec["rows"]:
            if "pred" in row:
                iou = mask_iou(masks.decode(row["pred"]), gts[(rec["sample_id"], row["mask"])])
                assert iou == pytest.approx(row["iou"])


def test_examples_come_from_stored_predictions(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "ex")
    html = write_report(run).read_text()
    section_html = html[html.index('id="point-examples"'):]
    assert section_html.count("<img") == 1 and "no examples" not in section_html

    # records written before predictions were stored, and a dataset folder that moved away
    for path in (run / "records" / "point" / "synth-shapes").glob("*.json"):
        rec = json.loads(path.read_text())
        for row in rec["rows"]:
            row.pop("pred", None)
        path.write_text(json.dumps(rec))
    html = write_report(run).read_text()
    assert "synth-shapes: no examples: the records hold no predicted masks" in html

    run2 = copy_run(base_run, tmp_path / "moved")
    edit_results(run2, lambda d: d["results"][0].update(root=str(tmp_path / "gone"), dataset="elsewhere"))
    (run2 / "records" / "point" / "synth-shapes").rename(run2 / "records" / "point" / "elsewhere")
    html = write_report(run2).read_text()
    assert "elsewhere: no examples:" in html and "not found" in html


def test_a_runner_section_is_one_registered_function(base_run, tmp_path, monkeypatch):
    """How a task builder adds a section with a table and a figure: one function per runner,
    used for every task of that runner (docs/architecture.md has the module-level version)."""
    import matplotlib.pyplot as plt

    from sambench.report.sections import SECTIONS

    def toy(ctx, task):
        entries = ctx.entries(task)
        sec = Section("Toy task", task)
        sec.table(pd.DataFrame([{"dataset": e["dataset"], "score": "12.5"} for e in entries]), "A toy table.")
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([0, 1], [0, 1])
        sec.figure(fig, "A toy curve.")
        return [sec]

    monkeypatch.setitem(SECTIONS._loaded, "toy-runner", toy)
    run = copy_run(base_run, tmp_path / "toy")
    edit_results(run, lambda d: d["results"].extend(
        {"task": name, "runner": "toy-runner", "task_version": 1, "dataset": "d", "n_images": 1, "n_masks": 1,
         "metrics": {}} for name in ("toy-a", "toy-b")))
    html = write_report(run).read_text()
    first, second = html[html.index('id="toy-a"'):html.index('id="toy-b"')], html[html.index('id="toy-b"'):]
    assert all("A toy table." in sec and "A toy curve." in sec for sec in (first, second))


def test_unknown_tasks_get_the_generic_table(full_run):
    html = write_report(full_run).read_text()
    stats = html[html.index('id="custom-task"'):]
    assert "masks_per_image" in stats and "12.3" in stats and "[0.5, 0.49]" in stats


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no results.json"),
    (lambda d: (d / "results.json").write_text("{broken"), "malformed JSON"),
    (lambda d: (d / "results.json").write_text(json.dumps({"schema": "sambench.results/0", "results": []})),
     "schema 'sambench.results/0' is not 'sambench.results/1'"),
])
def test_broken_run_directories_give_one_clear_line(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sambench: error:") and message in err[0]


def test_compare_with_a_run_of_another_schema_is_refused(base_run, tmp_path):
    other = copy_run(base_run, tmp_path / "old")
    edit_results(other, lambda d: d.update(schema="sambench.results/0"))
    with pytest.raises(SambenchError, match="schema"):
        write_report(copy_run(base_run, tmp_path / "a"), compare=[other])


@needs_poppler
def test_sa23_sized_run_splits_long_tables_across_pdf_pages(base_run, tmp_path):
    from sambench.report.reference import load_references

    names = next(r for r in load_references() if r.get("aggregate") == "sa23")["datasets"]
    run = copy_run(base_run, tmp_path / "sa23")
    edit_results(run, lambda d: d.update(results=[dict(d["results"][0], dataset=n) for n in names]))
    write_report(run, pdf=True)
    html = (run / "report.html").read_text()
    assert "this run: mean over 23 of 23 SA-23 datasets" in html and "not directly comparable" not in html
    info = subprocess.run(["pdfinfo", str(run / "report.pdf")], capture_output=True, text=True, check=True).stdout
    # summary; point: 24-row table on 2 pages, SA-23 reference table, 2 figures; examples notes only
    assert int(re.search(r"Pages:\s+(\d+)", info)[1]) == 1 + (2 + 1 + 2) + 1


@needs_chromium
@needs_poppler
def test_a_run_of_every_task_renders_every_section(tmp_path):
    """The example suite (one task of each kind on synthetic data) through a random tiny SAM
    with a text path: one report with every task's section and figures, in Chromium and PDF."""
    from sambench.models.sam import write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "tiny_text.pth", "tiny", seed=0, text_dim=32, text_encoder="hash")
    out = tmp_path / "run"
    assert main(["run", "--suite", "example-all-tasks", "--model", f"sam:{ckpt}", "--limit", "1",
                 "--out", str(out), "--no-cache", "--no-report"]) == 0
    assert main(["report", str(out), "--pdf"]) == 0
    results = load_results(out)
    assert {e["task"] for e in results["results"]} == {"point", "instances-gtbox", "proposals", "edges", "text",
                                                      "statistics"}
    assert all(e["status"] == "ok" for e in results["results"])
    dom, shot, console = render(out / "report.html", tmp_path, height=9000)
    assert console == []
    ids = ["summary", "point", "point-examples", "instances-gtbox", "proposals", "edges", "text", "statistics"]
    starts = [dom.index(f'id="{anchor}"') for anchor in ids]
    assert starts == sorted(starts)
    for anchor, start, end in zip(ids, starts, starts[1:] + [len(dom)]):
        figures = len(data_uri_pngs(dom[start:end]))
        # every task section but the text table draws at least one figure (edges: the PR curve)
        assert figures >= (0 if anchor in ("summary", "instances-gtbox", "text") else 1), anchor
    assert shot.std() > 20
    ctx = ReportContext(out, results)
    sections = build_sections(ctx)
    expected = page_count(sections)
    for sec in sections:
        sec.close()
    info = subprocess.run(["pdfinfo", str(out / "report.pdf")], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", info)[1]) == expected > len(ids)
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(out / "report.pdf"), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == expected
