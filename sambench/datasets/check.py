"""``sambench datasets check``: is a downloaded dataset what its card says?

Opens the folder with the card's format (a missing layout or malformed annotation file is
fatal), builds every sample, decodes every instance mask and every image, and compares the
counts with the card. Findings are ERROR (a file missing or broken: the affected samples
cannot be scored), MISMATCH (counts differ from the card), NOTE (annotations skipped by a
rule of the card, e.g. empty masks; counted, as in a run). Exit status: 0 clean, 1 usable
with errors or mismatches, 2 unusable.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sambench.datasets.base import BROKEN
from sambench.datasets.sampling import THRESHOLD, draw, prompted_ids
from sambench.errors import SambenchError

SHOW = 10  # examples printed per kind of finding


@dataclass
class CheckReport:
    name: str
    root: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (level, message)
    fatal: bool = False
    n_images: int = 0
    n_instances: int = 0
    n_masks: int = 0
    n_images_with_masks: int = 0
    n_skipped: int = 0  # annotations skipped by a rule (empty, too small, ...)

    def add(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    @property
    def exit_code(self) -> int:
        if self.fatal:
            return 2
        return 1 if any(level in ("ERROR", "MISMATCH") for level, _ in self.lines) else 0

    def text(self) -> str:
        verdict = {0: "OK: usable, matches the card", 1: "usable with problems (see above)",
                   2: "UNUSABLE"}[self.exit_code]
        body = [f"{level:8s} {message}" for level, message in self.lines]
        return "\n".join([f"dataset {self.name} at {self.root}"] + body + [f"result: {verdict}"])


def check(ref) -> CheckReport:
    """Check a :class:`~sambench.datasets.DatasetRef` (see module docstring)."""
    card = ref.card
    report = CheckReport(ref.name, str(ref.root))
    if not ref.root.exists():
        report.add("ERROR", f"folder not found: {ref.root}")
        report.fatal = True
        return report
    try:
        dataset = ref.open()
    except SambenchError as exc:
        report.add("ERROR", str(exc))
        report.fatal = True
        return report
    report.add("OK", f"layout ({card.format}): {len(dataset)} images indexed")
    problems: dict[str, list[str]] = defaultdict(list)
    for p in getattr(dataset, "problems", []):  # the same dataset-level problems a run counts
        problems[p["kind"]].append(p["detail"])
    usable = 0
    for sample in dataset:
        report.n_images += 1
        for p in sample.problems:
            problems[p["kind"]].append(f"{sample.id}: {p['detail']}")
        try:
            if not any(p["kind"] == "bad_image_size" for p in sample.problems):  # never decoded
                sample.load_image()
                usable += 1
        except SambenchError as exc:
            problems["image"].append(f"{sample.id}: {exc}")
        for inst in sample.instances:
            try:
                inst.mask()
            except Exception as exc:  # pycocotools raises bare errors for corrupt RLE
                problems["undecodable_mask"].append(f"{sample.id}/{inst.id}: {exc}")
        n_prompted = len(prompted_ids(sample))
        report.n_instances += len(sample.instances)
        report.n_masks += n_prompted
        report.n_images_with_masks += n_prompted > 0
        report.n_skipped += sum(p["kind"] not in BROKEN for p in sample.problems)
    for kind, items in sorted(problems.items()):
        level = "ERROR" if kind in BROKEN or kind in ("image", "undecodable_mask") else "NOTE"
        shown = "; ".join(items[:SHOW]) + (f"; ... and {len(items) - SHOW} more" if len(items) > SHOW else "")
        report.add(level, f"{kind} ({len(items)}): {shown}")
    report.add("OK", f"decoded {report.n_images} images, {report.n_instances} instances "
               f"({report.n_masks} prompted masks)")
    if usable == 0:
        report.add("ERROR", "no sample could be read")
        report.fatal = True
        return report
    _compare_counts(report, card, dataset)
    return report


def _compare_counts(report: CheckReport, card, dataset) -> None:
    """Compare with the card: whole-split counts when the paper used the split whole (or the
    card is not a Table 7 dataset), the >15k rule's verdict when it subsampled."""
    expected = card.expected
    if "annotations" in expected:
        _compare(report, "annotations", report.n_instances + report.n_skipped, expected["annotations"], "the card")
    if card.subsample is None:
        _compare(report, "images", report.n_images, expected.get("images"), "the card")
        _compare(report, "prompted masks", report.n_masks, expected.get("masks"), "the card")
        return
    if report.n_masks > THRESHOLD:
        drawn = draw(dataset, card.name, seed=0)
        report.add("OK", f"{report.n_masks} masks > {THRESHOLD}: subsampled by the paper's rule "
                   f"(seed 0 draws {len(drawn.images)} images, {drawn.n_masks} masks; Table 7: "
                   f"{expected.get('images')} images, {expected.get('masks')} masks)")
        if card.subsample is False:
            report.add("MISMATCH", f"the card expects the whole split to be used ({expected.get('masks')} "
                       f"masks) but found {report.n_masks} masks")
        return
    if card.subsample:
        report.add("MISMATCH", f"the card expects more than {THRESHOLD} masks (the paper subsampled "
                   f"to {expected.get('masks')}) but found only {report.n_masks}")
    _compare(report, "images with masks", report.n_images_with_masks, expected.get("images"), "Table 7")
    _compare(report, "prompted masks", report.n_masks, expected.get("masks"), "Table 7")


def _compare(report: CheckReport, what: str, found: int, expected, source: str) -> None:
    if expected is None:
        return
    if found == expected:
        report.add("OK", f"{what}: {found}, as {source} says")
    else:
        report.add("MISMATCH", f"{what}: found {found}, {source} expects {expected} "
                   f"({found - expected:+d})")
