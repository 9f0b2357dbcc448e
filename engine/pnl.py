"""The P&L tracker: marks the account to the latest prices and publishes ``pnl_updated``.

Figures (currency amounts, see :class:`PnlTracker`):

* ``realized``   - realized P&L of all positions net of commissions paid;
* ``unrealized`` - ``sum(qty * (last - avg_price))`` over open positions (a symbol with no price
  yet is marked at its average price);
* ``equity``     - ``cash + sum(qty * last)``;
* ``daily``      - equity minus the equity at the start of the current session;
* ``drawdown``   - the equity peak minus equity (>= 0); ``max_drawdown`` its largest value.

Deposits and withdrawals (``cash_adjusted`` other than reconciliation) are flows, not P&L: they
move the session-start equity and the peak with them. A reconciliation's cash is the cash leg of
a trade done outside the engine, so it is P&L like any trade.

The session starts every day at ``session_start`` (HH:MM) in ``session_timezone``; the day
rolls when the clock crosses it, and ``daily`` is measured from the last equity before the
boundary. ``pnl_updated`` goes out on every bar, fill and cash adjustment, and for ticks at
most every ``publish_interval_s`` of clock time (peak and drawdown still follow every tick).

Restart: :meth:`PnlTracker.resync` (called by ``attach``) recovers the session-start equity as
``equity - daily`` and the peak as ``equity + drawdown`` from the restored ``pnl`` section, and
starts a new session if the stored one (``pnl.session_start``) is over; a stored
``session_start`` of 0 means no tracker ever published, and the day starts at the current
equity. Attach after the state is restored (call ``resync`` again if it is restored later).
Runs on the engine thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reactivex import abc

from engine.config import PnlConfig, parse_hhmm
from streams import topics
from streams.bus import EventBus, Stage
from streams.clock import NS_PER_S, Clock
from streams.events import (
    BarReceived,
    CashAdjusted,
    Event,
    PnlUpdated,
    ReconciliationAdjusted,
    TickReceived,
    TradeExecuted,
)

#: ``cash_adjusted`` reasons starting with this are trades settled outside the engine, not flows.
RECONCILIATION_REASON = "reconciliation"


class SessionCalendar:
    """When the trading session containing a given instant started (and the next one starts)."""

    def __init__(self, start: str = "00:00", timezone: str = "UTC") -> None:
        self._at = parse_hhmm(start)
        self._tz = ZoneInfo(timezone)
        self._span: tuple[int, int] = (1, 0)  # empty: the first lookup computes it

    def session_start(self, now_ns: int) -> int:
        """The start (ns since the epoch) of the session ``now_ns`` falls in."""
        lo, hi = self._span
        if lo <= now_ns < hi:
            return lo
        local = datetime.fromtimestamp(now_ns // 1_000 / 1e6, self._tz)
        day = local.date()
        start = datetime.combine(day, self._at, tzinfo=self._tz)
        if start > local:
            day -= timedelta(days=1)
            start = datetime.combine(day, self._at, tzinfo=self._tz)
        following = datetime.combine(day + timedelta(days=1), self._at, tzinfo=self._tz)
        lo, hi = _to_ns(start), _to_ns(following)
        self._span = (lo, hi)
        return lo


def _to_ns(value: datetime) -> int:
    return round(value.timestamp()) * NS_PER_S


class PnlTracker:
    """Computes realized/unrealized/daily P&L, equity and drawdown; publishes ``pnl_updated``."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        store: Any,
        clock: Clock,
        config: PnlConfig | None = None,
    ) -> None:
        self._publish = publish
        self._store = store
        self._clock = clock
        self.config = config if config is not None else PnlConfig()
        self._calendar = SessionCalendar(self.config.session_start, self.config.session_timezone)
        self._interval_ns = int(self.config.publish_interval_s * NS_PER_S)
        self._session = 0
        self._day_start = 0.0
        self._peak = 0.0
        self._max_dd = 0.0
        self._last_equity: float | None = None
        self._last_publish_ns: int | None = None
        self._last_figures: tuple[float, ...] | None = None

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Recover from the state (:meth:`resync`) and follow prices, fills and cash.

        Prices are marked in the ``MARK`` stage: after the broker's fills for a market event,
        before strategies see it, so a daily-loss breach it causes comes first."""
        self.resync()
        return [
            bus.subscribe(topics.ALL_BARS, self._on_event, name="pnl.bars", stage=Stage.MARK),
            bus.subscribe(topics.ALL_TICKS, self._on_event, name="pnl.ticks", stage=Stage.MARK),
            bus.subscribe(topics.ALL_FILLS, self._on_event, name="pnl.fills"),
            bus.subscribe(topics.PNL, self._on_event, name="pnl.cash"),
            bus.subscribe(topics.RECONCILIATION, self._on_event, name="pnl.reconciliation"),
        ]

    def resync(self) -> None:
        """Take the session-start equity, peak and max drawdown from the stored ``pnl``."""
        now = self._clock.now_ns()
        session = self._calendar.session_start(now)
        equity, _ = self._mark()
        pnl = self._store.get_state("pnl")
        if not pnl.get("session_start"):  # 0: no tracker has published yet, a new account
            self._day_start = self._peak = equity
            self._max_dd = 0.0
        else:
            stored_equity = pnl["equity"]
            self._peak = max(stored_equity + pnl["drawdown"], equity)
            self._max_dd = pnl["max_drawdown"]
            same_day = pnl["session_start"] == session
            self._day_start = stored_equity - pnl["daily"] if same_day else stored_equity
        self._session = session
        self._last_equity = equity
        self._last_publish_ns = None

    # -- handlers -----------------------------------------------------------------------------
    def on_event(self, event: Event) -> PnlUpdated | None:
        """Update the figures for one event; the ``pnl_updated`` published, if any."""
        if type(event) is BarReceived:  # the common case first (the types are disjoint)
            return self.update(force=True, cause=event)
        if isinstance(event, CashAdjusted):
            if not event.reason.startswith(RECONCILIATION_REASON):
                self._day_start += event.amount
                self._peak += event.amount
            return self.update(force=True, cause=event)
        if isinstance(event, TickReceived):
            return self.update(force=False, cause=event)
        if isinstance(event, BarReceived | TradeExecuted | ReconciliationAdjusted):
            return self.update(force=True, cause=event)
        return None

    def update(self, *, force: bool = True, cause: Event | None = None) -> PnlUpdated | None:
        """Mark to market now; publish unless throttled (``force`` ignores the interval)."""
        now = self._clock.now_ns()
        session = self._calendar.session_start(now)
        if session != self._session:
            # The day rolled: measure from the last equity of the old session (its close).
            if self._last_equity is not None:
                self._day_start = self._last_equity
            self._session = session
        state = self._store.get_state()  # one consistent read for the marks and the account
        equity, unrealized = self._mark(state)
        self._last_equity = equity
        self._peak = max(self._peak, equity)
        drawdown = self._peak - equity
        self._max_dd = max(self._max_dd, drawdown)
        last = self._last_publish_ns
        if not force and last is not None and now - last < self._interval_ns:
            return None
        account = state["account"]
        figures = (
            account["realized_pnl"] - account["commissions"],
            unrealized,
            equity - self._day_start,
            equity,
            drawdown,
            self._max_dd,
            session,
        )
        if figures == self._last_figures:
            return None  # nothing moved (e.g. flat): an identical event would only add noise
        self._last_figures = figures
        event = PnlUpdated(
            realized=figures[0],
            unrealized=unrealized,
            daily=figures[2],
            equity=equity,
            drawdown=drawdown,
            max_drawdown=self._max_dd,
            session_start=session,
            ts_event=now,
            causation_id=cause.event_id if cause is not None else None,
        )
        self._last_publish_ns = now
        self._publish(event)
        return event

    # -- internals ----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self.on_event(event)

    def _mark(self, state: Any = None) -> tuple[float, float]:
        """``(equity, unrealized)`` of ``state`` (default: the current state)."""
        if state is None:
            state = self._store.get_state()
        prices = state["prices"]
        value = 0.0
        unrealized = 0.0
        for symbol, pos in state["positions"].items():
            qty = pos["qty"]
            if not qty:
                continue
            quote = prices.get(symbol)
            last = quote["last"] if quote is not None and quote["last"] is not None else None
            mark = pos["avg_price"] if last is None else last
            value += qty * mark
            unrealized += qty * (mark - pos["avg_price"])
        return state["account"]["cash"] + value, unrealized
