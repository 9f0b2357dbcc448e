"""The shipped strategies (SMA crossover, z-score reversion) in virtual time.

The decision rules are checked against a recording context (exact prices, positions and orders
in flight under the test's control); the same strategies are then run end to end on the real
broker, risk, portfolio and P&L (``trading_rig``) so the orders they send really fill.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.strategies import SmaCrossover, ZScoreReversion
from engine.strategies.rolling import RollingWindow
from engine.strategy import Strategy
from engine.strategy_host import StrategyHost, build_strategy
from streams.clock import Clock, ManualClock
from streams.errors import ConfigError
from streams.events import BUY, SELL, OrderSubmitted, SignalDetected, TradeExecuted
from tests.factories import T0, TradingRig, bar, trading_rig


class RecordingContext:
    """A strategy context whose positions and in-flight orders the test sets by hand."""

    def __init__(self) -> None:
        self._clock = ManualClock(T0)
        self.positions: dict[str, float] = {}
        self.inflight: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []

    @property
    def clock(self) -> Clock:
        return self._clock

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.inflight if symbol is None or o["symbol"] == symbol]

    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        order_type: str = "market",
        limit_price: float | None = None,
        reason: str = "",
    ) -> str:
        order = {"symbol": symbol, "side": side, "qty": qty, "reason": reason}
        self.orders.append(order)
        return f"o{len(self.orders)}"

    def cancel_order(self, order_id: str, reason: str = "") -> None:
        """Not used by the shipped strategies."""

    def signal(self, symbol: str, side: str, *, strength: float = 1.0, reason: str = "") -> None:
        self.signals.append({"symbol": symbol, "side": side, "strength": strength})


def started(strategy: Strategy) -> RecordingContext:
    ctx = RecordingContext()
    strategy.on_start(ctx)
    return ctx


def feed(strategy: Strategy, closes: list[float], symbol: str = "AAPL") -> None:
    for close in closes:
        strategy.on_bar(bar(symbol, close))


def sides(ctx: RecordingContext) -> list[tuple[str, float]]:
    return [(o["side"], o["qty"]) for o in ctx.orders]


# -- SMA crossover: decision rules -----------------------------------------------------------------
def test_sma_buys_qty_on_a_cross_up_while_flat() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=7)
    ctx = started(sma)

    # slow window full at 10,10,10 (diff 0); 13 makes fast 11.5 > slow 11: a cross up
    feed(sma, [10, 10, 10, 13])

    assert sides(ctx) == [(BUY, 7.0)]
    assert ctx.signals[0]["side"] == BUY


def test_sma_does_not_buy_again_while_already_long() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=7)
    ctx = started(sma)
    ctx.positions["AAPL"] = 7.0

    feed(sma, [10, 10, 10, 13, 14, 15])

    assert ctx.orders == []


def test_sma_sells_the_whole_position_on_a_cross_down_while_long() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=7)
    ctx = started(sma)
    feed(sma, [10, 10, 10, 13])
    ctx.positions["AAPL"] = 12.5  # e.g. an external fill added to the strategy's entry

    # 14,14 keep fast above slow; 8 makes fast 11 < slow 12: a cross down
    feed(sma, [14, 14, 8])

    assert sides(ctx) == [(BUY, 7.0), (SELL, 12.5)]


def test_sma_never_shorts_on_a_cross_down_while_flat() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=7)
    ctx = started(sma)

    feed(sma, [10, 10, 10, 13, 14, 14, 8, 7, 6])  # cross up (no fill arrives), cross down flat

    assert sides(ctx) == [(BUY, 7.0)]


def test_sma_sends_no_order_while_one_is_in_flight() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=7)
    ctx = started(sma)
    ctx.inflight.append({"symbol": "AAPL", "side": BUY, "qty": 7.0})

    feed(sma, [10, 10, 10, 13])

    assert ctx.orders == []


def test_sma_an_order_in_flight_on_another_symbol_does_not_block() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL", "MSFT"], fast=2, slow=3, qty=7)
    ctx = started(sma)
    ctx.inflight.append({"symbol": "MSFT", "side": BUY, "qty": 7.0})

    feed(sma, [10, 10, 10, 13], symbol="AAPL")

    assert [o["symbol"] for o in ctx.orders] == ["AAPL"]


def test_sma_keeps_separate_averages_per_symbol() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL", "MSFT"], fast=2, slow=3, qty=1)
    ctx = started(sma)

    for a, m in zip([10, 10, 10, 13], [50, 50, 50, 40], strict=True):
        sma.on_bar(bar("AAPL", a))
        sma.on_bar(bar("MSFT", m))

    assert [(o["symbol"], o["side"]) for o in ctx.orders] == [("AAPL", BUY)]


def test_sma_refuses_fast_not_below_slow_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"fast \(30\) must be smaller than slow \(30\)"):
        SmaCrossover(name="sma", fast=30, slow=30)


def test_sma_fast_not_below_slow_is_a_config_error_naming_the_strategy() -> None:
    with pytest.raises(ConfigError, match=r"strategy 'bad'.*fast \(40\) must be smaller"):
        build_strategy("sma_crossover", "bad", ["AAPL"], {"fast": 40, "slow": 10})


@pytest.mark.parametrize(
    ("params", "named"),
    [({"fast": 0}, "fast"), ({"qty": 0}, "qty"), ({"qty": -5}, "qty"), ({"slow": "x"}, "slow")],
)
def test_sma_out_of_bounds_parameters_are_refused(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_strategy("sma_crossover", "bad", ["AAPL"], params)


# -- z-score reversion: decision rules -----------------------------------------------------------
# One outlier after n-1 equal prices has z = +-sqrt(n-1): sqrt(3) ~ 1.732 for a window of 4.
OUTLIER_Z = math.sqrt(3)


def zscore(**params: Any) -> ZScoreReversion:
    return ZScoreReversion(name="z", symbols=["AAPL"], window=4, qty=5, **params)


def test_zscore_enters_long_when_z_falls_below_minus_entry() -> None:
    z = zscore(entry_z=OUTLIER_Z - 0.01, exit_z=0.5)
    ctx = started(z)

    feed(z, [10, 10, 10, 7])

    assert sides(ctx) == [(BUY, 5.0)]
    assert ctx.signals[0]["strength"] == pytest.approx(OUTLIER_Z)


def test_zscore_does_not_enter_when_z_stays_inside_the_entry_threshold() -> None:
    z = zscore(entry_z=OUTLIER_Z + 0.01, exit_z=0.5)
    ctx = started(z)

    feed(z, [10, 10, 10, 7, 10, 10, 10, 13])

    assert ctx.orders == []


def test_zscore_enters_short_when_z_rises_above_entry() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5)
    ctx = started(z)

    feed(z, [10, 10, 10, 13])

    assert sides(ctx) == [(SELL, 5.0)]


def test_zscore_does_not_short_when_shorting_is_off() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5, allow_short=False)
    ctx = started(z)

    feed(z, [10, 10, 10, 13])

    assert ctx.orders == []


def test_zscore_holds_a_long_while_z_is_below_minus_exit_and_exits_above_it() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5)
    ctx = started(z)
    feed(z, [10, 10, 10, 7])
    ctx.positions["AAPL"] = 5.0

    feed(z, [7])  # window 10,10,7,7: mean 8.5, std 1.5, z = -1 < -0.5: hold
    held = list(ctx.orders)
    feed(z, [9.5])  # window 10,7,7,9.5: mean 8.375, z > 0 >= -0.5: exit

    assert sides(ctx)[: len(held)] == [(BUY, 5.0)]
    assert sides(ctx) == [(BUY, 5.0), (SELL, 5.0)]


def test_zscore_holds_a_short_while_z_is_above_exit_and_covers_below_it() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5)
    ctx = started(z)
    feed(z, [10, 10, 10, 13])
    ctx.positions["AAPL"] = -5.0

    feed(z, [13])  # window 10,10,13,13: z = +1 > 0.5: hold
    assert sides(ctx) == [(SELL, 5.0)]
    feed(z, [10.5])  # window 10,13,13,10.5: mean 11.625, z < 0 <= 0.5: cover

    assert sides(ctx) == [(SELL, 5.0), (BUY, 5.0)]


def test_zscore_sends_nothing_while_an_order_is_in_flight() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5)
    ctx = started(z)
    ctx.inflight.append({"symbol": "AAPL", "side": BUY, "qty": 5.0})

    feed(z, [10, 10, 10, 7])

    assert ctx.orders == []


def test_zscore_refuses_exit_above_entry() -> None:
    with pytest.raises(ConfigError, match=r"exit_z \(3.0\) must not exceed entry_z \(2.0\)"):
        build_strategy("zscore", "z", ["AAPL"], {"entry_z": 2.0, "exit_z": 3.0})


# -- rolling window --------------------------------------------------------------------------------
def test_rolling_window_mean_and_population_std_over_the_last_values() -> None:
    window = RollingWindow(3)

    for value in (1.0, 100.0, 2.0, 4.0, 6.0):
        window.push(value)

    assert window.full
    assert window.mean == pytest.approx(4.0)
    assert window.std == pytest.approx(math.sqrt(8 / 3))


def test_rolling_window_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="window size must be >= 1, got 0"):
        RollingWindow(0)


# -- end to end on the real broker, in virtual time ------------------------------------------------
def hosted(rig: TradingRig, strategy: Strategy) -> StrategyHost:
    host = StrategyHost(rig.core.publish, rig.store, rig.clock, [strategy])
    host.attach(rig.core.bus)
    host.start()
    return host


def test_sma_round_trip_fills_at_next_bar_open_and_books_the_hand_computed_pnl() -> None:
    rig = trading_rig()
    hosted(rig, SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=10))

    for open_, close in [(10, 10), (10, 10), (10, 10), (10, 13), (13.5, 14), (14, 14)]:
        rig.bar(open=open_, close=close)
    assert rig.position() == 10.0  # bought at the open after the cross-up bar
    for open_, close in [(14, 8), (8.5, 8)]:
        rig.bar(open=open_, close=close)

    fills = rig.events(TradeExecuted)
    assert [(f.side, f.qty, f.price) for f in fills] == [(BUY, 10.0, 13.5), (SELL, 10.0, 8.5)]
    assert rig.position() == 0.0
    assert rig.store.get_state("account.realized_pnl") == pytest.approx((8.5 - 13.5) * 10)
    assert len(rig.portfolio.round_trips) == 1


def test_sma_sends_one_order_per_cross_even_while_the_fill_is_pending() -> None:
    rig = trading_rig()
    hosted(rig, SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=10))

    # a cross up, then a bar that is again "above" while the order waits for its fill
    for close in (10, 10, 10, 13, 13, 13):
        rig.bar(open=close, close=close)

    orders = rig.events(OrderSubmitted)
    assert [(o.side, o.qty) for o in orders] == [(BUY, 10.0)]
    assert len(rig.events(SignalDetected)) == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(90, 110).map(float), min_size=5, max_size=60))
def test_sma_position_is_always_flat_or_one_entry_never_short(closes: list[float]) -> None:
    rig = trading_rig()
    hosted(rig, SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=4, qty=3))
    positions = []

    for close in closes:
        rig.bar(open=close, close=close)
        positions.append(rig.position())

    assert set(positions) <= {0.0, 3.0}
    orders = rig.events(OrderSubmitted)
    # orders alternate buy/sell, starting with a buy: never two entries, never a short
    assert [o.side for o in orders] == [BUY if i % 2 == 0 else SELL for i in range(len(orders))]


def test_zscore_trades_long_and_short_end_to_end() -> None:
    rig = trading_rig()
    hosted(
        rig, ZScoreReversion(name="z", symbols=["AAPL"], window=4, entry_z=1.5, exit_z=0.5, qty=5)
    )

    for close in (10, 10, 10, 7, 9.5, 10, 10, 10, 10, 13, 10, 10, 10):
        rig.bar(open=close, close=close)

    # long entry fills at the next open (9.5), exits at 10; short entry at 10, covered at 10
    fills = [(f.side, f.qty, f.price) for f in rig.events(TradeExecuted)]
    assert fills == [(BUY, 5.0, 9.5), (SELL, 5.0, 10.0), (SELL, 5.0, 10.0), (BUY, 5.0, 10.0)]
    assert rig.position() == 0.0
    assert rig.store.get_state("account.realized_pnl") == pytest.approx(0.5 * 5)


# -- live parameter changes ------------------------------------------------------------------------
def test_sma_uses_the_new_window_lengths_after_set_params() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=2, slow=3, qty=1)
    ctx = started(sma)
    feed(sma, [10, 10, 10])

    sma.param.update(fast=3, slow=5)
    # with the old 2/3 windows, 13 would cross up at once; the new 3/5 ones need 5 prices first
    feed(sma, [10, 10, 13])
    assert ctx.orders == []
    feed(sma, [10, 10, 10])  # full: fast 11 > slow 10.6, then fast 10 < slow 10.6
    feed(sma, [16])  # fast 12 > slow 11.8: a cross up on the new averages

    assert sides(ctx) == [(BUY, 1.0)]


def test_zscore_uses_the_new_window_after_set_params() -> None:
    z = zscore(entry_z=1.5, exit_z=0.5)
    ctx = started(z)
    feed(z, [10, 10, 10])

    z.param.update(window=6)  # an outlier among 6 prices has z = sqrt(5) ~ 2.24
    z.param.update(entry_z=2.2)
    feed(z, [10, 10, 10, 10, 10, 7])

    assert sides(ctx) == [(BUY, 5.0)]
