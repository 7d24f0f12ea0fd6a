"""Reports of a run directory: a self-contained report.html and, on request, report.pdf.

The report is assembled from sections (see :mod:`sambench.report.sections`): a summary, then
the sections of each task's runner (the ``SECTIONS`` registry), rendered once as data and
written to HTML and PDF alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from sambench.report.sections import SECTIONS, ReportContext, Section, build_sections
from sambench.results import load_results


def write_report(run_dir: Path, pdf: bool = False, compare: Sequence[Path] = (),
                 data_root: Optional[str] = None) -> Path:
    """Write ``report.html`` (and ``report.pdf`` with ``pdf``) into the run directory; returns
    the HTML path. ``compare``: other run directories to compare with, paired on the same masks."""
    from sambench.report.html import write_html

    run_dir = Path(run_dir)
    ctx = ReportContext(run_dir, load_results(run_dir),
                        others=[(Path(o), load_results(o)) for o in compare], data_root=data_root)
    sections = build_sections(ctx)
    try:
        path = write_html(run_dir / "report.html", ctx.results, sections, run_dir)
        if pdf:
            from sambench.report.pdf import write_pdf

            write_pdf(run_dir / "report.pdf", ctx.results, sections)
    finally:
        for sec in sections:
            sec.close()
    return path


__all__ = ["write_report", "SECTIONS", "Section", "ReportContext", "build_sections"]
