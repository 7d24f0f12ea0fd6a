"""Figures (matplotlib, Agg) as base64 PNGs for the self-contained HTML report."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def miou_vs_points(results: dict) -> str | None:
    """mIoU against number of points, center and random first point (paper Fig. 9c/9d)."""
    entries = [e for e in results["results"] if e["task"] == "point" and e.get("status") != "absent"]
    if not entries:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (prefix, title) in zip(axes, [("", "center first point"), ("random_", "random first point")]):
        for entry in entries:
            ns = entry["protocol"]["n_points"]
            ys = [entry["metrics"].get(f"{prefix}miou@{n}") for n in ns]
            if all(y is not None for y in ys):
                ax.plot(range(len(ns)), [100 * y for y in ys], marker="o", label=entry["dataset"])
                ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_title(title)
        ax.set_xlabel("number of points")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU")
    axes[-1].legend(fontsize=8, loc="lower right")
    return to_data_uri(fig)
