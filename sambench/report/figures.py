"""Figures (matplotlib, Agg) in one style, readable at report size (≈ 700–1000 px wide).

Every figure function is wrapped in ``@styled`` (a local rc context, so importing sambench never
changes a user's matplotlib defaults) and returns the Figure; the HTML embeds it as a PNG data
URI and the PDF places the same figure on a page.
"""
from __future__ import annotations

import base64
import functools
import io
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = ["#3b6ea8", "#e07b39", "#4c9a5b", "#b8474a", "#7d5ba6", "#8c6d4f", "#c76fa8", "#6f6f6f"]
GOOD, BAD, REFERENCE = "#3f8f5a", "#c0504d", "#222222"
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
         "axes.axisbelow": True, "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
         "figure.facecolor": "white", "savefig.facecolor": "white"}
DPI = 120  # one render serves the HTML (~1:1 on screen) and the PDF page


def styled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """The figure as a 256-colour PNG: charts look the same and example grids (photos) shrink
    about 3×, which keeps a report with many datasets mailable."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    quantized = image.quantize(256, method=Image.Quantize.FASTOCTREE)
    palette = quantized.getpalette()[:768]
    white = quantized.getpixel((0, 0))  # the page background: keep it exactly white
    palette[3 * white:3 * white + 3] = [255, 255, 255]
    quantized.putpalette(palette)
    out = io.BytesIO()
    quantized.save(out, format="PNG", optimize=True)
    return out.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _bar_height(n: int) -> float:
    return 0.9 + 0.28 * max(n, 2)


@styled
def per_dataset_bars(names: Sequence[str], values: Sequence[float], ci: Sequence[Optional[Sequence[float]]],
                     oracle: Sequence[Optional[float]], xlabel: str):
    """Per-dataset mIoU bars (×100), best on top, 95% CI whiskers and oracle circles (cf. Fig. 9a)."""
    order = np.argsort(values)  # barh draws bottom-up: best ends on top
    fig, ax = plt.subplots(figsize=(7.2, _bar_height(len(names))))
    y = np.arange(len(names))
    vals = np.array(values)[order] * 100
    ax.barh(y, vals, color=PALETTE[0], height=0.65, label="mIoU")
    # A percentile interval need not contain the mean (and one image's interval is the mean up
    # to rounding): whiskers never point inwards.
    err = np.maximum(np.array([[v - 100 * c[0], 100 * c[1] - v] if c else [0, 0]
                               for v, c in zip(vals, [ci[i] for i in order])]).T, 0)
    ax.errorbar(vals, y, xerr=err, fmt="none", ecolor="#333", elinewidth=0.8, capsize=2, label="95% CI")
    orc = [oracle[i] for i in order]
    if any(o is not None for o in orc):
        ys = [yy for yy, o in zip(y, orc) if o is not None]
        ax.scatter([100 * o for o in orc if o is not None], ys, s=36, facecolors="none",
                   edgecolors=PALETTE[1], linewidths=1.4, zorder=3, label="oracle (best of 3)")
    for yy, v in zip(y, vals):  # value inside the bar, or after it when the bar is too short
        inside = v >= 9
        ax.text(1 if inside else v + 1, yy, f"{v:.1f}", va="center", ha="left", fontsize=7.5,
                color="white" if inside else "#222", fontweight="bold")
    ax.set_yticks(y, [names[i] for i in order])
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    _legend_above(ax)
    return fig


def _legend_above(ax, ncol: int = 3) -> None:
    """One legend row above the axes, where it can never cover a bar or marker."""
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=ncol, frameon=False, borderaxespad=0.2)


@styled
def delta_bars(names: Sequence[str], deltas: Sequence[float], ci: Sequence[Sequence[float]], xlabel: str,
               reference: Optional[dict] = None, reference_label: str = ""):
    """Per-dataset difference A − B (×100), sorted like the paper's Fig. 9a, with paired CIs;
    optional published differences as markers where the dataset names match."""
    order = np.argsort(deltas)
    fig, ax = plt.subplots(figsize=(7.2, _bar_height(len(names))))
    y = np.arange(len(names))
    vals = np.array(deltas)[order] * 100
    _signed_bars(ax, y, vals, np.array([100 * ci[i][0] for i in order]), np.array([100 * ci[i][1] for i in order]),
                 "95% CI (paired bootstrap over images)", min_span=1.0, digits=1, margin=1.25)
    if reference:
        pts = [(100 * reference[names[i]], yy) for yy, i in zip(y, order) if names[i] in reference]
        if pts:
            ax.scatter(*zip(*pts), marker="D", s=22, color=REFERENCE, zorder=3, label=reference_label)
    ax.set_yticks(y, [names[i] for i in order])
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    _legend_above(ax, ncol=2)
    return fig


def _signed_bars(ax, y, vals, lo, hi, ci_label: str, min_span: float, digits: int, margin: float) -> None:
    """Horizontal bars (green up, red down) with CI whiskers [lo, hi], each value written
    beyond its whisker, and a zero line; symmetric x limits."""
    ax.barh(y, vals, color=[GOOD if v >= 0 else BAD for v in vals], height=0.65)
    ax.errorbar(vals, y, xerr=np.maximum(np.array([vals - lo, hi - vals]), 0), fmt="none", ecolor="#333", elinewidth=0.8,
                capsize=2, label=ci_label)
    span = max(min_span, float(np.abs(np.concatenate([vals, lo, hi])).max()))
    for yy, v, a, b in zip(y, vals, lo, hi):
        ax.text(b + 0.02 * span if v >= 0 else a - 0.02 * span, yy, f"{v:+.{digits}f}", va="center",
                ha="left" if v >= 0 else "right", fontsize=7.5)
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_xlim(-margin * span, margin * span)


@styled
def tornado(labels: Sequence[str], deltas: Sequence[float], ci: Sequence[Optional[Sequence[float]]], xlabel: str):
    """Protocol sensitivity: one bar per alternative (×100), the largest |Δ| on top, with the
    paired CI as whiskers where there is one."""
    order = np.argsort(-np.abs(np.asarray(deltas, float)), kind="stable")[::-1]
    fig, ax = plt.subplots(figsize=(7.2, _bar_height(len(labels))))
    y = np.arange(len(labels))
    vals = np.asarray(deltas, float)[order] * 100
    lo = np.array([100 * ci[i][0] if ci[i] else v for v, i in zip(vals, order)])
    hi = np.array([100 * ci[i][1] if ci[i] else v for v, i in zip(vals, order)])
    _signed_bars(ax, y, vals, lo, hi, "95% CI (paired cluster bootstrap over images)", min_span=0.1, digits=2,
                 margin=1.3)
    ax.set_yticks(y, [labels[i] for i in order])
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    _legend_above(ax, ncol=1)
    return fig


@styled
def miou_vs_points(curves: list[dict], n_points: Sequence[int]):
    """mIoU (×100) against the number of points, center and random first point (Fig. 9c/9d).

    ``curves``: dicts with ``label``, ``center`` / ``random`` (lists of values per n, None where
    a value is not available, e.g. a metric the model cannot be scored on; or None),
    ``center_oracle`` / ``random_oracle`` (value at 1 point, or None), and ``bold`` / ``dashed``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    xs = np.arange(len(n_points))
    for ax, mode, title in zip(axes, ("center", "random"), ("center first point", "random first point")):
        for k, curve in enumerate(curves):
            drawn = [(x, v) for x, v in zip(xs, curve.get(mode) or []) if v is not None]  # None: n/a
            if not drawn:
                continue
            color = "#111" if curve.get("bold") else PALETTE[k % len(PALETTE)]
            ax.plot([x for x, _ in drawn], [100 * v for _, v in drawn], marker="o", markersize=4, color=color,
                    linewidth=2.2 if curve.get("bold") else 1.3, linestyle="--" if curve.get("dashed") else "-",
                    label=curve["label"])
            if curve.get(f"{mode}_oracle") is not None:
                ax.scatter([0], [100 * curve[f"{mode}_oracle"]], s=40, facecolors="none", edgecolors=color,
                           linewidths=1.3, zorder=3)
        ax.set_xticks(xs, [str(n) for n in n_points])
        ax.set_title(title)
        ax.set_xlabel("number of points")
    axes[0].set_ylabel("mIoU")
    axes[0].set_ylim(bottom=0, top=100)
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
                              markeredgecolor="#555", label="oracle at 1 point"))
    # below both panels, so it never hides a curve
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 4),
               frameon=False)
    fig.tight_layout()
    return fig


@styled
def grouped_bars(groups: Sequence[str], series: list[tuple[str, Sequence[Optional[float]], bool]], ylabel: str):
    """Bars per group (e.g. AR@1000 by object size and frequency) for this run and published
    rows; ``series`` = (label, values ×1, is_reference). Reference series are hatched."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / max(len(series), 1)
    xs = np.arange(len(groups))
    for k, (label, values, is_ref) in enumerate(series):
        vals = [100 * v if v is not None else np.nan for v in values]
        ax.bar(xs + (k - (len(series) - 1) / 2) * width, vals, width * 0.95, label=label,
               color=PALETTE[k % len(PALETTE)], alpha=0.55 if is_ref else 1.0,
               hatch="//" if is_ref else None, edgecolor="white" if not is_ref else "#444", linewidth=0.5)
    ax.set_xticks(xs, groups)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(axis="x", visible=False)
    _legend_above(ax, ncol=min(len(series), 4))
    return fig
