"""Report sections of the point task: per-dataset table with CIs and published SA-23 rows,
the Fig. 9a-style per-dataset chart, mIoU against the number of points (Fig. 9c/9d), and the
paired comparison with other runs (``--compare``)."""
from __future__ import annotations

from typing import Optional

import pandas as pd

from sambench.report import figures, reference
from sambench.report.compare import compare_runs, run_label
from sambench.report.sections import ReportContext, Section
from sambench.report.tables import fmt, fmt_ci, fmt_metric, is_number, unsupported_by_reason
from sambench.results import scored
from sambench.tasks import entry_metrics
from sambench.tasks.point import METRIC_PREFIX, metric_name

PROTOCOL_NOTE = (
    "mIoU ×100 over masks. First point at the mask center (deepest interior point) or uniformly at "
    "random; later points by the RITM error rule. At 1 point the most confident of 3 masks is scored; "
    "the oracle scores the best of the 3. CI95: bootstrap over images (the masks of an image resampled together). The mean row is unweighted over "
    "datasets, like the paper's headline. NoC@85/90: mean clicks to reach 85% / 90% IoU (capped at "
    "the clicks run).")

NA = "n/a*"  # a metric the model cannot be scored on (results entry ``unsupported_metrics``)


def unsupported_note(entries: list[dict]) -> Optional[str]:
    """The footnote of the ``n/a*`` cells: which metrics, and why."""
    reasons = unsupported_by_reason(entries)
    if not reasons:
        return None
    return ("* n/a: not scored for this model, never computed on a shortened protocol: "
            + "; ".join(f"{', '.join(names)}: {why}" for why, names in reasons.items()) + ".")


def _table(entries: list[dict]) -> pd.DataFrame:
    """Every metric the entries declare, the CI at 1 point of each first-point mode, and the
    unweighted mean over the present datasets."""
    metrics = list({m.name: m for e in entries for m in entry_metrics(e)}.values())
    with_ci = {metric_name(mode, 1) for mode in METRIC_PREFIX}
    present = [e for e in entries if scored(e)]
    rows = []
    for entry in entries:
        m = entry.get("metrics", {})
        na = entry.get("unsupported_metrics") or {}
        row = {"dataset": entry["dataset"], "images": entry.get("n_images", ""), "masks": entry.get("n_masks", "")}
        for metric in metrics:
            row[metric.label] = NA if metric.name in na else fmt_metric(metric, m.get(metric.name))
            if metric.name in with_ci and f"{metric.name}_ci95" in m:
                row[f"{metric.label} CI95"] = fmt_ci(m[f"{metric.name}_ci95"])
        if not scored(entry):
            row["images"], row["masks"] = "", ""
            row[metrics[0].label if metrics else "status"] = entry["status"]
        rows.append(row)
    if len(present) > 1:
        mean = {"dataset": f"mean ({len(present)} datasets)",
                "images": sum(e["n_images"] for e in present), "masks": sum(e["n_masks"] for e in present),
                "_kind": "mean"}
        for metric in metrics:
            values = [e["metrics"].get(metric.name) for e in present]
            if any(metric.name in (e.get("unsupported_metrics") or {}) for e in present):
                mean[metric.label] = NA
            elif all(is_number(v) for v in values):
                mean[metric.label] = fmt_metric(metric, sum(values) / len(values))
        rows.append(mean)
    frame = pd.DataFrame(rows).fillna("")
    return frame.loc[:, [c for c in frame.columns if c == "_kind" or (frame[c] != "").any()]]


def _reference_table(present: list[dict]) -> Optional[tuple[pd.DataFrame, str]]:
    """The run's mean over the SA-23 datasets it has beside every published SA-23 mean."""
    names = [e["dataset"] for e in present]
    matches = reference.aggregate_refs("point", names)
    if not matches:
        return None
    suite, members = matches[0][0]["datasets"], matches[0][1]
    runs = [e for e in present if e["dataset"] in members]
    row = {"": f"this run: mean over {len(members)} of {len(suite)} SA-23 datasets", "_kind": "run"}
    for metric in ("miou@1", "miou@5"):
        vals = [e["metrics"].get(metric) for e in runs]
        row[f"mIoU {metric[-1]} pt"] = fmt(sum(vals) / len(vals)) if all(is_number(v) for v in vals) else ""
    rows = [row] + [{"": f"published: {r['model']}", "mIoU 1 pt": fmt(r.get("miou@1")),
                     "mIoU 5 pt": fmt(r.get("miou@5")), "_kind": "ref"} for ref, _ in matches for r in ref["rows"]]
    caption = "Published reference: " + "; ".join(ref["source"] for ref, _ in matches) + "."
    if len(members) < len(suite):
        caption += " The run covers only part of the suite, so its mean is not directly comparable."
    return pd.DataFrame(rows), caption


def _curve(entries: list[dict], label: str, n_points: list[int], **style) -> dict:
    """The unweighted mean over datasets per number of points (or one dataset's values)."""
    curve = {"label": label, **style}
    for mode in METRIC_PREFIX:
        per_n = [[e["metrics"].get(metric_name(mode, n)) for e in entries] for n in n_points]
        means = [sum(vals) / len(vals) if all(is_number(v) for v in vals) else None for vals in per_n]
        if any(m is not None for m in means):  # None: not scored (e.g. unsupported_metrics)
            curve[mode] = means
        oracle = [e["metrics"].get(metric_name(mode, 1, oracle=True)) for e in entries]
        if all(is_number(v) for v in oracle):
            curve[f"{mode}_oracle"] = sum(oracle) / len(oracle)
    return curve


