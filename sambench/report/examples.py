"""Qualitative examples of the point task: for each dataset, the worst, median and best masks
at 1 center point and a few random ones, drawn as image + ground truth, the prediction at 1
point and at the last point, with the clicks.

Predictions come from the records (the point task keeps the predicted mask RLE at 1 and at the
last point), so the report needs the images but never the model. Images and ground truth are
read again from the dataset folder the run recorded (or ``--data-root``); when it is gone the
section says so instead of failing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba

from sambench import masks as mask_codec
from sambench.errors import SambenchError
from sambench.report.figures import PALETTE, plt, styled
from sambench.report.records import point_frame
from sambench.report.sections import ReportContext, Section

N_RANDOM = 2
GT_COLOR, PRED_COLOR = "#35b05a", PALETTE[0]


def choose_examples(first: pd.Series, seed: int, n_random: int = N_RANDOM) -> list[tuple[str, tuple]]:
    """(label, (sample, mask)) for the worst, median and best IoU and ``n_random`` others."""
    ranked = first.sort_values(kind="stable")
    picks = [("worst", ranked.index[0]), ("median", ranked.index[len(ranked) // 2]), ("best", ranked.index[-1])]
    rest = [k for k in ranked.index if k not in {p[1] for p in picks}]
    rng = np.random.default_rng(seed)
    for i in sorted(rng.choice(len(rest), size=min(n_random, len(rest)), replace=False)):
        picks.append(("random", rest[i]))
    seen, out = set(), []
    for label, key in picks:  # tiny datasets: worst/median/best may coincide
        if key not in seen:
            seen.add(key)
            out.append((label, key))
    return out


def open_dataset(entry: dict, data_root: Optional[str]):
    """The run's dataset, from --data-root (if given) or the folder the run recorded."""
    from sambench import datasets

    name, root = entry["dataset"], entry.get("root")
    cards = datasets.load_cards()
    if data_root and name in cards:
        return datasets.resolve(name, data_root).open()
    if root:
        if not Path(root).exists():
            raise SambenchError(f"dataset folder {root} not found (report --data-root DIR if it moved)")
        return datasets.resolve(f"{name}={root}" if name in cards else root).open()
    return datasets.resolve(name, data_root).open()


def _find_samples(dataset, wanted: set[str]) -> dict:
    """The wanted samples by id: directly from a COCO-style dataset, else by one pass."""
    if hasattr(dataset, "images") and hasattr(dataset, "sample"):
        keys = {str(k): k for k in dataset.images}
        return {i: dataset.sample(keys[i]) for i in wanted if i in keys}
    found = {}
    for sample in dataset:
        if sample.id in wanted:
            found[sample.id] = sample
            if len(found) == len(wanted):
                break
    return found


def _crop_box(masks: list[np.ndarray], points: list, shape) -> tuple[int, int, int, int]:
    """A square-ish window around the masks and clicks (small objects stay visible)."""
    h, w = shape
    ys, xs = [], []
    for m in masks:
        yy, xx = np.nonzero(m)
        ys += [yy.min(), yy.max()] if len(yy) else []
        xs += [xx.min(), xx.max()] if len(xx) else []
    for p in points:
        xs.append(p[0])
        ys.append(p[1])
    if not xs:
        return 0, 0, w, h
    side = max(max(xs) - min(xs), max(ys) - min(ys), 48) * 1.4
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return x0, y0, int(min(w, cx + side / 2 + 1)), int(min(h, cy + side / 2 + 1))


def _overlay(ax, image, mask, color, points, box, title):
    x0, y0, x1, y1 = box
    ax.imshow(image[y0:y1, x0:x1], interpolation="nearest")
    if mask is not None:
        crop = mask[y0:y1, x0:x1]
        rgba = np.zeros(crop.shape + (4,))
        rgba[crop] = to_rgba(color, 0.45)
        ax.imshow(rgba, interpolation="nearest")
        if crop.any() and not crop.all():  # a white halo keeps the outline visible on any image
            ax.contour(crop, levels=[0.5], colors=["white"], linewidths=2.4)
            ax.contour(crop, levels=[0.5], colors=[color], linewidths=1.2)
    for k, (x, y, label) in enumerate(points):
        last = k == len(points) - 1
        ax.scatter([x - x0], [y - y0], s=60 if last else 30, marker="o" if label == 1 else "X",
                   c="#2ecc40" if label == 1 else "#ff4136", edgecolors="white", linewidths=1.0, zorder=3)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


