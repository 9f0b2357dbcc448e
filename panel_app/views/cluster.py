"""The Cluster tab: every book of a shared log, who trades it and its account (mirror mode).

Shown by ``seamless serve --mirror`` with ``storage.backend: postgres``: the rows come from
``kernel.cluster.summary()`` (an :class:`engine.cluster.ClusterView`: one live read-only mirror
per book joined with its lease). The session's 1 s tick re-renders the table, only when a row
changed.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn

from panel_app.facade import ClusterReader

COLUMNS = (
    ("book", "Book"),
    ("owner", "Node"),
    ("epoch", "Epoch"),
    ("lease_left_s", "Lease left (s)"),
    ("trading", "Trading"),
    ("seq", "Seq"),
    ("cash", "Cash"),
    ("equity", "Equity"),
    ("realized", "Realized"),
    ("unrealized", "Unrealized"),
    ("positions", "Positions"),
)


def _cell(key: str, value: Any) -> str:
    if key == "positions":
        text = ", ".join(f"{s} {q:g}" for s, q in sorted(value.items())) or "flat"
    elif isinstance(value, float) and key != "lease_left_s":
        text = f"{value:,.2f}"
    else:
        text = str(value)
    return f'<td data-col="{key}">{html.escape(text)}</td>'


def render_rows(rows: list[dict[str, Any]]) -> str:
    """The cluster table as HTML (every value escaped)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in COLUMNS)
    body = "".join(
        f'<tr data-book="{html.escape(str(row["book"]))}">'
        + "".join(_cell(key, row.get(key, "")) for key, _ in COLUMNS)
        + "</tr>"
        for row in rows
    )
    return (
        f'<table class="sl-cluster" data-testid="cluster-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class ClusterView(pn.viewable.Viewer):
    """A table of the cluster's books, refreshed by :meth:`tick` (the session's timer)."""

    def __init__(self, cluster: ClusterReader) -> None:
        super().__init__()
        self._cluster = cluster
        self._html = ""
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.tick()

    def tick(self) -> None:
        """Re-render when any book's row changed."""
        text = render_rows(self._cluster.summary())
        if text != self._html:
            self._html = text
            self.table.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown(
                "Every book in the shared log: the node holding its lease and its account, "
                "live from the bus (read-only)."
            ),
            self.table,
            sizing_mode="stretch_width",
        )
