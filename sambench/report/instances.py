"""Report sections of the instances tasks (COCO / LVIS, SAM §7.4): mask AP with the paper's
Table 5 rows for detector boxes (task ``instances``), and mIoU by object size for ground-truth
box prompts (task ``instances-gtbox``, or ``instances`` run with ``prompt: gt-box``)."""
from __future__ import annotations

from typing import Optional

from sambench.report.sections import ReportContext, Section, section
from sambench.report.tables import fmt_ci, task_table

AP = [("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("ap_small", "APs"), ("ap_medium", "APm"),
      ("ap_large", "APl"), ("ap_rare", "APr"), ("ap_common", "APc"), ("ap_frequent", "APf")]
GT_PROMPTS = {"gtbox_": "box", "gtbox+point_": "box + centre point"}


def _gtbox_metrics(prefix: str) -> list[tuple[str, str]]:
    return [(f"{prefix}miou", "mIoU"), (f"{prefix}miou_small", "small"), (f"{prefix}miou_medium", "medium"),
            (f"{prefix}miou_large", "large")]


def instances_sections(task: str, title: str):
    def build(ctx: ReportContext) -> Optional[Section]:
        entries = ctx.entries(task, present=False)
        if not entries:
            return None
        sec = Section(title, task)
        boxed = [e for e in entries if "ap" in e.get("metrics", {})]
        if boxed or not any(k.startswith("gtbox") for e in entries for k in e.get("metrics", {})):
            frame, sources = task_table("instances", boxed or entries, AP)
            sec.table(frame, "Mask AP ×100 (APr/c/f: LVIS frequency groups)."
                             + "".join(f" Published rows: {s}." for s in sources))
        for prefix, prompt in GT_PROMPTS.items():
            scored = [e for e in entries if f"{prefix}miou" in e.get("metrics", {})]
            if scored:
                frame, _ = task_table(task, scored, _gtbox_metrics(prefix))
                frame.insert(3, "CI95", [fmt_ci(e["metrics"].get(f"{prefix}miou_ci95")) for e in scored])
                sec.table(frame, f"Ground-truth {prompt} prompts: mIoU ×100 overall (95% bootstrap CI over "
                                 "masks) and by COCO object size.")
        return sec

    return build


section("instances")(instances_sections("instances", "Instance segmentation"))
section("instances-gtbox")(instances_sections("instances-gtbox", "Instance segmentation from ground-truth boxes"))
