"""Report section of the proposals task (LVIS v1, SAM §7.3): AR@1000 by object size and
frequency group, as a table and as bars next to the paper's Table 4 rows."""
from __future__ import annotations

from typing import Optional

from sambench.report import figures, reference
from sambench.report.sections import ReportContext, Section, section
from sambench.report.tables import is_number, task_table

METRICS = [("ar@1000", "all"), ("ar@1000_small", "small"), ("ar@1000_medium", "medium"),
           ("ar@1000_large", "large"), ("ar@1000_frequent", "frequent"), ("ar@1000_common", "common"),
           ("ar@1000_rare", "rare")]


@section("proposals")
def proposals_section(ctx: ReportContext) -> Optional[Section]:
    entries = ctx.entries("proposals", present=False)
    if not entries:
        return None
    sec = Section("Object proposals", "proposals")
    frame, sources = task_table("proposals", entries, METRICS)
    sec.table(frame, "Mask AR@1000 ×100, overall, by object size and by LVIS frequency group."
                     + "".join(f" Published rows: {s}." for s in sources))
    for entry in ctx.entries("proposals"):
        m = entry["metrics"]
        used = [(metric, label) for metric, label in METRICS if is_number(m.get(metric))]
        if not used:
            continue
        series = [(f"this run ({entry['dataset']})", [m[metric] for metric, _ in used], False)]
        series += [(f"published: {row['model']}", [row.get(metric) for metric, _ in used], True)
                   for _, row in reference.rows_for("proposals", entry["dataset"])]
        sec.figure(figures.grouped_bars([label for _, label in used], series, "AR@1000"),
                   f"{entry['dataset']}: AR@1000 breakdown"
                   + (" (hatched: published, SAM Table 4)." if len(series) > 1 else "."))
    return sec
