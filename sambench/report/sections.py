"""Report sections: a small container for what a section shows, and the runner → sections
registry.

A section is data (tables as DataFrames, matplotlib figures, notes), not HTML, so the same
sections render to the HTML report and to the PDF. Each runner's report module has one
function ``sections(ctx, task) -> list[Section]``, registered in :data:`SECTIONS` under the
runner's name, so every task of that runner (a YAML variant included) gets them; a task whose
runner has none gets the generic metric table. Adding a figure to a section is one line:
``sec.figure(make_my_figure(...), "caption")``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from sambench.registry import Registry
from sambench.report import tables
from sambench.results import scored
from sambench.tasks import runner_of


@dataclass
class Table:
    frame: pd.DataFrame  # cells already formatted as text; an optional "_kind" column marks rows
    caption: str = ""    # ("mean", "ref" for published reference rows)
    meta: bool = False   # a label/value list (provenance) rather than a table of numbers


@dataclass
class Figure:
    fig: object  # a matplotlib Figure, closed by Section.close() after rendering
    caption: str
    _png: Optional[bytes] = field(default=None, repr=False)

    def png(self) -> bytes:
        """Rendered once, shared by the HTML and the PDF (rendering dominates report time)."""
        if self._png is None:
            from sambench.report.figures import png_bytes

            self._png = png_bytes(self.fig)
        return self._png


@dataclass
class Note:
    text: str


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list = field(default_factory=list)

    def table(self, frame: pd.DataFrame, caption: str = "", meta: bool = False) -> None:
        self.blocks.append(Table(frame, caption, meta))

    def figure(self, fig, caption: str) -> None:
        self.blocks.append(Figure(fig, caption))

    def note(self, text: str) -> None:
        self.blocks.append(Note(text))

    def close(self) -> None:
        import matplotlib.pyplot as plt

        for block in self.blocks:
            if isinstance(block, Figure):
                plt.close(block.fig)


@dataclass
class ReportContext:
    """What a section function sees: this run, the runs it is compared with, options."""

    run_dir: Path
    results: dict
    others: list[tuple[Path, dict]] = field(default_factory=list)  # --compare runs
    data_root: Optional[str] = None  # where to find images for the qualitative examples

    def entries(self, task: str, present: bool = True) -> list[dict]:
        return [e for e in self.results["results"] if e["task"] == task
                and (not present or scored(e))]

    @property
    def seed(self) -> int:
        return int(self.results["run"].get("seed") or 0)


SectionsFn = Callable[[ReportContext, str], list[Section]]
SECTIONS: Registry[SectionsFn] = Registry("report section")
SECTIONS.register("point", "sambench.report.point:sections", "per-dataset table, figures, paired comparison, examples")
SECTIONS.register("edges", "sambench.report.edges:sections", "ODS/OIS/AP/R50 table and PR curves")
SECTIONS.register("proposals", "sambench.report.proposals:sections", "AR table and breakdown bars")
SECTIONS.register("instances", "sambench.report.instances:sections", "mask AP or GT-box mIoU tables")
SECTIONS.register("text", "sambench.report.text:sections", "mIoU / cIoU / P@t per prompt mode")
SECTIONS.register("statistics", "sambench.report.statistics:sections", "mask statistics figures")
SECTIONS.register("concept", "sambench.report.concept:sections", "cgF1, pmF1 and IL_MCC per route")
# Sections about the whole run, after the tasks': ``fn(ctx) -> Optional[Section]``.
RUN_SECTIONS: Registry[Callable[[ReportContext], Optional[Section]]] = Registry("run section")
RUN_SECTIONS.register("sensitivity", "sambench.report.sensitivity:sensitivity_section",
                      "results of `sambench sensitivity` over the open choices")


def build_sections(ctx: ReportContext) -> list[Section]:
    """Summary, then each task's sections (its runner's) in the order the run lists its tasks,
    then problems."""
    out = [summary_section(ctx)]
    first: dict[str, dict] = {}
    for entry in ctx.results["results"]:
        first.setdefault(entry["task"], entry)
    for task, entry in first.items():
        runner = runner_of(entry)
        build = SECTIONS.get(runner) if runner in SECTIONS else generic_sections
        out += [sec for sec in build(ctx, task) if sec is not None]
    for name in RUN_SECTIONS:  # sections about the whole run (e.g. a sensitivity study)
        sec = RUN_SECTIONS.get(name)(ctx)
        if sec is not None:
            out.append(sec)
    problems = problems_section(ctx)
    if problems is not None:
        out.append(problems)
    return out


def summary_rows(results: dict) -> list[tuple[str, str]]:
    """Provenance as (label, value) pairs: the summary table of the HTML and PDF alike."""
    run, model = results["run"], results["model"]
    suite = results.get("suite") or {}
    params = model.get("params")
    hardware = " / ".join(str(v) for v in (run.get("device"), run.get("dtype"), run.get("platform")) if v)
    if (run.get("world_size") or 1) > 1:
        hardware += f" / {run['world_size']} processes"
    return [
        ("model", f"{model['name']} ({model.get('family', '')})"),
        ("checkpoint", str(model.get("checkpoint") or "—")),
        ("sha256", str(model.get("sha256") or "—")),
        ("parameters", f"{params:,}" if isinstance(params, int) else "—"),
        ("suite", f"{suite.get('name', '—')} v{suite.get('version', '')}" if suite else "—"),
        ("command", str(run.get("command", ""))),
        ("created", str(run.get("created", ""))),
        ("duration", f"{run.get('duration_s')} s"),
        ("hardware", hardware),
        ("versions", f"sambench {run.get('sambench_version')} ({run.get('git_sha') or 'no git'}), "
                     f"torch {run.get('torch')}, Python {run.get('python')}"),
        ("seed", str(run.get("seed"))),
        ("run id", str(run.get("id"))),
    ]


def summary_section(ctx: ReportContext) -> Section:
    sec = Section("Summary", "summary")
    rows = summary_rows(ctx.results)
    sec.table(pd.DataFrame(rows, columns=["item", "value"]), meta=True)
    headline = tables.headline_table(ctx.results)
    if not headline.empty:
        sec.table(headline, "Headline numbers (×100; unweighted mean over the datasets present).")
    return sec


def generic_sections(ctx: ReportContext, task: str) -> list[Section]:
    """A plain per-dataset table of the scalar metrics, for tasks whose runner has no section
    of its own."""
    rows = []
    for entry in ctx.entries(task, present=False):
        row = {"dataset": entry["dataset"], "images": entry.get("n_images", "")}
        if not scored(entry):
            row["status"] = entry["status"]
        for name, value in entry.get("metrics", {}).items():
            if name.endswith("_ci95"):
                continue
            row[name] = f"{value:.4g}" if tables.is_number(value) else json.dumps(value)[:60]
        rows.append(row)
    if not rows:
        return []
    sec = Section(task.replace("-", " ").replace("_", " ").capitalize(), task)
    sec.table(pd.DataFrame(rows).fillna(""), "Metrics as stored in results.json (not rescaled).")
    return [sec]


def problems_section(ctx: ReportContext) -> Optional[Section]:
    rows = [(f"{e['task']}/{e['dataset']}", ", ".join(f"{k}: {v}" for k, v in e["counts"].items()))
            for e in ctx.results["results"] if e.get("counts")]
    absent = [f"{e['task']}/{e['dataset']}" for e in ctx.results["results"] if e.get("status") == "absent"]
    unsupported = [f"{e['task']}/{e['dataset']} ({e.get('reason', 'not supported by the model')})"
                   for e in ctx.results["results"] if e.get("status") == "unsupported"]
    if not rows and not absent and not unsupported:
        return None
    sec = Section("Not scored", "problems")
    if rows:
        sec.table(pd.DataFrame(rows, columns=["task/dataset", "counts"]),
                  "Counted, never silently dropped (details in the run's records and log).")
    if absent:
        sec.note("Absent datasets (no folder under the data root; reported, never scored as zero): "
                 + ", ".join(absent) + ".")
    if unsupported:
        sec.note("Tasks this model cannot answer (reported, never scored as zero): " + "; ".join(unsupported) + ".")
    return sec
