"""Report sections: a small container for what a section shows, and the task → section registry.

A section is data (tables as DataFrames, matplotlib figures, notes), not HTML, so the same
sections render to the HTML report and to the PDF. Each task contributes its sections through
``@section("task")``; a task without one gets the generic metric table. Adding a figure to a
task's section is one line: ``sec.figure(make_my_figure(...), "caption")``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from sambench.report import tables
from sambench.results import scored


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


SectionFn = Callable[[ReportContext], Optional[Section]]
SECTIONS: dict[str, list[tuple[int, SectionFn]]] = {}


def section(task: str, order: int = 0) -> Callable[[SectionFn], SectionFn]:
    """Register a function that returns one of the task's sections (or None when it has
    nothing to show); a task's sections appear by ``order``."""
    def decorator(fn: SectionFn) -> SectionFn:
        SECTIONS.setdefault(task, []).append((order, fn))
        SECTIONS[task].sort(key=lambda item: item[0])
        return fn

    return decorator


def build_sections(ctx: ReportContext) -> list[Section]:
    """Summary, then each task's sections in the order the run lists its tasks, then problems."""
    from sambench.report import edges, examples, instances, point, proposals  # noqa: F401 (register)
    from sambench.report import concept, text  # noqa: F401 (register)

    out = [summary_section(ctx)]
    for task in dict.fromkeys(e["task"] for e in ctx.results["results"]):
        for _, fn in SECTIONS.get(task, [(0, generic_section_for(task))]):
            sec = fn(ctx)
            if sec is not None:
                out.append(sec)
    from sambench.report.sensitivity import sensitivity_section

    sensitivity = sensitivity_section(ctx)
    if sensitivity is not None:
        out.append(sensitivity)
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


def generic_section_for(task: str) -> SectionFn:
    """A plain per-dataset table of the scalar metrics, for tasks with no section of their own
    (e.g. statistics, whose metrics are free-form per dataset)."""
    def generic(ctx: ReportContext) -> Optional[Section]:
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
            return None
        sec = Section(task.replace("-", " ").replace("_", " ").capitalize(), task)
        sec.table(pd.DataFrame(rows).fillna(""), "Metrics as stored in results.json (not rescaled).")
        return sec

    return generic


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
