"""The report as one self-contained HTML page: the grouped table, the figures and the gallery, images inline.

    write_html(choice_table(results), markdown, [Path("results/default/accuracy.png")], "results/default/summary.html")

The choice table gets its real header levels (family, benchmark, split, with colspans), a chance row,
the best per column in bold and each cell's standard error and item count as its tooltip; the other
sections of the Markdown report (the paper's columns, zero-shot, retrieval) follow as plain tables.
Images are data URIs, so the file can be opened anywhere or embedded: the workflow's Snakemake report
shows this page on its front page (report/workflow.rst) and as the "Table" result.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

from ...atomic import write_text
from .results_table import ChoiceTable

__all__ = ["choice_html", "markdown_tables_html", "write_html"]

STYLE = """
table.dcsm { border-collapse: collapse; font: 13px sans-serif; margin: 0.5em 0 1em }
table.dcsm th, table.dcsm td { border: 1px solid #ccc; padding: 2px 6px; text-align: right }
table.dcsm th { background: #f3f3f3; text-align: center }
table.dcsm td.name { text-align: left }
table.dcsm tr.chance td { color: #777; font-style: italic }
img.dcsm { max-width: 100%; margin: 0.5em 0 }
"""


def _pct(x) -> str:
    return "" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _spans(items: list[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for it in items:
        if out and out[-1][0] == it:
            out[-1] = (it, out[-1][1] + 1)
        else:
            out.append((it, 1))
    return out


def choice_html(table: ChoiceTable) -> str:
    cols = table.columns
    esc = html.escape
    head = [
        "<tr><th rowspan=3>backbone</th><th rowspan=3>scorer</th>"
        + "".join(f"<th colspan={n}>{esc(f)}</th>" for f, n in _spans([c.family for c in cols]))
        + "</tr>",
        "<tr>" + "".join(f"<th colspan={n}>{esc(b)}</th>" for b, n in _spans([c.benchmark for c in cols])) + "</tr>",
        "<tr>" + "".join(f"<th>{esc(c.split)}</th>" for c in cols) + "</tr>",
    ]
    body = [
        "<tr class=chance><td class=name>chance</td><td></td>" + "".join(f"<td>{_pct(c.chance)}</td>" for c in cols)
    ]
    for key in table.rows:
        row = table.cells[key]
        cells = []
        for c in cols:
            v = row.get(c.id)
            if v is None:
                cells.append("<td></td>")
                continue
            text = _pct(v["accuracy"])
            tip = f"± {_pct(v['stderr'])} (s.e.), {v['n_items']} items; {v.get('result') or ''}"
            best = text and v["accuracy"] == table.best(c.id)
            cells.append(f'<td title="{esc(tip)}">' + (f"<b>{text}</b>" if best else text) + "</td>")
        body.append(
            f"<tr><td class=name>{esc(key[0])}</td><td class=name>{esc(key[1])}</td>" + "".join(cells) + "</tr>"
        )
    return "<table class=dcsm>\n" + "\n".join(head + body) + "\n</table>"


def markdown_tables_html(md: str) -> str:
    """Headings, paragraphs and pipe tables of a Markdown text as HTML (the report's own Markdown only)."""
    out, table = [], []

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [[html.escape(c.strip()).replace("**", "") for c in r.strip().strip("|").split("|")] for r in rows]
            out.append(
                "<table class=dcsm>"
                + "".join(
                    "<tr>"
                    + "".join(f"<{'th' if i == 0 else 'td'}>{c}</{'th' if i == 0 else 'td'}>" for c in r)
                    + "</tr>"
                    for i, r in enumerate(cells)
                )
                + "</table>"
            )
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line.strip()).replace('**', '')}</p>")
    flush()
    return "\n".join(out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class=dcsm alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_html(
    table: ChoiceTable, md: str, figures: list[Path], out: str | os.PathLike, gallery: list[Path] = ()
) -> Path:
    """The page (see the module doc): table, figures, the rest of the Markdown report, gallery images."""
    rest = md.split("\n## ", 1)
    parts = [
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>dcsm-cache results</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h2>dcsm-cache results</h2>",
    ]
    if table.columns:
        parts += [
            "<p>Accuracy (%) per benchmark split; rows are backbone x scorer, the best per column in bold; "
            "hover a number for its standard error, item count and result file.</p>",
            choice_html(table),
        ]
    parts += [_img(p, p.stem) for p in figures]
    if len(rest) == 2:
        parts.append(markdown_tables_html("## " + rest[1]))
    if gallery:
        parts.append("<h3>Gallery</h3>")
        parts += [_img(p, p.stem) for p in gallery]
    parts.append("</body></html>\n")
    return write_text(out, "\n".join(parts))
