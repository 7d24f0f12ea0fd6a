"""Sections → report.pdf with matplotlib's PdfPages (no browser needed).

Chosen over printing the HTML with headless Chromium because it works wherever matplotlib does
(CI images, clusters without a browser) and draws the same tables and figures. Layout: A4
landscape; page 1 = title and summary; then per section each table (split every
``ROWS_PER_PAGE`` rows) and each figure on its own page, the section's notes above its first.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.image as mpimg
from matplotlib.backends.backend_pdf import PdfPages

from sambench.report.figures import STYLE, plt
from sambench.report.html import numeric_column, report_title
from sambench.report.sections import Figure, Note, Section, Table

PAGE = (11.69, 8.27)  # A4 landscape, inches
ROWS_PER_PAGE = 22
ROW = 0.03  # table row height, fraction of the page height


def _page_plan(sec: Section) -> list[tuple[object, object]]:
    """(block, rows) per page of a section: a table every ROWS_PER_PAGE rows, a figure per
    page; a section of notes only still gets its page (block None)."""
    plan = []
    for block in sec.blocks:
        if isinstance(block, Table) and not block.meta:
            plan += [(block, block.frame.iloc[i:i + ROWS_PER_PAGE])
                     for i in range(0, max(len(block.frame), 1), ROWS_PER_PAGE)]
        elif isinstance(block, (Table, Figure)):
            plan.append((block, block.frame if isinstance(block, Table) else None))
    return plan or [(None, None)]


def page_count(sections: list[Section]) -> int:
    """Pages ``write_pdf`` produces for these sections (the summary shares page 1)."""
    return 1 + sum(len(_page_plan(sec)) for sec in sections[1:])


def _new_page(title: str, notes: list[str] = ()) -> tuple[plt.Figure, float]:
    """A blank page with a title (and wrapped notes); returns it and the y where content starts."""
    fig = plt.figure(figsize=PAGE)
    fig.text(0.04, 0.955, title, fontsize=14, fontweight="bold", va="top")
    y = 0.91
    for note in notes:
        wrapped = textwrap.fill(note, 165)
        fig.text(0.04, y, wrapped, fontsize=8, color="#444", va="top")
        y -= 0.022 * (wrapped.count("\n") + 1) + 0.01
    return fig, y


def _draw_table(fig, table: Table, rows, top: float) -> float:
    """Draw the rows as a table whose top is at ``top`` (figure fraction), the caption under it;
    returns the y below the caption."""
    columns = [c for c in table.frame.columns if c != "_kind"]
    kinds = list(rows["_kind"].fillna("")) if "_kind" in rows else [""] * len(rows)
    cells = [["" if v is None else textwrap.shorten(str(v), 110) for v in row] for row in rows[columns].values]
    ax = fig.add_axes((0.04, 0.05, 0.92, top - 0.05))
    ax.axis("off")
    tab = ax.table(cellText=cells, colLabels=None if table.meta else columns, loc="upper left", cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.auto_set_column_width(list(range(len(columns))))
    numeric = [k > 0 and not table.meta and numeric_column(rows[c]) for k, c in enumerate(columns)]
    row_height = ROW / (top - 0.05)  # in axes fraction
    for (r, c), cell in tab.get_celld().items():
        cell.set_height(row_height)
        cell.set_edgecolor("#dddddd")
        cell.set_linewidth(0.4)
        cell.set_text_props(ha="right" if numeric[c] else "left")
        kind = kinds[r - (0 if table.meta else 1)] if (table.meta or r > 0) else "header"
        if kind == "header":
            cell.set_text_props(fontweight="bold")
            cell.set_facecolor("#f0f0f0")
        elif kind in ("mean", "run"):
            cell.set_text_props(fontweight="bold")
        elif kind == "ref":
            cell.set_text_props(style="italic", color="#555555")
            cell.set_facecolor("#f7f7f2")
    n_rows = len(cells) + (0 if table.meta else 1)
    bottom = top - ROW * n_rows - 0.025
    if table.caption:
        caption = textwrap.fill(table.caption, 170)
        fig.text(0.04, bottom, caption, fontsize=8, color="#555", va="top")
        bottom -= 0.022 * (caption.count("\n") + 1)
    return bottom - 0.03


def _draw_figure(fig, block: Figure, top: float) -> None:
    image = mpimg.imread(io.BytesIO(block.png()), format="png")
    ax = fig.add_axes((0.04, 0.1, 0.92, top - 0.12))
    ax.imshow(image, interpolation="none")  # embedded as is, not resampled
    ax.axis("off")
    fig.text(0.04, 0.04, textwrap.fill(block.caption, 170), fontsize=8, color="#555", va="bottom")


def write_pdf(path: Path, results: dict, sections: list[Section]) -> int:
    """Write the PDF; returns its number of pages (``page_count(sections)``)."""
    title, subtitle = report_title(results)
    pages = 0
    with plt.rc_context(STYLE), PdfPages(path) as pdf:
        summary, rest = sections[0], sections[1:]
        fig, y = _new_page(f"sambench report — {title}", [subtitle])
        for block in summary.blocks:
            if isinstance(block, Table):
                y = _draw_table(fig, block, block.frame, y)
        pdf.savefig(fig)
        plt.close(fig)
        pages += 1
        for sec in rest:
            notes = [b.text for b in sec.blocks if isinstance(b, Note)]
            for k, (block, rows) in enumerate(_page_plan(sec)):
                fig, y = _new_page(sec.title if k == 0 else f"{sec.title} (continued)", notes if k == 0 else [])
                if isinstance(block, Table):
                    _draw_table(fig, block, rows, y - 0.01)
                elif isinstance(block, Figure):
                    _draw_figure(fig, block, y - 0.01)
                pdf.savefig(fig)
                plt.close(fig)
                pages += 1
        info = pdf.infodict()
        info["Title"] = f"sambench report — {title}"
        info["Creator"] = "sambench"
    return pages
