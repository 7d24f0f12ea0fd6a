"""Report section of the edges task (BSDS500, SAM §7.2): ODS / OIS / AP / R50 with the paper's
Table 3 rows, and the precision-recall curve per dataset with iso-F contours and each run's ODS
point; ``--compare`` runs scored on the same dataset are drawn on the same axes (dashed).

The curves come from the results entry's ``pr_curve`` (written by the edges task); a results file
without it still gets the table. matplotlib is imported only when a figure is drawn.
"""
from __future__ import annotations

from typing import Optional

from sambench.report.compare import run_label
from sambench.report.sections import ReportContext, Section
from sambench.report.tables import task_metrics, task_table
from sambench.results import scored

ISO_F = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def pr_curves(series: list[dict], title: str = ""):
    """Precision against recall, one line per series, its ODS point marked, on iso-F contours.

    ``series``: dicts with ``label``, ``recall``, ``precision`` (per threshold), ``ods``
    (``{"r", "p", "f"}``) and optionally ``dashed``.
    """
    import numpy as np

    from sambench.report.figures import PALETTE, plt, styled

    @styled
    def draw():
        fig, ax = plt.subplots(figsize=(5.4, 4.9))
        r = np.linspace(0.001, 1, 400)
        for f in ISO_F:  # P = fR / (2R - f), defined for R > f / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                p = f * r / (2 * r - f)
            ok = (r > f / 2) & (p > 0) & (p <= 1)
            ax.plot(r[ok], p[ok], color="#c4c4c4", linewidth=0.7, zorder=0)
            ax.text(0.99, f / (2 - f), f"F={f:.1f}", fontsize=6.5, color="#8a8a8a", ha="right", va="bottom")
        for k, s in enumerate(series):
            color = PALETTE[k % len(PALETTE)]
            rec, prec = np.asarray(s["recall"], float), np.asarray(s["precision"], float)
            seen = (rec > 0) | (prec > 0)  # thresholds above the map's maximum predict nothing
            ods = s["ods"]
            ax.plot(rec[seen], prec[seen], color=color, linewidth=1.6, linestyle="--" if s.get("dashed") else "-",
                    label=f"{s['label']} (ODS {ods['f']:.3f})")
            ax.scatter([ods["r"]], [ods["p"]], s=36, color=color, edgecolors="white", linewidths=0.8, zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        if title:
            ax.set_title(title)
        ax.legend(loc="lower left", frameon=True, framealpha=0.9)
        return fig

    return draw()


def _series(entry: dict, label: str, dashed: bool = False) -> Optional[dict]:
    curve = entry.get("pr_curve")
    if not curve or not curve.get("ods") or curve["ods"].get("f") is None:
        return None
    return {"label": label, "recall": curve["recall"], "precision": curve["precision"], "ods": curve["ods"],
            "dashed": dashed}


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    sec = Section("Edge detection", task)
    frame, sources = task_table(entries, task_metrics(ctx.results, task), "edges")
    sec.table(frame, "ODS / OIS: F-measure at the best dataset-wide / per-image threshold; AP; R50: recall "
                     "at 50% precision. Fractions, as in the paper's Table 3."
                     + "".join(f" Published rows: {s}." for s in sources))
    drawn = False
    for entry in ctx.entries(task):
        label = run_label(ctx.results, ctx.run_dir) if ctx.others else ctx.results["model"]["name"]
        series = [s for s in [_series(entry, label)] if s]
        if not series:
            continue
        for other_dir, other in ctx.others:
            for e in other["results"]:
                if e["task"] == task and e["dataset"] == entry["dataset"] and scored(e):
                    s = _series(e, run_label(other, other_dir), dashed=True)
                    if s:
                        series.append(s)
        sec.figure(pr_curves(series, f"{entry['dataset']} ({entry.get('n_images', 0)} images)"),
                   f"{entry['dataset']}: precision-recall curve over the benchmark's thresholds, the ODS point "
                   "marked; grey: iso-F contours." + (" Dashed: the compared runs." if len(series) > 1 else ""))
        drawn = True
    if not drawn and ctx.entries(task):
        sec.note("No precision-recall curve in these results (an entry without pr_curve): figure skipped.")
    return [sec]
