"""HTML building blocks of the report: cells, tables, sections, "not measured".

Shared by the report's tables and its plots, so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from alertbench.bench.values import format_value, is_number


def _cell(value: Any, tag: str = "td") -> str:
    numeric = is_number(value)
    text = escape(format_value(value))
    return f'<{tag} class="num">{text}</{tag}>' if numeric else f"<{tag}>{text}</{tag}>"


def table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """A ``<table>`` of ``rows``, under a ``header`` row unless it is None."""
    parts = ["<table>"]
    if header:
        parts.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
    parts.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    parts.append("</table>")
    return "\n".join(parts)


def section(section_id: str, title: str, body: Iterable[str]) -> str:
    """A ``<section>`` with id ``section_id``, heading ``title`` and the HTML of ``body``."""
    return "\n".join(
        [f'<section id="{escape(section_id)}">', f"<h2>{escape(title)}</h2>", *body, "</section>"]
    )


def not_measured(what: str = "") -> str:
    """A paragraph saying ``what`` (or the section, when empty) was not measured."""
    text = f"{what}: not measured" if what else "not measured"
    return f'<p class="missing">{escape(text)}</p>'
