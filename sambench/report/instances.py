"""Report sections of the instances tasks (COCO / LVIS, SAM §7.4): mask AP with the paper's
Table 5 rows for detector boxes (task ``instances``), and mIoU by object size for ground-truth
box prompts (task ``instances-gtbox``, or ``instances`` run with ``prompt: gt-box``)."""
from __future__ import annotations

from sambench.report.sections import ReportContext, Section
from sambench.report.tables import fmt_ci, task_metrics, task_table

GT_PROMPTS = {"gtbox_": "box", "gtbox+point_": "box + centre point"}


def sections(ctx: ReportContext, task: str) -> list[Section]:
    entries = ctx.entries(task, present=False)
    if not entries:
        return []
    metrics = task_metrics(ctx.results, task)
    gtbox = any(m.name.startswith("gtbox") for m in metrics)
    sec = Section("Instance segmentation" + (" from ground-truth boxes" if gtbox else ""), task)
    boxed = [e for e in entries if "ap" in e.get("metrics", {})]
    if boxed or not any(k.startswith("gtbox") for e in entries for k in e.get("metrics", {})):
        frame, sources = task_table(boxed or entries, [m for m in metrics if not m.name.startswith("gtbox")],
                                    "instances")
        sec.table(frame, "Mask AP ×100 (APr/c/f: LVIS frequency groups)."
                         + "".join(f" Published rows: {s}." for s in sources))
    for prefix, prompt in GT_PROMPTS.items():
        scored = [e for e in entries if f"{prefix}miou" in e.get("metrics", {})]
        declared = [m for m in metrics if m.name.startswith(prefix)]
        if scored and declared:
            frame, _ = task_table(scored, declared, "instances")
            frame.insert(3, "CI95", [fmt_ci(e["metrics"].get(f"{prefix}miou_ci95")) for e in scored])
            sec.table(frame, f"Ground-truth {prompt} prompts: mIoU ×100 overall (95% bootstrap CI over "
                             "masks) and by COCO object size.")
    return [sec]
