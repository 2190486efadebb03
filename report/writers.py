"""The report's two renderings of one document: self-contained HTML and Markdown with PNG files.

A document is a title, a lead paragraph and a list of sections; a section holds paragraphs,
tables and figures, in order. The HTML embeds every figure as a base64 PNG (`data:` URI) and
carries a small script that, once the page has loaded, counts the figures the browser decoded
(`naturalWidth > 0`): it writes "loaded/total" into `<body data-figures=...>`, shows a warning
when one failed, and, when the address ends in `#figures-check`, sets the page title to
`figures-ok:<loaded>/<total>` so that a headless browser can read the result.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    muted: frozenset[int] = frozenset()  # rows drawn grey (too small to read; their cells say so too)


@dataclass
class Figure:
    name: str  # file name stem: figures/<name>.png
    png: bytes
    caption: str
    alt: str = ""


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (a paragraph) | Table | Figure


@dataclass
class Document:
    title: str
    lead: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # shown in a box right under the lead

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


# ----------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(doc: Document, out: Path) -> Path:
    """OUT/report.md and OUT/figures/<name>.png."""
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    lines = [f"# {doc.title}", "", doc.lead, ""]
    if doc.warnings:
        lines += [f"> **Warning**: {w}" + ("  " if k + 1 < len(doc.warnings) else "")
                  for k, w in enumerate(doc.warnings)] + [""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                lines += [block, ""]
            elif isinstance(block, Table):
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "|".join("---" for _ in block.headers) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
                lines.append("")
            elif isinstance(block, Figure):
                (figures / f"{block.name}.png").write_bytes(block.png)
                lines += [f"![{block.alt or block.caption}](figures/{block.name}.png)", "", f"*{block.caption}*", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


# ----------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
       color: #1d1d1f; background: #f6f7f9; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: white; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 2px solid #e4e6ea; padding-bottom: 0.2em; }
p.lead { color: #444; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.92em; }
th, td { padding: 5px 12px; border-bottom: 1px solid #e4e6ea; text-align: right; white-space: nowrap; }
th { background: #f0f2f5; }
td.text, th.text, td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; color: #555; padding-bottom: 4px; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e6ea; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
code { background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
nav a { margin-right: 14px; }
div.warnings { background: #fff4e5; border: 1px solid #e8b25c; padding: 6px 12px; margin: 0.8em 0; }
div.warnings p { margin: 0.3em 0; }
tr.muted td { color: #9a9a9a; }
#figure-warning { display: none; background: #fde8e8; border: 1px solid #e0a0a0; padding: 8px 12px; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img");
  var ok = 0;
  imgs.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { ok += 1; } });
  var result = ok + "/" + imgs.length;
  document.body.setAttribute("data-figures", result);
  if (ok < imgs.length) {
    var warn = document.getElementById("figure-warning");
    warn.textContent = (imgs.length - ok) + " of " + imgs.length + " figures failed to load.";
    warn.style.display = "block";
  }
  if (window.location.hash === "#figures-check") { document.title = "figures-ok:" + result; }
});
"""


def _inline(text: str) -> str:
    """Escape, then `code` spans and **bold**."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


_NUMERIC = re.compile(r"^([-+]?[0-9][0-9,.]*|reference|n/a)")


def _numeric_columns(t: Table) -> list[bool]:
    """Columns whose every cell reads as a number (right-aligned); text columns are left-aligned."""
    return [all(_NUMERIC.match(str(row[j])) for row in t.rows) if t.rows else False
            for j in range(len(t.headers))]


def _table_html(t: Table) -> str:
    numeric = _numeric_columns(t)
    align = ['' if num else ' class="text"' for num in numeric]
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{_inline(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th{a}>{_inline(h)}</th>" for h, a in zip(t.headers, align))
                 + "</tr></thead><tbody>")
    for k, row in enumerate(t.rows):
        cells = "".join(f"<td{a}>{_inline(str(c))}</td>" for c, a in zip(row, align))
        parts.append(('<tr class="muted">' if k in t.muted else "<tr>") + cells + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _figure_html(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    alt = html.escape(f.alt or f.caption)
    return (f'<figure id="fig-{f.name}"><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{_inline(f.caption)}</figcaption></figure>")


def render_html(doc: Document) -> str:
    nav = " ".join(f'<a href="#{_anchor(s.title)}">{html.escape(s.title)}</a>' for s in doc.sections)
    body = [f"<h1>{html.escape(doc.title)}</h1>", f'<p class="lead">{_inline(doc.lead)}</p>',
            '<div id="figure-warning"></div>']
    if doc.warnings:
        body.append('<div class="warnings">' + "".join(f"<p><strong>Warning</strong>: {_inline(w)}</p>"
                                                      for w in doc.warnings) + "</div>")
    body.append(f"<nav>{nav}</nav>")
    for section in doc.sections:
        body.append(f'<h2 id="{_anchor(section.title)}">{html.escape(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                body.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, Table):
                body.append(_table_html(block))
            elif isinstance(block, Figure):
                body.append(_figure_html(block))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(doc.title)}</title>\n<style>{_CSS}</style>\n<script>{_SCRIPT}</script>\n"
            "</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def write_html(doc: Document, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render_html(doc), encoding="utf-8")
    return path
