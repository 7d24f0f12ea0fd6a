"""Report section of the text task (SAM §7.5, measured): per dataset and prompt mode, mIoU,
cIoU and precision@t ×100, with the chance level (a random object's mask of the same image)
on its own row so every number reads against it; for mode text also cgF1, IL_MCC and pmF1
over (image, phrase) pairs with absent phrases."""
from __future__ import annotations

import pandas as pd

from sambench.report.sections import ReportContext, Section
from sambench.report.tables import fmt, fmt_ci
from sambench.results import scored

MODES = [("text_", "text"), ("text+point_", "text + centre point"), ("det_", "detector box"),
         ("det+point_", "detector box + centre point"), ("chance_", "chance (random object)")]


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    rows = []
    for entry in entries:
        m = entry.get("metrics", {})
        if not scored(entry):
            rows.append({"dataset": entry["dataset"], "prompt": entry["status"]})
            continue
        for prefix, label in MODES:
            if f"{prefix}miou" not in m:
                continue
            row = {"dataset": entry["dataset"], "prompt": label, "objects": entry.get("n_masks", ""),
                   "mIoU": fmt(m[f"{prefix}miou"]), "CI95": fmt_ci(m.get(f"{prefix}miou_ci95")),
                   "cIoU": fmt(m.get(f"{prefix}ciou"))}
            for key in sorted(k for k in m if k.startswith(f"{prefix}p@")):
                row[f"P@{key.split('@', 1)[1]}"] = fmt(m[key])
            if prefix.startswith("det") and "det_coverage" in m:
                row["boxes"] = fmt(m["det_coverage"])
            if f"{prefix}pairs" in m:  # mode text seen as concept segmentation
                row.update({"pairs": m[f"{prefix}pairs"], "cgF1": fmt(m.get(f"{prefix}cgf1")),
                            "IL_MCC": fmt(m.get(f"{prefix}il_mcc")), "pmF1": fmt(m.get(f"{prefix}pmf1"))})
            rows.append(row)
    sec = Section("Text to mask", task)
    sec.table(pd.DataFrame(rows).fillna(""),
              "×100 over (object, phrase) units: mIoU (95% bootstrap CI), cIoU = Σ intersection / Σ union, "
              "P@t = share of units with IoU ≥ t; \"boxes\": share of units the detector gave a box "
              "(the rest count as IoU 0). Chance: a random object's mask of the same image. cgF1 (mode text): "
              "the same prompts plus phrases absent from the image, over (image, phrase) pairs, as concept "
              "segmentation scores them (positive micro-F1 × IL_MCC, docs/concepts.md).")
    return [sec]