def sections(ctx: ReportContext, task: str) -> list[Optional[Section]]:
    from sambench.report.examples import examples_section

    return [point_section(ctx, task), point_compare_section(ctx, task), examples_section(ctx, task)]


def point_section(ctx: ReportContext, task: str) -> Optional[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return None
    sec = Section("Point task: single-point valid mask", task)
    sec.note(PROTOCOL_NOTE)
    sec.table(_table(entries), "Per-dataset mIoU (×100) with 95% CIs; NoC: mean clicks.")
    note = unsupported_note(entries)
    if note:
        sec.note(note)
    present = ctx.entries(task)
    ref = _reference_table(present)
    if ref is not None:
        sec.table(*ref)
    one, oracle = metric_name("center", 1), metric_name("center", 1, oracle=True)
    with_miou = [e for e in present if is_number(e["metrics"].get(one))]
    if not with_miou:
        return sec
    sec.figure(figures.per_dataset_bars([e["dataset"] for e in with_miou],
                                        [e["metrics"][one] for e in with_miou],
                                        [e["metrics"].get(f"{one}_ci95") for e in with_miou],
                                        [e["metrics"].get(oracle) for e in with_miou],
                                        "mIoU, 1 center point"),
               "Per-dataset mIoU at 1 center point, sorted (cf. paper Fig. 9a); bars: 95% bootstrap CI; "
               "circles: oracle (best of the 3 output masks).")
    n_points = with_miou[0]["protocol"]["n_points"]
    curves = []
    if not ctx.others and len(with_miou) <= 8:
        curves += [_curve([e], e["dataset"], n_points) for e in with_miou]
    if len(with_miou) > 1 or ctx.others:
        curves.append(_curve(with_miou, f"mean ({len(with_miou)} datasets)" if not ctx.others
                             else run_label(ctx.results, ctx.run_dir), n_points, bold=True))
    for other_dir, other in ctx.others:
        others = [e for e in other["results"] if e["task"] == task and scored(e)
                  and e["dataset"] in {s["dataset"] for s in with_miou}]
        if others:
            curves.append(_curve(others, run_label(other, other_dir), n_points, dashed=True))
    sec.figure(figures.miou_vs_points(curves, n_points),
               "mIoU against number of points, center and random first point (cf. paper Fig. 9c/9d)"
               + ("; means over the datasets of each run." if ctx.others else "."))
    return sec


def point_compare_section(ctx: ReportContext, task: str) -> Optional[Section]:
    """Paired comparison with each ``--compare`` run on the same masks."""
    if not ctx.others or not ctx.entries(task):
        return None
    sec = Section("Point task: paired comparison", f"{task}-compare")
    sec.note("Δ = this run − the other run, mIoU ×100 at 1 center point on identical prompts (same masks, "
             "same first point). CI95: paired bootstrap over images (stratified by dataset for the mean); "
             "p: two-sided sign test over masks (over datasets for the mean row), ties dropped.")
    paper = reference.delta_ref("point", "miou@1")
    for other_dir, _ in ctx.others:
        result = compare_runs(ctx.run_dir, other_dir, "miou@1", task)
        rows = []
        for r in result["datasets"]:
            rows.append({"dataset": r["dataset"], "masks": r["n_masks"], "this": fmt(r["a"]), "other": fmt(r["b"]),
                         "Δ": f"{100 * r['delta']:+.1f}", "Δ CI95": fmt_ci(r["delta_ci95"], signed=True),
                         "wins / losses": f"{r['wins']} / {r['losses']}", "p (sign)": f"{r['p_sign']:.2g}",
                         "paper Δ SAM−RITM": fmt(paper["values"].get(r["dataset"])) if paper else ""})
        m = result["mean"]
        rows.append({"dataset": f"mean ({m['n_datasets']} datasets)", "masks": "", "this": fmt(m["a"]),
                     "other": fmt(m["b"]), "Δ": f"{100 * m['delta']:+.1f}", "Δ CI95": fmt_ci(m["delta_ci95"], signed=True),
                     "wins / losses": f"{m['datasets_better']} / {m['datasets_worse']} datasets",
                     "p (sign)": f"{m['p_sign_datasets']:.2g}", "paper Δ SAM−RITM": "", "_kind": "mean"})
        frame = pd.DataFrame(rows)
        if not (frame["paper Δ SAM−RITM"] != "").any():
            frame = frame.drop(columns="paper Δ SAM−RITM")
        sec.table(frame, f"This run: {result['a']['label']}; other: {result['b']['label']}."
                  + (f" Paper Δ: {paper['source']}, for orientation only." if "paper Δ SAM−RITM" in frame else ""))
        names = [r["dataset"] for r in result["datasets"]]
        sec.figure(figures.delta_bars(names, [r["delta"] for r in result["datasets"]],
                                      [r["delta_ci95"] for r in result["datasets"]],
                                      f"Δ mIoU, 1 center point: {result['a']['label']} − {result['b']['label']}",
                                      reference=paper["values"] if paper else None,
                                      reference_label="paper Fig. 9a: SAM − RITM"),
                   "Per-dataset Δ mIoU at 1 center point, sorted like the paper's Fig. 9a; whiskers: paired "
                   "bootstrap 95% CI.")
    return sec
