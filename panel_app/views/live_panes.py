"""The live panes: their content as HTML strings, the pane that shows it, the status line.

The content (positions table, status line, badges, P&L indicators) comes from pure functions
of the values shown, so what is the same for every session is computed once and handed to
every session's :class:`LiveHTML` pane (see :mod:`panel_app.views.dashboard`). Badges carry
``data-testid`` and ``data-*`` attributes that browser tests and the latency benchmark read
inside Panel's shadow roots.

Why :class:`LiveHTML`: setting ``object`` on a Panel ``HTML`` pane re-derives every property
of its model (stylesheets resolved through the design, file paths checked on disk, sizing)
before sending the one that changed: about half a millisecond of the server's event loop per
change, for each session. The live tier changes the same few panes on every trade (last-trade
badge, recent trades, positions, status line, toasts), so :class:`LiveHTML` sends only the
new text. Everything else about the pane (styles, stylesheets, sizing, visibility) behaves as
in ``pn.pane.HTML``, whose other parameters still go through Panel's normal path.

Why HTML tables and not Bokeh ``DataTable``s for the live tables: a ``DataTable`` re-lays out
its whole grid on every stream or patch (SlickGrid measures each column header through
``getComputedStyle``), which cost each page ~0.2 s of main-thread time per second while a
strategy traded; ten pages on two cores then starved the server. A small HTML table is
replaced in well under a millisecond (see docs/benchmarks.md, "Dashboard push latency").
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

import panel as pn

from engine.config import DashboardConfig
from panel_app.html_tables import Column, html_table, money, quantity


class LiveHTML(pn.pane.HTML):
    """``pn.pane.HTML`` whose ``object`` changes update only the model's ``text``."""

    def _update(self, ref: str, model: Any) -> None:
        text = self._transform_object(self.object)["object"]
        if model.text != text:
            model.text = text


POSITION_COLUMNS = [
    "symbol",
    "qty",
    "avg_price",
    "last",
    "market_value",
    "unrealized_pnl",
    "realized_pnl",
]
POSITION_TITLES = {
    "symbol": "Symbol",
    "qty": "Qty",
    "avg_price": "Avg price",
    "last": "Last",
    "market_value": "Market value",
    "unrealized_pnl": "Unrealized P&L",
    "realized_pnl": "Realized P&L",
}
POSITION_TABLE = [
    Column(c, POSITION_TITLES[c], quantity if c == "qty" else money, numeric=True)
    if c != "symbol"
    else Column(c, POSITION_TITLES[c])
    for c in POSITION_COLUMNS
]

#: Styles of the status badges; given to the panes themselves because they render inside
#: shadow roots, where the template's ``raw_css`` does not reach.
BADGE_CSS = """
.sl-badge { display:inline-block; padding:2px 8px; margin:2px; border-radius:10px;
            font-size:12px; background:#eee; color:#333; }
.sl-ok { background:#d4edda; color:#155724; }
.sl-stale, .sl-halted, .sl-sell { background:#f8d7da; color:#721c24; font-weight:bold; }
.sl-buy { background:#d4edda; color:#155724; font-weight:bold; }
.sl-runner { background:#d1ecf1; color:#0c5460; }
"""


def position_rows(positions: Any, prices: Any) -> list[dict[str, Any]]:
    """One row per symbol: qty, avg price, last, market value, unrealized and realized P&L.

    ``last`` and the values derived from it are NaN while a symbol has no price yet.
    """
    rows = []
    for sym, pos in sorted(positions.items()):
        raw_last = (prices.get(sym) or {}).get("last")
        last = float(raw_last) if raw_last is not None else float("nan")
        qty = float(pos.get("qty", 0.0))
        avg = float(pos.get("avg_price", 0.0))
        rows.append(
            {
                "symbol": str(sym),
                "qty": qty,
                "avg_price": avg,
                "last": last,
                "market_value": qty * last,
                "unrealized_pnl": (last - avg) * qty if qty else 0.0,
                "realized_pnl": float(pos.get("realized_pnl", 0.0)),
            }
        )
    return rows


#: Heights (px) of the live panes that change on every trade.
LAST_TRADE_HEIGHT = 32
POSITIONS_HEIGHT = 96


def positions_html(rows: list[dict[str, Any]]) -> str:
    """The positions table (computed once per state version for all sessions)."""
    return html_table(
        "positions",
        POSITION_TABLE,
        rows,
        key="symbol",
        empty="no positions",
        height_px=POSITIONS_HEIGHT,
    )


def heading(text: str) -> str:
    """A section title beside the live panes."""
    return (
        '<div style="font-size: 1.1em; font-weight: 600; margin: 4px 0; white-space: nowrap">'
        f"{text}</div>"
    )


def runner_status_of(runners: Any) -> str:
    """The live runner's status in the store's ``runner`` view ("" when it has none yet)."""
    runner = runners.get("runner") if isinstance(runners, Mapping) else None
    status = runner.get("status") if isinstance(runner, Mapping) else runner
    return str(status or "")


def badge(testid: str, text: str, *, kind: str, **attrs: str) -> str:
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    return (
        f'<span class="sl-badge sl-{kind}" data-testid="{testid}"{extra}>{html.escape(text)}</span>'
    )


