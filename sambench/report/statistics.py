"""Report section of the statistics task: the SAM paper's Fig. 6 panels (masks per image,
relative mask size, concavity) and Fig. 5 heatmaps (normalised mask centres), every dataset of
the run side by side, plus a table of the summary numbers.

The arrays come from ``<run>/<task>/<dataset>_statistics.json``, written by the task's
``aggregate``; a results.json copied without them still gets the table. matplotlib is imported
only when a figure is drawn, since ``sambench.report`` imports this module to register it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

from sambench.report.sections import ReportContext, Section
from sambench.report.tables import fmt_metric, task_metrics
from sambench.results import scored
from sambench.tasks.statistics import arrays_path

def load_arrays(run_dir: Path, entry: dict) -> Optional[dict]:
    path = arrays_path(Path(run_dir) / entry["task"], entry["dataset"])
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def mask_property_panels(series: list[tuple[str, dict]]):
    """Fig. 6: masks per image (bars), relative size and concavity (lines), one colour per dataset."""
    import numpy as np

    from sambench.report.figures import PALETTE, plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    width = 0.8 / max(len(series), 1)
    for k, (label, arrays) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        counts = arrays["masks_per_image"]
        xs = np.arange(len(counts["bins"]))
        axes[0].bar(xs + (k - (len(series) - 1) / 2) * width, [100 * v for v in counts["fraction"]],
                    width * 0.95, color=color, label=label)
        for ax, key in ((axes[1], "rel_size"), (axes[2], "concavity")):
            edges = np.asarray(arrays[key]["edges"])
            ax.plot((edges[:-1] + edges[1:]) / 2, [100 * v for v in arrays[key]["fraction"]],
                    color=color, marker="o", markersize=2.5, linewidth=1.3)
    bins = series[0][1]["masks_per_image"]["bins"]
    axes[0].set_xticks(np.arange(len(bins)), bins)
    axes[0].set_xlabel("number of masks per image")
    axes[0].set_ylabel("percent of images")
    axes[1].set_xlabel("relative segmentation mask size")
    axes[2].set_xlabel("concavity (size-stratified sample)")
    for ax in axes[1:]:
        ax.set_ylabel("percent of masks")
        ax.set_xlim(0, 1)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(len(series), 4), frameon=False)  # below the panels: never hides a curve
    fig.tight_layout()
    return fig


def centre_heatmaps(series: list[tuple[str, dict]]):
    """Fig. 5: where mask centres fall in the (normalised) image, one panel per dataset."""
    import numpy as np

    from sambench.report.figures import plt

    fig, axes = plt.subplots(1, len(series), figsize=(2.6 * len(series) + 0.4, 2.8), squeeze=False)
    for ax, (label, arrays) in zip(axes[0], series):
        ax.imshow(np.asarray(arrays["center_heatmap"]["fraction"]), cmap="magma", extent=(0, 1, 1, 0),
                  interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        ax.grid(False)
    fig.tight_layout()
    return fig


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    sec = Section("Dataset statistics", task)
    metrics = task_metrics(ctx.results, task)
    rows = []
    for entry in entries:
        m = entry.get("metrics", {})
        row = {"dataset": entry["dataset"], "images": entry.get("n_images", ""), "masks": entry.get("n_masks", "")}
        if not scored(entry):
            row["images"] = entry["status"]
        for metric in metrics:
            row[metric.label] = fmt_metric(metric, m.get(metric.name))
        rows.append(row)
    sec.table(pd.DataFrame(rows), "Per dataset: mean masks per image, relative mask size sqrt(area / image "
                                  "area), concavity 1 - area / convex hull area (on a size-stratified sample, "
                                  "as the paper's Fig. 6, and over all masks), mean distance of the normalised "
                                  "mask centre from the image centre.")
    series = []
    for entry in ctx.entries(task):
        arrays = load_arrays(ctx.run_dir, entry)
        if arrays and arrays.get("n_masks"):
            series.append((f"{entry['dataset']} ({arrays['n_images']:,} images, {arrays['n_masks']:,} masks)",
                           arrays))
    if series:
        from sambench.report.figures import styled

        sec.figure(styled(mask_property_panels)(series),
                   "Mask properties (cf. SAM Fig. 6): masks per image, relative mask size, and concavity "
                   "on a sample with equal numbers of masks per relative-size bin.")
        sec.figure(styled(centre_heatmaps)(series),
                   "Normalised mask-centre distributions (cf. SAM Fig. 5): share of mask centres of mass "
                   "per cell; brighter is more.")
    else:
        sec.note("The per-dataset arrays (<run>/statistics/<dataset>_statistics.json) are absent: figures skipped.")
    return [sec]
