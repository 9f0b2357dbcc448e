"""The Cluster tab renders every book's row, escaped, and re-renders only on change."""

from __future__ import annotations

from typing import Any

from panel_app.views.cluster import ClusterView, render_rows


class _Cluster:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls = 0

    def summary(self) -> list[dict[str, Any]]:
        self.calls += 1
        return self.rows


def _row(book: str, **kw: Any) -> dict[str, Any]:
    row = {
        "book": book,
        "owner": "node-1",
        "epoch": 2,
        "lease_left_s": 7.5,
        "trading": "active",
        "seq": 42,
        "cash": 99_000.5,
        "equity": 100_250.0,
        "realized": 10.0,
        "unrealized": -2.5,
        "positions": {"AAPL": 10.0},
    }
    return row | kw


def test_rows_show_owner_epoch_account_and_positions_escaped() -> None:
    text = render_rows([_row("alpha"), _row("<b>x</b>", positions={})])

    assert 'data-book="alpha"' in text and "node-1" in text and "99,000.50" in text
    assert "AAPL 10" in text and "flat" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


def test_tick_re_renders_only_when_a_row_changed() -> None:
    cluster = _Cluster([_row("alpha")])
    view = ClusterView(cluster)
    first = view.table.object
    view.tick()
    assert view.table.object is first  # unchanged: the same string object, no re-send
    cluster.rows = [_row("alpha", seq=43)]
    view.tick()
    assert view.table.object != first and 'data-col="seq">43<' in view.table.object
