"""The HTML report: one self-contained page (pictures embedded as data URIs).

Every string that comes from data, configuration or the command line is escaped with
:func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.io import atomic_write_bytes
from genlab.report.table import format_value

CSS = """
:root { --ink: #1d2330; --muted: #6b7280; --line: #e5e7eb; --accent: #1f6fb4; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #16324f; color: white; padding: 28px 40px 22px; }
header h1 { margin: 0 0 6px; font-size: 26px; font-weight: 650; }
header p { margin: 0; color: #c9d6e3; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 40px 60px; }
h2 { font-size: 20px; margin: 36px 0 12px; }
section.family { background: white; border: 1px solid var(--line); border-radius: 10px;
                 padding: 18px 22px; margin: 18px 0; }
section.family h2 { margin-top: 0; }
table { border-collapse: collapse; background: white; width: 100%; font-size: 14px;
        border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th { background: #eef2f7; font-weight: 600; }
th.group { text-align: center; background: #dde6f0; }
td:first-child, th:first-child { text-align: left; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.missing { color: #b0b6c0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         margin: 0 4px 4px 0; background: #e8f0f8; color: var(--accent); }
.badge.off { background: #f1f1f1; color: #9aa0a6; text-decoration: line-through; }
.gallery { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 10px; align-items: flex-start; }
figure { margin: 0; background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
         padding: 8px; }
figure img { display: block; width: 340px; image-rendering: pixelated; }
figure.wide img { width: 420px; image-rendering: auto; }
figure.full { flex-basis: 100%; }
figure.full img { width: 100%; max-width: 1200px; }
figure.full figcaption { max-width: none; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 6px; max-width: 340px; }
p.note { color: var(--muted); font-size: 13.5px; }
pre { margin: 0; font-size: 13px; line-height: 1.35; min-width: 200px; }
"""


@dataclass(frozen=True)
class Picture:
    caption: str
    png: bytes
    wide: bool = False  # plots (anti-aliased) rather than pixel grids
    full_width: bool = False  # a plot of many panels (training curves): the section's width


@dataclass
class Section:
    title: str
    badges: dict[str, bool] = field(default_factory=dict)
    pictures: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (caption, preformatted text)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    group: str = ""


def _cell(value: Any) -> str:
    text = format_value(value)
    css = ' class="missing"' if text == "-" else ""
    return f"<td{css}>{html.escape(text)}</td>"


def scorecard_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A table with grouped headers; a missing value shows as a dash."""
    groups: list[tuple[str, int]] = []
    for column in columns:
        if groups and groups[-1][0] == column.group:
            groups[-1] = (column.group, groups[-1][1] + 1)
        else:
            groups.append((column.group, 1))
    top = "".join(
        f'<th class="group" colspan="{span}">{html.escape(name)}</th>' for name, span in groups
    )
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c.key)) for c in columns) + "</tr>" for row in rows
    )
    return (
        f'<table id="scorecard"><thead><tr>{top}</tr><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _picture(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    classes = [name for name, on in (("wide", picture.wide), ("full", picture.full_width)) if on]
    css = f' class="{" ".join(classes)}"' if classes else ""
    caption = html.escape(picture.caption)
    return (
        f'<figure{css}><img src="data:image/png;base64,{data}" alt="{caption}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _section(section: Section) -> str:
    badges = "".join(
        f'<span class="badge{"" if on else " off"}">{html.escape(name)}</span>'
        for name, on in section.badges.items()
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in section.notes)
    gallery = "".join(_picture(p) for p in section.pictures) + "".join(
        f"<figure><pre>{html.escape(text)}</pre><figcaption>{html.escape(caption)}"
        "</figcaption></figure>"
        for caption, text in section.texts
    )
    return (
        f'<section class="family"><h2>{html.escape(section.title)}</h2>'
        f'<div>{badges}</div>{notes}<div class="gallery">{gallery}</div></section>'
    )


def render_report(
    *,
    title: str,
    subtitle: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    sections: Sequence[Section],
    notes: Sequence[str] = (),
) -> str:
    """The whole page as a string."""
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><main>"
        f"<h2>Scorecard</h2>{scorecard_table(rows, columns)}{note_html}"
        + "".join(_section(s) for s in sections)
        + "</main></body></html>"
    )


def write_report(path: str | Path, page: str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
