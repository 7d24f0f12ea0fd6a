"""Report section of the concept task (SA-Co, SAM 3): per dataset and route, cgF1 and its two
factors, positive micro-F1 (how well the instances are found) and IL_MCC (whether the model
knows that the phrase is present), with the image-level counts behind IL_MCC."""
from __future__ import annotations

import pandas as pd

from sambench.report import reference
from sambench.report.sections import ReportContext, Section
from sambench.report.tables import fmt, is_number
from sambench.results import scored

ROUTES = [("", "concept path"), ("text_", "text path (one mask)"), ("det_", "detector boxes")]


def _published_means(entries: list[dict]) -> list[dict]:
    """This run's unweighted mean over a published benchmark's subsets (e.g. SA-Co/Gold's
    seven), followed by the published rows, when the run scored at least one subset."""
    rows = []
    names = [e["dataset"] for e in entries]
    for ref, present in reference.aggregate_refs("concept", names):
        values = [e["metrics"].get("cgf1") for e in entries if e["dataset"] in present]
        values = [v for v in values if is_number(v)]
        rows.append({"dataset": f"mean of {len(present)} of {len(ref['datasets'])} ({ref['id']})",
                     "route": "concept path", "cgF1": fmt(sum(values) / len(values)) if values else ""})
        rows += [{"dataset": f"published: {r['model']}", "route": "", "cgF1": fmt(r.get("cgf1")), "_kind": "ref"}
                 for r in ref["rows"]]
    return rows


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    main, breakdown = [], []
    for entry in entries:
        m = entry.get("metrics", {})
        if not scored(entry):
            main.append({"dataset": entry["dataset"], "route": entry["status"]})
            continue
        for prefix, label in ROUTES:
            if f"{prefix}pairs" not in m:
                continue
            main.append({"dataset": entry["dataset"], "route": label, "pairs": m[f"{prefix}pairs"],
                         "cgF1": fmt(m.get(f"{prefix}cgf1")), "cgF1@0.5": fmt(m.get(f"{prefix}cgf1@0.5")),
                         "cgF1@0.75": fmt(m.get(f"{prefix}cgf1@0.75")), "IL_MCC": fmt(m.get(f"{prefix}il_mcc")),
                         "pmF1": fmt(m.get(f"{prefix}pmf1"))})
            breakdown.append({"dataset": entry["dataset"], "route": label,
                              **{k.upper(): m.get(f"{prefix}il_{k}", "") for k in ("tp", "fp", "tn", "fn")},
                              "IL_F1": fmt(m.get(f"{prefix}il_f1")), "IL_FPR": fmt(m.get(f"{prefix}il_fpr")),
                              "precision": fmt(m.get(f"{prefix}precision")), "recall": fmt(m.get(f"{prefix}recall")),
                              "pos. macro-F1": fmt(m.get(f"{prefix}positive_macro_f1")),
                              "oracle choice": " / ".join(map(str, m.get(f"{prefix}oracle_choice") or []))})
    main += _published_means([e for e in entries if scored(e)])
    sec = Section("Concept segmentation", task)
    sec.table(pd.DataFrame(main).fillna(""),
              "×100 over exhaustively annotated (image, noun phrase) pairs. cgF1 = positive micro-F1 (pmF1: "
              "instances matched one to one at IoU ≥ t, mean over t = 0.50:0.05:0.95) × IL_MCC (Matthews' "
              "correlation of 'the phrase is present' against 'the model predicted something' over all pairs); "
              "predictions scored below 0.5 do not count (SA-Co's rule, SAM 3's evaluator). Published rows "
              "are means over a benchmark's subsets, shown beside this run's mean over the subsets it scored.")
    if breakdown:
        sec.table(pd.DataFrame(breakdown).fillna(""),
                  "Image level: TP (instances present, predicted), FP (absent, predicted), TN (absent, none), FN "
                  "(present, none); IL_FPR = FP / (FP + TN). Precision / recall / positive macro-F1 over IoU "
                  "0.50:0.95, ×100. Oracle choice: pairs scored against each annotator's set (the most favourable).")
    return [sec]
