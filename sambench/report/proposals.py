"""Report section of the proposals tasks (LVIS v1, SAM §7.3): AR@1000 by object size and
frequency group, as a table and as bars next to the paper's Table 4 rows, and the AMG settings
and proposal counts behind them (``proposals`` and ``proposals-single-output``)."""
from __future__ import annotations

import pandas as pd

from sambench.report import figures, reference
from sambench.report.sections import ReportContext, Section
from sambench.report.tables import is_number, task_metrics, task_table

SETTINGS = ("points_per_side", "multimask_output", "box_nms_thresh", "crop_n_layers", "rank_by",
            "max_proposals")


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    single = any(e.get("protocol", {}).get("multimask_output") is False for e in entries)
    sec = Section("Object proposals" + (" (single-output ablation)" if single else ""), task)
    metrics = [m for m in task_metrics(ctx.results, task) if m.scale == 100]  # the AR columns
    frame, sources = task_table(entries, metrics, "proposals")
    sec.table(frame, "Mask AR@1000 ×100, overall, by object size and by LVIS frequency group."
                     + "".join(f" Published rows: {s}." for s in sources))
    settings = [(e["dataset"], e.get("protocol", {}), e.get("metrics", {})) for e in ctx.entries(task)
                if "points_per_side" in e.get("protocol", {})]  # results of older runs lack them
    if settings:
        sec.table(pd.DataFrame([{"dataset": name, **{k: str(p.get(k, "")) for k in SETTINGS},
                                 "proposals / image": f"{m['proposals_per_image']:.0f}"
                                 if is_number(m.get("proposals_per_image")) else ""}
                                for name, p, m in settings]),
                  "AMG settings of the run (all in results.json's protocol) and the mean number of "
                  "proposals kept per image (the paper: about 900).")
    for entry in ctx.entries(task):
        m = entry["metrics"]
        used = [metric for metric in metrics if is_number(m.get(metric.name))]
        if not used:
            continue
        series = [(f"this run ({entry['dataset']})", [m[metric.name] for metric in used], False)]
        series += [(f"published: {row['model']}", [row.get(metric.name) for metric in used], True)
                   for _, row in reference.rows_for("proposals", entry["dataset"])]
        sec.figure(figures.grouped_bars([metric.label for metric in used], series, used[0].label),
                   f"{entry['dataset']}: AR@1000 breakdown"
                   + (" (hatched: published, SAM Table 4)." if len(series) > 1 else "."))
    return [sec]
