"""Shared test builders: one short function per event type, with sensible defaults.

Every builder takes keyword overrides for any field of the event (``seq``, ``event_id``,
``ts_event``...), so tests state only what matters to them. Keep this module generic: builders
for new event types go here, next to their family. Hypothesis strategies for whole event
sequences are at the bottom.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hypothesis import strategies as st

from engine.broker import PaperBroker
from engine.config import (
    BrokerConfig,
    PnlConfig,
    RiskConfig,
    SeamlessConfig,
    StateConfig,
    StrategyConfig,
)
from engine.core import Core
from engine.kernel import Kernel, Mode
from engine.pnl import PnlTracker
from engine.portfolio import Portfolio
from engine.risk import RiskEngine
from state.journal import MemoryJournal
from streams.clock import ManualClock
from streams.events import (
    BUY,
    HALTED,
    SELL,
    BarReceived,
    CashAdjusted,
    DailyLossBreached,
    Event,
    Heartbeat,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    PnlUpdated,
    PositionClosed,
    PositionUpdated,
    ReconciliationAdjusted,
    RunnerStatusChanged,
    SignalDetected,
    StateChanged,
    TickReceived,
    TradeExecuted,
    TradingStateChanged,
    WriteRefused,
)

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


class FakeClock:
    """A clock for tests: integer nanoseconds that move only when told."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` and return the new time in ns."""
        self.now_ns += int(seconds * 1e9)
        return self.now_ns


# -- market data ------------------------------------------------------------------------------
def tick(symbol: str = "AAPL", last: float | None = 100.0, **kw: Any) -> TickReceived:
    """A trade tick (set ``last=None`` and give ``bid``/``ask`` for a quote)."""
    return TickReceived(symbol=symbol, last=last, **kw)


def quote(symbol: str = "AAPL", bid: float = 99.9, ask: float = 100.1, **kw: Any) -> TickReceived:
    """A quote tick without a last trade."""
    return TickReceived(symbol=symbol, bid=bid, ask=ask, **kw)


def bar(symbol: str = "AAPL", close: float = 100.0, **kw: Any) -> BarReceived:
    """A flat-ish bar closing at ``close``."""
    fields: dict[str, Any] = {"open": close, "high": close, "low": close, "close": close}
    fields.update(kw)
    return BarReceived(symbol=symbol, **fields)


# -- trading ----------------------------------------------------------------------------------
def fill(
    symbol: str = "AAPL",
    side: str = BUY,
    qty: float = 10.0,
    price: float = 100.0,
    commission: float = 0.0,
    **kw: Any,
) -> TradeExecuted:
    """A fill; ``order_id``/``fill_id`` are made unique unless given."""
    kw.setdefault("fill_id", _id("fill"))
    kw.setdefault("order_id", _id("order"))
    kw.setdefault("strategy", "test")
    return TradeExecuted(
        symbol=symbol, side=side, qty=qty, price=price, commission=commission, **kw
    )


def buy(qty: float = 10.0, price: float = 100.0, symbol: str = "AAPL", **kw: Any) -> TradeExecuted:
    """A buy fill."""
    return fill(symbol, BUY, qty, price, **kw)


def sell(qty: float = 10.0, price: float = 100.0, symbol: str = "AAPL", **kw: Any) -> TradeExecuted:
    """A sell fill."""
    return fill(symbol, SELL, qty, price, **kw)


def order_submitted(
    order_id: str = "o-1", symbol: str = "AAPL", side: str = BUY, qty: float = 10.0, **kw: Any
) -> OrderSubmitted:
    """A submitted market order."""
    kw.setdefault("strategy", "test")
    return OrderSubmitted(order_id=order_id, symbol=symbol, side=side, qty=qty, **kw)


def order_accepted(order_id: str = "o-1", symbol: str = "AAPL", **kw: Any) -> OrderAccepted:
    """The broker took the order."""
    kw.setdefault("strategy", "test")
    return OrderAccepted(order_id=order_id, symbol=symbol, **kw)


def order_rejected(
    order_id: str = "o-1", symbol: str = "AAPL", reason: str = "max position", **kw: Any
) -> OrderRejected:
    """Risk or the broker refused the order."""
    kw.setdefault("strategy", "test")
    return OrderRejected(order_id=order_id, symbol=symbol, reason=reason, **kw)


