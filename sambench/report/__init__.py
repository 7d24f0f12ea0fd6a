"""The self-contained HTML report of a run directory (inline CSS, figures as data URIs)."""
from __future__ import annotations

import html
from pathlib import Path

import jinja2

from sambench.report import figures, tables
from sambench.resources import asset_dir
from sambench.results import load_results


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(asset_dir("reports") / "templates")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    point = tables.point_table(results)
    context = {
        "results": results,
        "point_table": None if point.empty else point.to_html(
            index=False, float_format=lambda v: f"{v:.1f}", na_rep="", classes="table", border=0),
        "point_figure": figures.miou_vs_points(results),
        "problems": [(f"{e['task']}/{e['dataset']}", e["counts"]) for e in results["results"] if e.get("counts")],
        "escape": html.escape,
    }
    path = run_dir / "report.html"
    path.write_text(env.get_template("report.html.j2").render(**context))
    return path
