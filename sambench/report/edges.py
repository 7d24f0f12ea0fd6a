"""Report section of the edges task (BSDS500, SAM §7.2): ODS / OIS / AP / R50 with the paper's
Table 3 rows. PR curves need per-threshold data from the task; add them with ``sec.figure``."""
from __future__ import annotations

from typing import Optional

from sambench.report.sections import ReportContext, Section, section
from sambench.report.tables import task_table

METRICS = [("ods", "ODS"), ("ois", "OIS"), ("ap", "AP"), ("r50", "R50")]


@section("edges")
def edges_section(ctx: ReportContext) -> Optional[Section]:
    entries = ctx.entries("edges", present=False)
    if not entries:
        return None
    sec = Section("Edge detection", "edges")
    frame, sources = task_table("edges", entries, METRICS)
    sec.table(frame, "ODS / OIS: F-measure at the best dataset-wide / per-image threshold; AP; R50: recall "
                     "at 50% precision. Fractions, as in the paper's Table 3."
                     + "".join(f" Published rows: {s}." for s in sources))
    return sec