@styled
def examples_figure(panels: list[dict], last_step: int):
    """3 rows (ground truth, prediction at 1 point, at ``last_step`` points) × one column per example."""
    fig, axes = plt.subplots(3, len(panels), figsize=(2.1 * len(panels) + 0.4, 6.6), squeeze=False)
    for col, p in enumerate(panels):
        box = _crop_box([p["gt"], p["pred1"], p["predN"]], p["points"], p["gt"].shape)
        _overlay(axes[0, col], p["image"], p["gt"], GT_COLOR, [], box, f"{p['label']}\nground truth")
        _overlay(axes[1, col], p["image"], p["pred1"], PRED_COLOR, p["points"][:1], box,
                 f"1 point: IoU {p['iou1']:.2f}")
        _overlay(axes[2, col], p["image"], p["predN"], PRED_COLOR, p["points"], box,
                 f"{last_step} points: IoU {p['iouN']:.2f}")
    fig.tight_layout(pad=0.4)
    return fig


def examples_section(ctx: ReportContext, task: str) -> Optional[Section]:
    entries = ctx.entries(task)
    if not entries:
        return None
    sec = Section("Point task: qualitative examples", f"{task}-examples")
    sec.note("Per dataset: the worst, median and best masks by IoU at 1 center point, and "
             f"{N_RANDOM} masks at random. Green: ground truth; blue: prediction; dots: positive clicks, "
             "crosses: negative clicks (the last one larger). Crops centred on the object.")
    for entry in entries:
        try:
            panels, last = _panels(ctx, entry, task)
        except SambenchError as exc:
            sec.note(f"{entry['dataset']}: no examples: {exc}")
            continue
        if panels:
            sec.figure(examples_figure(panels, last), f"{entry['dataset']}: examples at 1 center point and "
                                                      f"after {last} points.")
    return sec


def _panels(ctx: ReportContext, entry: dict, task: str) -> tuple[list[dict], int]:
    frame = point_frame(ctx.run_dir, entry["dataset"], task)
    center = frame[frame["mode"] == "center"]
    if center.empty:
        return [], 0
    last = int(center["step"].max())
    first = center[center["step"] == 1].set_index(["sample", "mask"])
    final = center[center["step"] == last].set_index(["sample", "mask"])
    if first["pred"].isna().all():
        raise SambenchError("the records hold no predicted masks (run made before the point task "
                            "saved them, or with save_masks: false)")
    picks = choose_examples(first["iou"].astype(float), ctx.seed)
    samples = _find_samples(open_dataset(entry, ctx.data_root), {s for _, (s, _) in picks})
    steps = center.set_index(["sample", "mask"]).sort_values("step")
    panels = []
    for label, key in picks:
        sample = samples.get(key[0])
        if sample is None:
            raise SambenchError(f"sample {key[0]} is no longer in the dataset at {entry.get('root')}")
        gt = next((inst.mask() for inst in sample.instances if str(inst.id) == key[1]), None)
        if gt is None:
            raise SambenchError(f"mask {key[1]} of sample {key[0]} is no longer in the dataset")
        points = [tuple(p) for p in steps.loc[[key], "point"] if p is not None]
        panels.append({"label": f"{label} ({key[0]}/{key[1]})"[:34], "image": sample.load_image(), "gt": gt,
                       "pred1": mask_codec.decode(first.loc[key, "pred"]),
                       "predN": mask_codec.decode(final.loc[key, "pred"]),
                       "iou1": float(first.loc[key, "iou"]), "iouN": float(final.loc[key, "iou"]),
                       "points": points})
    return panels, last
