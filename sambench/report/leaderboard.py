"""One ranked table across runs: a row per model/checkpoint, a column per headline metric and
dataset, with each row's provenance; written as CSV (fractions, for scripts), Markdown and HTML
(×100 like the paper).

Rows are only comparable when every run scored the same samples under the same task version
and protocol; otherwise the leaderboard is refused unless ``allow_mixed``, and then the
differences are written under the table.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from sambench.errors import SambenchError
from sambench.report.records import sample_digest
from sambench.report.tables import fmt_metric, is_number
from sambench.results import load_results, scored
from sambench.tasks import Metric, entry_metrics

PROVENANCE = ["runs", "run_ids", "created", "sambench", "device", "seed", "suite"]


@dataclass
class Column:
    id: str       # CSV header: task/metric/dataset, dataset "mean" for the unweighted mean
    task: str
    metric: str
    dataset: str
    label: str    # display header
    spec: Metric  # how the metric is shown and which way is better
    primary: bool = False  # the task's first headline metric (per-dataset columns, means)


@dataclass
class Leaderboard:
    rows: list[dict]         # model, checkpoint, sha256, values {column id: fraction}, provenance
    columns: list[Column]
    rank_by: str
    notes: list[str] = field(default_factory=list)

    def frame(self, display: bool = False) -> pd.DataFrame:
        """The table: fractions (CSV) or formatted ×100 strings (Markdown/HTML)."""
        out = []
        for rank, row in enumerate(self.rows, start=1):
            rec = {"rank": rank, "model": row["model"], "family": row["family"], "checkpoint": row["checkpoint"],
                   "sha256": row["sha256"]}
            for col in self.columns:
                value = row["values"].get(col.id)
                if display:
                    partial = col.id in row["partial"]
                    rec[col.label] = fmt_metric(col.spec, value) + ("*" if partial and is_number(value) else "")
                else:
                    rec[col.id] = value
            if not display:
                rec.update({k: row["provenance"][k] for k in PROVENANCE})
                rec["notes"] = "; ".join(row["notes"])
            out.append(rec)
        return pd.DataFrame(out)

    def provenance_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"rank": k, "model": r["model"], **r["provenance"]}
                             for k, r in enumerate(self.rows, start=1)])

    def markdown(self) -> str:
        text = _markdown(self.frame(display=True))
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text

    def to_json(self) -> dict:
        return {"rank_by": self.rank_by, "columns": [{**vars(c), "spec": c.spec.to_json()} for c in self.columns],
                "rows": [{k: v for k, v in r.items() if k != "partial"} for r in self.rows],
                "notes": self.notes}


def _markdown(frame: pd.DataFrame) -> str:
    """GitHub Markdown without the optional tabulate dependency."""
    from sambench.report.html import numeric_column

    cols = [str(c) for c in frame.columns]
    align = ["---:" if k > 0 and numeric_column(frame[c].astype(str)) else "---" for k, c in enumerate(frame.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _identity(results: dict) -> tuple:
    model = results["model"]
    return model["name"], model.get("sha256") or "", json.dumps(model.get("config") or {}, sort_keys=True)


def _comparability(runs: list[tuple[Path, dict]]) -> list[str]:
    """What differs between runs on the same task and dataset (empty when comparable).

    Sample lists are compared by their record files where both runs have records, so a
    results.json kept on its own still lines up by its image and mask counts."""
    seen: dict[tuple[str, str], list[tuple[Path, dict, Optional[str]]]] = {}
    for run_dir, results in runs:
        for e in results["results"]:
            if scored(e):
                seen.setdefault((e["task"], e["dataset"]), []).append(
                    (run_dir, e, sample_digest(run_dir, e["task"], e["dataset"])))
    checks = {"task version": lambda e: e["task_version"],
              "protocol": lambda e: json.dumps(e.get("protocol"), sort_keys=True),
              "images": lambda e: e.get("n_images"), "masks": lambda e: e.get("n_masks")}
    problems = []
    for (task, dataset), group in seen.items():
        differ = [name for name, get in checks.items() if len({get(e) for _, e, _ in group}) > 1]
        if len({d for _, _, d in group if d is not None}) > 1:
            differ.append("samples")
        if differ:
            problems.append(f"{task}/{dataset}: {', '.join(differ)} differ between runs "
                            f"({', '.join(str(r) for r, _, _ in group)})")
    coverage = {}
    for run_dir, results in runs:
        coverage.setdefault(_identity(results), set()).update(
            (e["task"], e["dataset"]) for e in results["results"] if scored(e))
    if len({frozenset(c) for c in coverage.values()}) > 1:
        union = set().union(*coverage.values())
        for ident, cov in coverage.items():
            if cov != union:
                missing = ", ".join(f"{t}/{d}" for t, d in sorted(union - cov))
                problems.append(f"{ident[0]}: no results for {missing}")
    return problems


def _columns(runs: list[tuple[Path, dict]]) -> list[Column]:
    """Per task: its headline metrics (as the entries declare them) averaged over datasets,
    and the first one per dataset; a task on one dataset gets each headline for it."""
    datasets: dict[str, list[str]] = {}
    headlines: dict[str, dict[str, Metric]] = {}
    for _, results in runs:
        for e in results["results"]:
            metrics = [m for m in entry_metrics(e) if m.headline]
            if scored(e) and metrics:
                names = datasets.setdefault(e["task"], [])
                if e["dataset"] not in names:
                    names.append(e["dataset"])
                for m in metrics:
                    headlines.setdefault(e["task"], {}).setdefault(m.name, m)
    cols = []
    for task, names in datasets.items():
        metrics = list(headlines[task].values())
        first = metrics[0]
        if len(names) > 1:
            cols += [Column(f"{task}/{m.name}/mean", task, m.name, "mean", f"{task} {m.label} · mean", m, m is first)
                     for m in metrics]
            cols += [Column(f"{task}/{first.name}/{d}", task, first.name, d, f"{first.label} · {d}", first, True)
                     for d in names]
        else:
            cols += [Column(f"{task}/{m.name}/{names[0]}", task, m.name, names[0], f"{task} {m.label} · {names[0]}",
                            m, m is first) for m in metrics]
    return cols


def build_leaderboard(run_dirs: list[Path], allow_mixed: bool = False, rank_by: Optional[str] = None) -> Leaderboard:
    if not run_dirs:
        raise SambenchError("leaderboard: give at least one run directory")
    runs = [(Path(d), load_results(d)) for d in run_dirs]
    problems = _comparability(runs)
    if problems and not allow_mixed:
        raise SambenchError("runs are not comparable (pass --allow-mixed to tabulate them anyway): "
                            + " | ".join(problems))
    columns = _columns(runs)
    rows: dict[tuple, dict] = {}
    for run_dir, results in runs:
        ident = _identity(results)
        model, run = results["model"], results["run"]
        row = rows.setdefault(ident, {
            "model": model["name"], "family": model.get("family") or "",
            "checkpoint": Path(str(model["checkpoint"])).name if model.get("checkpoint") else "",
            "sha256": (model.get("sha256") or "")[:12], "values": {}, "partial": set(), "notes": [],
            "entries": {}, "provenance": {k: [] for k in PROVENANCE}})
        for e in results["results"]:
            if not scored(e):
                continue
            key = (e["task"], e["dataset"])
            if key in row["entries"]:
                raise SambenchError(f"{model['name']} scored {e['task']}/{e['dataset']} in both "
                                    f"{row['entries'][key][0]} and {run_dir}; give one of them")
            row["entries"][key] = (run_dir, e)
        prov = row["provenance"]
        for k, v in (("runs", run_dir.name), ("run_ids", run.get("id")), ("created", run.get("created")),
                     ("sambench", f"{run.get('sambench_version')} ({(run.get('git_sha') or 'no git')[:8]})"),
                     ("device", f"{run.get('device')}/{run.get('dtype')}"), ("seed", run.get("seed")),
                     ("suite", (results.get("suite") or {}).get("name"))):
            if str(v) not in prov[k]:
                prov[k].append(str(v))
    for row in rows.values():
        row["provenance"] = {k: ", ".join(v) for k, v in row["provenance"].items()}
        for col in columns:
            if col.dataset != "mean":
                e = row["entries"].get((col.task, col.dataset))
                if e is not None and is_number(e[1]["metrics"].get(col.metric)):
                    row["values"][col.id] = e[1]["metrics"][col.metric]
                continue
            task_sets = [c.dataset for c in columns if c.task == col.task and c.dataset != "mean" and c.primary]
            values = [row["entries"][(col.task, d)][1]["metrics"].get(col.metric)
                      for d in task_sets if (col.task, d) in row["entries"]]
            values = [v for v in values if is_number(v)]
            if values:
                row["values"][col.id] = sum(values) / len(values)
                if len(values) < len(task_sets):
                    row["partial"].add(col.id)
                    note = f"{col.task} means over {len(values)} of {len(task_sets)} datasets"
                    if note not in row["notes"]:
                        row["notes"].append(note)
        del row["entries"]
    if not columns:
        raise SambenchError("leaderboard: the runs have no headline metrics (e.g. statistics alone)")
    key = rank_by or columns[0].id
    match = [c for c in columns if key in (c.id, c.label)]
    if not match:
        raise SambenchError(f"--rank-by {key!r}: no such column (columns: {', '.join(c.id for c in columns)})")
    by, sign = match[0], (-1 if match[0].spec.higher_is_better else 1)
    ordered = sorted(rows.values(), key=lambda r: (not is_number(r["values"].get(by.id)),
                                                   sign * (r["values"].get(by.id) or 0.0)))
    notes = [f"Ranked by {by.id} ({'higher' if sign < 0 else 'lower'} is better). Values ×100 (edges: "
             "fractions); means are unweighted over datasets."]
    if any(r["partial"] for r in ordered):
        notes.append("* mean over fewer datasets than other rows (not comparable).")
    notes += [f"Mixed (--allow-mixed): {p}" for p in problems]
    return Leaderboard(ordered, columns, by.id, notes)


def _html_table(board: Leaderboard) -> str:
    """The ranked table with a task header row; each column's best value in bold."""
    fixed = ["rank", "model", "family", "checkpoint", "sha256"]
    groups = [("", len(fixed))]
    for col in board.columns:
        if groups[-1][0] == col.task:
            groups[-1] = (col.task, groups[-1][1] + 1)
        else:
            groups.append((col.task, 1))
    best = {}
    for col in board.columns:
        values = [r["values"][col.id] for r in board.rows if is_number(r["values"].get(col.id))]
        best[col.id] = (max if col.spec.higher_is_better else min)(values) if len(values) > 1 else None
    esc = html.escape
    out = ['<div class="scroll"><table class="data"><thead><tr>']
    out += [f'<th colspan="{n}" style="text-align:center">{esc(t)}</th>' for t, n in groups]
    out.append("</tr><tr>" + "".join(f"<th>{c}</th>" for c in fixed))
    out += [f'<th class="num">{esc(c.label.split(" · ")[0].removeprefix(c.task + " "))}<br>'
            f'<small>{esc(c.dataset)}</small></th>' for c in board.columns]
    out.append("</tr></thead><tbody>")
    display = board.frame(display=True)
    for (_, shown), row in zip(display.iterrows(), board.rows):
        cells = [f"<td>{esc(str(shown[c]))}</td>" for c in fixed]
        for col in board.columns:
            text = esc(str(shown[col.label]))
            top = best[col.id] is not None and row["values"].get(col.id) == best[col.id]
            cells.append(f'<td class="num">{"<b>" + text + "</b>" if top else text}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def write_leaderboard(board: Leaderboard, out: Path) -> list[Path]:
    """Write leaderboard.csv, leaderboard.md and leaderboard.html into ``out``."""
    from sambench import __version__
    from sambench.report.html import template_env

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "leaderboard.csv", out / "leaderboard.md", out / "leaderboard.html"]
    board.frame().to_csv(paths[0], index=False)
    paths[1].write_text("# sambench leaderboard\n\n" + board.markdown() + "\n\n## Provenance\n\n"
                        + _markdown(board.provenance_frame()) + "\n")
    prov = board.provenance_frame().to_html(index=False, border=0, classes="data")
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    paths[2].write_text(template_env().get_template("leaderboard.html.j2").render(
        table=_html_table(board), provenance=f'<div class="scroll">{prov}</div>', notes=board.notes,
        subtitle=f"{len(board.rows)} models, ranked by {board.rank_by}", version=__version__, generated=generated))
    return paths
