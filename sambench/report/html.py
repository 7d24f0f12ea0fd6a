"""Sections → one self-contained HTML file (inline CSS, figures as PNG data URIs, no scripts),
so a report opens offline and survives being mailed around."""
from __future__ import annotations

import datetime as _dt
import html
import re
from pathlib import Path

import jinja2

from sambench.report.figures import data_uri
from sambench.report.sections import Figure, Note, Section, Table
from sambench.resources import asset_dir

NUMERIC = re.compile(r"^[+\-−]?\d+(\.\d+)?([eE][+\-]?\d+)?\*?$")  # "41.1", "+7.6", "1.2e-07", "55.0*"


def template_env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(asset_dir("reports") / "templates")),
                              autoescape=jinja2.select_autoescape(["html", "j2"]))


def numeric_column(values) -> bool:
    texts = [str(v) for v in values if v not in (None, "")]
    return bool(texts) and all(NUMERIC.match(t) for t in texts)


def table_html(table: Table) -> str:
    """A table of pre-formatted cells: numeric columns right-aligned, CI columns muted, rows
    classed by ``_kind`` (mean, published reference)."""
    frame = table.frame
    kinds = list(frame["_kind"].fillna("")) if "_kind" in frame else [""] * len(frame)
    columns = [c for c in frame.columns if c != "_kind"]
    classes = {}
    for k, c in enumerate(columns):
        names = (["num"] if k > 0 and numeric_column(frame[c]) else []) + (["ci"] if str(c).endswith("CI95") else [])
        classes[c] = " ".join(names)
    out = ['<div class="scroll"><table class="%s">' % ("meta" if table.meta else "data")]
    if not table.meta:
        out.append("<thead><tr>" + "".join(_cell("th", c, classes[c]) for c in columns) + "</tr></thead>")
    out.append("<tbody>")
    for kind, (_, row) in zip(kinds, frame.iterrows()):
        cells = "".join(_cell("td", row[c], classes[c]) for c in columns)
        out.append((f'<tr class="{kind}">' if kind else "<tr>") + cells + "</tr>")
    out.append("</tbody></table></div>")
    if table.caption:
        out.append(f'<p class="caption">{html.escape(table.caption)}</p>')
    return "\n".join(out)


def _cell(tag: str, value, cls: str) -> str:
    text = html.escape("" if value is None else str(value))
    return f'<{tag} class="{cls}">{text}</{tag}>' if cls else f"<{tag}>{text}</{tag}>"


def section_html(sec: Section) -> str:
    parts = []
    for block in sec.blocks:
        if isinstance(block, Table):
            parts.append(table_html(block))
        elif isinstance(block, Figure):
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="{data_uri(block.png())}">'
                         f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
        elif isinstance(block, Note):
            parts.append(f'<p class="note">{html.escape(block.text)}</p>')
    return "\n".join(parts)


def report_title(results: dict) -> tuple[str, str]:
    model, suite = results["model"], results.get("suite") or {}
    ckpt = Path(str(model["checkpoint"])).name if model.get("checkpoint") else ""
    title = model["name"] + (f" ({ckpt})" if ckpt else "") + (f" on {suite['name']}" if suite.get("name") else "")
    subtitle = (f"run {results['run'].get('id')} · {results['run'].get('created')} · "
                f"{results['run'].get('device')} · seed {results['run'].get('seed')}")
    return title, subtitle


def write_html(path: Path, results: dict, sections: list[Section], run_dir: Path) -> Path:
    from sambench import __version__

    title, subtitle = report_title(results)
    rendered = [{"title": s.title, "anchor": s.anchor, "html": section_html(s)} for s in sections]
    text = template_env().get_template("report.html.j2").render(
        title=title, subtitle=subtitle, sections=rendered, version=__version__, run_dir=str(run_dir),
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    path.write_text(text)
    return path
