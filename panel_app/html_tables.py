"""Small HTML tables for the live tier (recent trades, positions), rendered once per change.

The rows are the same for every session, so the HTML is built once per change of the data
(and column choice) and every session's :class:`~panel_app.views.live_panes.LiveHTML` pane is
given the same string. Cells are escaped; numbers are formatted here (NaN shows as an empty
cell, as a price not seen yet). Each table carries ``data-testid``, each header cell
``data-field`` and each row ``data-key``, so browser tests, the latency benchmark and the
recent-trades tape's script (:mod:`panel_app.views.tape`) can find them inside Panel's shadow
roots.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

#: Styles of the live tables (given to each pane: they render inside shadow roots). The
#: header stays visible while the body scrolls; colours follow the template's theme.
TABLE_CSS = """
.sl-table-wrap { max-height: var(--sl-table-height, 240px); overflow-y: auto;
                 border: 1px solid rgba(128,128,128,.35); border-radius: 4px; }
.sl-table { border-collapse: collapse; width: 100%; font-size: 12px;
            font-variant-numeric: tabular-nums; }
.sl-table th { position: sticky; top: 0; text-align: left; font-weight: 600; padding: 4px 8px;
               background: var(--panel-background-color, #fff);
               border-bottom: 1px solid rgba(128,128,128,.5); }
.sl-table td { padding: 3px 8px; border-bottom: 1px solid rgba(128,128,128,.15);
               white-space: nowrap; }
.sl-table td.sl-num { text-align: right; }
.sl-table td.sl-buy { color: #2ca02c; font-weight: 600; }
.sl-table td.sl-sell { color: #d62728; font-weight: 600; }
.sl-table .sl-empty { color: #888; font-style: italic; }
"""

Formatter = Callable[[Any], str]


def money(value: Any) -> str:
    """``1,234.50``; NaN or None as an empty cell."""
    if value is None:
        return ""
    number = float(value)
    return "" if math.isnan(number) else f"{number:,.2f}"


def quantity(value: Any) -> str:
    """A quantity without trailing zeros (``10``, ``0.5``); NaN or None as an empty cell."""
    if value is None:
        return ""
    number = float(value)
    if math.isnan(number):
        return ""
    return f"{number:,.8f}".rstrip("0").rstrip(".")


def text(value: Any) -> str:
    """Any value as text (None as an empty cell)."""
    return "" if value is None else str(value)


class Column:
    """One column of an :func:`html_table`: row field, header title, formatter, alignment."""

    __slots__ = ("field", "numeric", "render", "title")

    def __init__(self, field: str, title: str, render: Formatter = text, numeric: bool = False):
        self.field = field
        self.title = title
        self.render = render
        self.numeric = numeric


def html_table(
    testid: str,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    key: str,
    empty: str = "none yet",
    height_px: int = 240,
) -> str:
    """An escaped HTML table of ``rows`` (each row's ``data-key`` is its ``key`` field).

    A ``side`` column is coloured buy/sell. ``height_px`` caps the visible height (the body
    scrolls under a sticky header).
    """
    head = "".join(
        f'<th data-field="{html.escape(c.field)}">{html.escape(c.title)}</th>' for c in columns
    )
    body = []
    count = 0
    for row in rows:
        count += 1
        cells = []
        for c in columns:
            value = row.get(c.field)
            css = ""
            if c.numeric:
                css = ' class="sl-num"'
            elif c.field == "side" and value in ("buy", "sell"):
                css = f' class="sl-{value}"'
            cells.append(f"<td{css}>{html.escape(c.render(value))}</td>")
        row_key = html.escape(text(row.get(key)))
        body.append(f'<tr data-key="{row_key}">{"".join(cells)}</tr>')
    if not body:
        message = html.escape(empty)
        body.append(f'<tr><td class="sl-empty" colspan="{len(columns)}">{message}</td></tr>')
    return (
        f'<div class="sl-table-wrap" style="--sl-table-height: {int(height_px)}px">'
        f'<table class="sl-table" data-testid="{html.escape(testid)}" data-rows="{count}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