def status_html(
    *,
    runner_status: str,
    trading: Mapping[str, Any],
    beat_age: float | None,
    data_age: float,
    reasons: list[str],
    dropped: int = 0,
    notify: list[str] | None = None,
) -> str:
    """The status line: connection, runner, trading state, heartbeat and data ages, market
    data a live feed had to drop (when any), notification channels failing or lagging (when
    any), and the stale badge (stale when ``reasons`` is not empty)."""
    stale = bool(reasons)
    parts = [
        badge("connection", "live", kind="ok", state="connected"),
        badge("runner-status", f"runner: {runner_status}", kind="runner", status=runner_status),
        badge(
            "trading-state",
            f"trading: {trading.get('state', '')}",
            kind="halted" if trading.get("state") != "active" else "ok",
            state=str(trading.get("state", "")),
            reason=str(trading.get("reason", "")),
        ),
        badge(
            "heartbeat-age",
            f"heartbeat {beat_age:.1f} s ago" if beat_age is not None else "no heartbeat yet",
            kind="muted",
            age=f"{beat_age:.1f}" if beat_age is not None else "",
        ),
        badge("data-age", f"data {data_age:.1f} s old", kind="muted"),
        *(
            [
                badge(
                    "data-dropped",
                    f"market data dropped: {dropped:,}",
                    kind="stale",
                    count=str(dropped),
                )
            ]
            if dropped
            else []
        ),
        *(
            [
                badge(
                    "notify-lag",
                    "notify: " + "; ".join(notify),
                    kind="stale",
                    count=str(len(notify)),
                )
            ]
            if notify
            else []
        ),
        badge(
            "stale-badge",
            "STALE: " + "; ".join(reasons) if stale else "fresh",
            kind="stale" if stale else "ok",
            stale=str(stale).lower(),
        ),
    ]
    return " ".join(parts)


class StatusLine:
    """One session's status line and what it shows, re-sent only when its text changes.

    The dashboard's handlers set the fields (``runner_status``, ``trading``, ``problem``,
    ``stale``, ``dropped``) and mark data and heartbeats as they arrive; :meth:`render` ages
    them. A heartbeat older than ``stale_after_s``, a stale heartbeat stream or a problem
    reaching the engine makes the line STALE with the reasons. ``notifications``: the engine's
    notification service, whose failing or lagging channels are shown (a mirror has none).
    """

    def __init__(self, config: DashboardConfig, notifications: Any = None) -> None:
        self._config = config
        self._notifications = notifications
        self.pane = LiveHTML(
            "", sizing_mode="stretch_width", css_classes=["sl-status"], stylesheets=[BADGE_CSS]
        )
        self.trading: dict[str, Any] = {"state": "active", "reason": "", "actor": ""}
        self.runner_status = ""
        self.problem = ""
        self.stale = False
        self.dropped = 0  # market data the live feed had to drop, as last reported
        self.last_data_ns = time.time_ns()
        self.last_beat_ns = 0
        self._html = ""

    def data_arrived(self) -> None:
        self.last_data_ns = time.time_ns()

    def beat(self) -> None:
        self.last_beat_ns = time.time_ns()

    def render(self) -> None:
        now = time.time_ns()
        beat_age = (now - self.last_beat_ns) / 1e9 if self.last_beat_ns else None
        reasons = []
        if self.problem:
            reasons.append(self.problem)
        if self.stale or (beat_age is not None and beat_age > self._config.stale_after_s):
            reasons.append(f"no heartbeat for {beat_age or 0:.0f} s")
        alerts = self._notifications.alerts() if self._notifications is not None else None
        text = status_html(
            runner_status=self.runner_status,
            trading=self.trading,
            beat_age=beat_age,
            data_age=(now - self.last_data_ns) / 1e9,
            reasons=reasons,
            dropped=self.dropped,
            notify=alerts,
        )
        if text != self._html:
            self._html = text
            self.pane.object = text


#: The P&L indicators, in the order shown.
INDICATORS = ("equity", "daily", "realized", "unrealized", "drawdown")
INDICATORS_HEIGHT = 70
INDICATOR_CSS = """
.sl-indicators { display:flex; gap:16px; }
.sl-ind { flex:1; min-width:0; }
.sl-ind-label { font-size:10pt; opacity:.7; }
.sl-ind-value { font-size:22pt; white-space:nowrap; }
.sl-neg { color:#d62728; }
.sl-pos { color:#2ca02c; }
"""


def indicator_values(pnl: Mapping[str, Any]) -> dict[str, float]:
    """The indicators' values from a P&L mapping (drawdown shown as a loss: ``-|dd|``)."""
    values = {}
    for name in INDICATORS:
        value = float(pnl.get(name, 0.0) or 0.0)
        values[name] = (-abs(value) or 0.0) if name == "drawdown" else value  # never "-0.00"
    return values


def indicators_html(values: Mapping[str, float]) -> str:
    """Equity, daily, realized and unrealized P&L and drawdown as one row of tiles.

    One HTML pane instead of five Panel ``Number`` indicators: each ``Number`` value change
    re-derived the widget's design (stylesheet paths checked on disk), ~1.7 ms of the
    server's loop per change and session. P&L figures are red below zero, green otherwise;
    equity is not coloured. Each tile carries ``data-testid="indicator-<name>"`` and
    ``data-value``."""
    tiles = []
    for name in INDICATORS:
        value = values.get(name, 0.0)
        tone = "" if name == "equity" else (" sl-neg" if value < 0 else " sl-pos")
        tiles.append(
            f'<div class="sl-ind sl-ind-{name}" data-testid="indicator-{name}"'
            f' data-value="{value!r}"><div class="sl-ind-label">{name.title()}</div>'
            f'<div class="sl-ind-value{tone}">{value:,.2f}</div></div>'
        )
    return f'<div class="sl-indicators">{"".join(tiles)}</div>'