def order_cancelled(order_id: str = "o-1", symbol: str = "AAPL", **kw: Any) -> OrderCancelled:
    """The order was cancelled."""
    kw.setdefault("strategy", "test")
    return OrderCancelled(order_id=order_id, symbol=symbol, **kw)


def position_updated(
    symbol: str = "AAPL", qty: float = 10.0, avg_price: float = 100.0, **kw: Any
) -> PositionUpdated:
    """The engine's statement of a position."""
    return PositionUpdated(symbol=symbol, qty=qty, avg_price=avg_price, **kw)


def position_closed(symbol: str = "AAPL", realized_pnl: float = 0.0, **kw: Any) -> PositionClosed:
    """A position went flat."""
    return PositionClosed(symbol=symbol, realized_pnl=realized_pnl, **kw)


def signal(symbol: str = "AAPL", side: str = BUY, **kw: Any) -> SignalDetected:
    """A strategy signal."""
    kw.setdefault("strategy", "test")
    return SignalDetected(symbol=symbol, side=side, **kw)


# -- account and risk -------------------------------------------------------------------------
def cash_adjusted(amount: float = 1000.0, reason: str = "deposit", **kw: Any) -> CashAdjusted:
    """Cash moved outside trading."""
    return CashAdjusted(amount=amount, reason=reason, **kw)


def pnl_updated(
    realized: float = 0.0,
    unrealized: float = 0.0,
    daily: float = 0.0,
    equity: float = 100_000.0,
    **kw: Any,
) -> PnlUpdated:
    """Marked P&L figures."""
    return PnlUpdated(realized=realized, unrealized=unrealized, daily=daily, equity=equity, **kw)


def reconciliation(
    symbol: str = "AAPL", engine_qty: float = 0.0, broker_qty: float = 10.0, **kw: Any
) -> ReconciliationAdjusted:
    """The broker's position differs from the engine's."""
    kw.setdefault("broker_avg_price", 100.0)
    return ReconciliationAdjusted(symbol=symbol, engine_qty=engine_qty, broker_qty=broker_qty, **kw)


def trading_state(state: str = HALTED, reason: str = "operator", **kw: Any) -> TradingStateChanged:
    """Trading became active, halted or reducing."""
    return TradingStateChanged(state=state, reason=reason, **kw)


def loss_breached(
    daily_pnl: float = -600.0, limit: float = -500.0, action: str = "halt", **kw: Any
) -> DailyLossBreached:
    """The daily loss limit was breached."""
    return DailyLossBreached(daily_pnl=daily_pnl, limit=limit, action=action, **kw)


# -- system -----------------------------------------------------------------------------------
def runner_status(component: str = "runner", status: str = "running", **kw: Any) -> Event:
    """A component's lifecycle changed."""
    return RunnerStatusChanged(component=component, status=status, **kw)


def state_changed(
    path: str = "risk.limits.max_position", value: Any = 100, actor: str = "operator", **kw: Any
) -> StateChanged:
    """A generic state write."""
    return StateChanged(path=path, value=value, actor=actor, **kw)


def write_refused(path: str = "risk.x", actor: str = "viewer", **kw: Any) -> WriteRefused:
    """An audit record of a refused write."""
    kw.setdefault("reason", "not an owner")
    return WriteRefused(path=path, actor=actor, **kw)


def heartbeat(component: str = "runner", **kw: Any) -> Heartbeat:
    """A liveness beat (no state rule: it only advances ``meta``)."""
    return Heartbeat(component=component, **kw)


def with_seqs(events: list[Event], start: int = 1) -> list[Event]:
    """The events numbered ``start, start+1, ...`` as the log would number them."""
    return [e.with_seq(start + i) for i, e in enumerate(events)]


# -- hypothesis strategies ----------------------------------------------------------------------
SYMBOLS = ("AAPL", "MSFT", "BTC")
ORDER_IDS = ("o1", "o2", "o3")
GENERIC_PATHS = ("risk.limits.max_position", "risk.limits.daily_loss", "risk.mode", "ui.theme")

symbols = st.sampled_from(SYMBOLS)
prices = st.integers(1, 50_000).map(lambda cents: cents / 100)
quantities = st.integers(1, 500).map(float) | st.sampled_from((0.5, 1.25, 2.75))
commissions = st.sampled_from((0.0, 0.0, 0.5, 1.0, 2.35))
sides = st.sampled_from((BUY, SELL))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5) | prices,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def fills(order_ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[TradeExecuted]:
    """Fills of random side, size and price on the test symbols."""
    return st.builds(
        fill,
        symbol=symbols,
        side=sides,
        qty=quantities,
        price=prices,
        commission=commissions,
        order_id=order_ids if order_ids is not None else st.sampled_from(ORDER_IDS),
        leaves_qty=st.sampled_from((0.0, 0.0, 5.0)),
    )


def ticks() -> st.SearchStrategy[TickReceived]:
    """Trade ticks and quotes (bid <= ask) on the test symbols."""
    trade = st.builds(tick, symbol=symbols, last=prices)
    quoted = st.builds(
        lambda sym, p, spread: quote(sym, bid=p, ask=round(p + spread, 2)),
        symbols,
        prices,
        st.sampled_from((0.01, 0.05)),
    )
    return trade | quoted


def cash_adjustments() -> st.SearchStrategy[CashAdjusted]:
    """Deposits and withdrawals."""
    return st.builds(cash_adjusted, amount=st.integers(-5000, 5000).map(float))


def any_events() -> st.SearchStrategy[Event]:
    """One valid event of any type the state folds, plus some it ignores."""
    oid = st.sampled_from(ORDER_IDS)
    return st.one_of(
        ticks(),
        st.builds(bar, symbol=symbols, close=prices),
        fills(),
        cash_adjustments(),
        st.builds(position_updated, symbol=symbols, qty=quantities, avg_price=prices),
        st.builds(position_closed, symbol=symbols, realized_pnl=prices),
        st.builds(reconciliation, symbol=symbols, broker_qty=quantities, broker_avg_price=prices),
        st.builds(
            pnl_updated,
            realized=prices,
            unrealized=prices,
            daily=prices,
            equity=prices,
            session_start=st.integers(0, 2**62),
        ),
        st.builds(trading_state, state=st.sampled_from(("active", "halted", "reducing"))),
        st.builds(loss_breached, action=st.sampled_from(("halt", "reduce_only", "flatten"))),
        st.builds(
            runner_status,
            component=st.sampled_from(("runner", "feed")),
            status=st.sampled_from(("running", "paused", "stopped")),
        ),
        st.builds(order_submitted, order_id=oid, symbol=symbols, side=sides, qty=quantities),
        st.builds(order_accepted, order_id=oid, symbol=symbols),
        st.builds(order_rejected, order_id=oid, symbol=symbols),
        st.builds(order_cancelled, order_id=oid, symbol=symbols),
        st.builds(state_changed, path=st.sampled_from(GENERIC_PATHS), value=json_values),
        st.builds(heartbeat),
        st.builds(signal, symbol=symbols, side=sides),
    )


def event_lists(
    events: st.SearchStrategy[Event] | None = None, max_size: int = 40
) -> st.SearchStrategy[list[Event]]:
    """Lists of events with unique ids and increasing ``ts_event`` (seq left 0 for the log)."""

    def number(items: list[Event]) -> list[Event]:
        return [
            dataclasses.replace(e, event_id=f"ev-{i}", ts_event=(i + 1) * 1_000_000)
            for i, e in enumerate(items)
        ]

    return st.lists(events if events is not None else any_events(), max_size=max_size).map(number)


# -- a wired trading engine: the kernel in backtest mode, driven by hand -----------------------
#: 2024-01-02 14:30:00 UTC (a Tuesday), in ns: a realistic clock start for engine tests.
T0 = 1_704_205_800 * 1_000_000_000

#: Risk limits off: tests switch on the one they test (risk still checks the trading state).
RISK_OFF = RiskConfig(
    max_position=0.0, max_order_notional=0.0, max_orders_per_second=0, daily_loss_limit=0.0
)


@dataclasses.dataclass
class TradingRig:
    """A started kernel in backtest mode (synchronous bus, the clock the tests move), its
    components, and test helpers. Built by the kernel like every engine: the same wiring."""

    kernel: Kernel
    core: Core
    clock: ManualClock
    broker: PaperBroker
    risk: RiskEngine
    portfolio: Portfolio
    pnl: PnlTracker

    @property
    def store(self) -> Any:
        """The state store."""
        return self.core.store

    @property
    def journal(self) -> MemoryJournal:
        """The in-memory journal (every committed event, in order)."""
        journal = self.core.journal
        assert isinstance(journal, MemoryJournal)
        return journal

    def events(self, kind: type[Event] = Event) -> list[Any]:
        """The committed events of one type, in log order."""
        return [e for e in self.journal.events if isinstance(e, kind)]

    def position(self, symbol: str = "AAPL") -> float:
        """The engine's signed position in ``symbol``."""
        pos = self.store.get_state(f"positions.{symbol}", None)
        return float(pos["qty"]) if pos else 0.0

    def bar(
        self, symbol: str = "AAPL", open: float = 100.0, close: float | None = None, **kw: Any
    ) -> BarReceived:
        """Advance the clock one minute and publish a bar (high/low span open and close)."""
        self.clock.advance(60)
        close = open if close is None else close
        kw.setdefault("high", max(open, close))
        kw.setdefault("low", min(open, close))
        event = BarReceived(
            symbol=symbol, open=open, close=close, ts_event=self.clock.now_ns(), **kw
        )
        self.core.publish(event)
        return event

    def quote(
        self, symbol: str = "AAPL", bid: float = 99.9, ask: float = 100.1, **kw: Any
    ) -> TickReceived:
        """Advance the clock 100 ms and publish a quote tick."""
        self.clock.advance(0.1)
        event = TickReceived(symbol=symbol, bid=bid, ask=ask, ts_event=self.clock.now_ns(), **kw)
        self.core.publish(event)
        return event

    def order(
        self, side: str = BUY, qty: float = 10.0, symbol: str = "AAPL", **kw: Any
    ) -> OrderSubmitted:
        """Publish an order as a strategy would; it goes through risk to the broker."""
        kw.setdefault("order_id", _id("ord"))
        kw.setdefault("strategy", "test")
        event = OrderSubmitted(
            symbol=symbol, side=side, qty=qty, ts_event=self.clock.now_ns(), **kw
        )
        self.core.publish(event)
        return event


def trading_rig(
    *,
    broker_config: BrokerConfig | None = None,
    risk_config: RiskConfig | None = None,
    pnl_config: PnlConfig | None = None,
    account_path: Any = None,
    starting_cash: float = 100_000.0,
    start_ns: int = T0,
    journal: MemoryJournal | None = None,
    strategies: tuple[StrategyConfig, ...] = (),
) -> TradingRig:
    """A kernel in backtest mode, started, over ``journal`` (restored from it if not empty).

    Limits default to off (:data:`RISK_OFF`) so tests switch on the one they test; the
    broker's account is in memory unless ``account_path`` is given.
    """
    clock = ManualClock(start_ns)
    broker = broker_config or BrokerConfig()
    config = SeamlessConfig(
        state=StateConfig(starting_cash=starting_cash),
        broker=dataclasses.replace(broker, account_path=str(account_path or "")),
        risk=risk_config or RISK_OFF,
        pnl=pnl_config or PnlConfig(),
        strategies=strategies,
    )
    journal = journal if journal is not None else MemoryJournal()
    kernel = Kernel(config, mode=Mode.BACKTEST, clock=clock, journal=journal).start()
    return TradingRig(
        kernel, kernel.core, clock, kernel.broker, kernel.risk, kernel.portfolio, kernel.pnl
    )


def restarted_rig(rig: TradingRig, *, advance_s: float = 0.0, **kw: Any) -> TradingRig:
    """A new rig restored from ``rig``'s log (replayed from scratch), as after a restart.

    The journal is shared, so the log goes on; ``advance_s`` is the downtime on the clock.
    Pass the same ``account_path`` to keep the broker's books.
    """
    kw.setdefault("pnl_config", rig.pnl.config)
    return trading_rig(
        journal=rig.journal, start_ns=rig.clock.now_ns() + int(advance_s * 1e9), **kw
    )
