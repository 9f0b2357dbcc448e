"""Stop and stop-limit orders, and partial fills against bar volume.

The stop rules are backtrader's (engine/fill_rules.py): the last test places the same stop and
stop-limit orders on the same bars in backtrader and in Seamless, over the bundled AAPL daily
series, and compares every fill.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import param
import pytest

from engine.backtest import run_backtest
from engine.config import BrokerConfig
from engine.fill_rules import STOP, STOP_LIMIT, bar_fill_price
from engine.strategy import Strategy
from streams.events import BUY, SELL, BarReceived, TradeExecuted
from streams.sources import load_sample_bars
from tests.factories import bar, order_submitted, trading_rig


def stop(side: str, stop_price: float, limit: float | None = None) -> Any:
    kind = STOP if limit is None else STOP_LIMIT
    return order_submitted(side=side, order_type=kind, stop_price=stop_price, limit_price=limit)


# -- the rules, bar by bar -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "stop_price", "ohlc", "expected"),
    [
        (BUY, 105.0, (100, 104, 99, 103), None),  # never reached
        (BUY, 105.0, (100, 107, 99, 106), 105.0),  # reached during the bar: at the stop
        (BUY, 105.0, (108, 110, 107, 109), 108.0),  # gapped through: at the open
        (SELL, 95.0, (100, 101, 96, 97), None),
        (SELL, 95.0, (100, 101, 93, 94), 95.0),
        (SELL, 95.0, (92, 93, 90, 91), 92.0),
    ],
)
def test_a_stop_fills_at_the_stop_or_at_a_gapped_open(
    side: str, stop_price: float, ohlc: tuple[float, ...], expected: float | None
) -> None:
    o, h, low, c = ohlc
    price, triggered = bar_fill_price(stop(side, stop_price), bar(open=o, high=h, low=low, close=c))

    assert price == expected
    assert triggered is (expected is not None)


@pytest.mark.parametrize(
    ("side", "stop_price", "limit", "ohlc", "expected", "triggered"),
    [
        (BUY, 105.0, 106.0, (100, 107, 99, 106), 105.0, True),  # limit above stop: at the stop
        (BUY, 105.0, 104.0, (106, 108, 103, 107), 104.0, True),  # gapped: a limit at once
        (BUY, 105.0, 104.0, (106, 108, 105, 107), None, True),  # gapped, limit not reached
        (BUY, 105.0, 104.0, (104, 107, 99, 103.5), 104.0, True),  # falling bar closes below L
        (BUY, 105.0, 102.0, (100, 107, 99, 103), None, True),  # falling bar closes above L
        (BUY, 105.0, 104.0, (100, 107, 99, 106), None, True),  # rising bar: stop > limit
        (SELL, 95.0, 94.0, (100, 101, 93, 94), 95.0, True),
        (SELL, 95.0, 96.0, (96, 101, 93, 97), 96.0, True),  # rising bar closes above L
        (SELL, 95.0, 96.0, (100, 101, 93, 94), None, True),  # falling bar: stop < limit
        (SELL, 95.0, 96.0, (92, 97, 91, 93), 96.0, True),  # gapped: a limit at once
    ],
)
def test_a_stop_limit_triggers_as_a_stop_and_fills_as_a_limit(
    side: str,
    stop_price: float,
    limit: float,
    ohlc: tuple[float, ...],
    expected: float | None,
    triggered: bool,
) -> None:
    o, h, low, c = ohlc
    bar_ = bar(open=o, high=h, low=low, close=c)

    assert bar_fill_price(stop(side, stop_price, limit), bar_) == (expected, triggered)


def test_a_triggered_stop_limit_is_a_limit_on_later_bars() -> None:
    order = stop(BUY, 105.0, 104.0)

    assert bar_fill_price(order, bar(open=103, high=103.5, low=102, close=103), True) == (
        103.0,
        True,
    )
    assert bar_fill_price(order, bar(open=103, high=103.5, low=102, close=103)) == (None, False)


# -- through the engine ----------------------------------------------------------------------
def test_a_stop_order_through_the_broker_fills_on_the_bar_that_reaches_it() -> None:
    rig = trading_rig()
    rig.bar(open=100.0, close=100.0)
    rig.order(side=BUY, qty=10, order_type=STOP, stop_price=105.0)
    rig.bar(open=101.0, close=103.0, high=104.0)  # not reached
    rig.bar(open=104.0, close=106.0, high=107.0)  # reached: at the stop

    fills = rig.events(TradeExecuted)

    assert [(f.side, f.qty, f.price) for f in fills] == [(BUY, 10.0, 105.0)]
    assert rig.position() == 10.0


def test_fills_are_capped_at_a_share_of_each_bars_volume_and_the_rest_waits() -> None:
    rig = trading_rig(broker_config=BrokerConfig(account_path="", max_volume_fraction=0.1))
    rig.bar(open=100.0)
    order = rig.order(side=BUY, qty=250)
    for volume in (1_000.0, 1_000.0, 2_000.0):
        rig.bar(open=101.0, volume=volume)

    fills = rig.events(TradeExecuted)

    assert [(f.fill_id, f.qty, f.leaves_qty) for f in fills] == [
        (f"{order.order_id}-f1", 100.0, 150.0),
        (f"{order.order_id}-f2", 100.0, 50.0),
        (f"{order.order_id}-f3", 50.0, 0.0),
    ]
    assert rig.position() == 250.0
    assert order.order_id not in rig.store.get_state("orders")


def test_a_partly_filled_order_goes_on_after_a_restart(tmp_path: Any) -> None:
    path = tmp_path / "broker.json"
    config = BrokerConfig(account_path="", max_volume_fraction=0.1)
    rig = trading_rig(broker_config=config, account_path=path)
    rig.bar(open=100.0)
    order = rig.order(side=BUY, qty=250)
    rig.bar(open=101.0, volume=1_000.0)
    assert rig.store.get_state(f"orders.{order.order_id}.leaves_qty") == 150.0

    from tests.factories import restarted_rig

    again = restarted_rig(rig, broker_config=config, account_path=path)
    again.bar(open=102.0, volume=10_000.0)

    fills = again.events(TradeExecuted)
    assert [(f.fill_id, f.qty, f.leaves_qty) for f in fills[-1:]] == [
        (f"{order.order_id}-f2", 150.0, 0.0)
    ]
    assert again.position() == 250.0


# -- the same orders in backtrader -------------------------------------------------------------
#: (bar index, side, order type, stop as a fraction of the close, limit as a fraction)
SCRIPT = [
    (i, side, kind, stop_f, limit_f)
    for k, i in enumerate(range(40, 3_200, 60))
    for side, kind, stop_f, limit_f in [
        (BUY, STOP, 1.01, None),
        (SELL, STOP, 0.99, None),
        (BUY, STOP_LIMIT, 1.01, 1.015),
        (SELL, STOP_LIMIT, 0.99, 0.985),
        (BUY, STOP_LIMIT, 1.02, 1.005),
        (SELL, STOP_LIMIT, 0.98, 0.995),
    ][k % 6 : k % 6 + 1]
]


def levels(close: float, stop_f: float, limit_f: float | None) -> tuple[float, float | None]:
    return round(close * stop_f, 2), (round(close * limit_f, 2) if limit_f else None)


class ScriptedStops(Strategy):
    """Places the orders of :data:`SCRIPT` on their bars (a test strategy)."""

    qty = param.Number(default=10.0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._bars = 0
        self._script = {i: (side, kind, s, lim) for i, side, kind, s, lim in SCRIPT}

    def on_bar(self, bar: BarReceived) -> None:
        entry = self._script.get(self._bars)
        self._bars += 1
        if entry is None:
            return
        side, kind, stop_f, limit_f = entry
        stop_price, limit = levels(bar.close, stop_f, limit_f)
        self.ctx.submit_order(
            bar.symbol, side, self.qty, order_type=kind, stop_price=stop_price, limit_price=limit
        )


def backtrader_stop_fills(frame: pd.DataFrame) -> list[tuple[Any, str, float, float]]:
    import backtrader as bt

    fills: list[tuple[Any, str, float, float]] = []

    class Scripted(bt.Strategy):  # type: ignore[misc]
        def next(self) -> None:
            i = len(self) - 1
            for index, side, kind, stop_f, limit_f in SCRIPT:
                if index != i:
                    continue
                stop_price, limit = levels(self.data.close[0], stop_f, limit_f)
                exectype = bt.Order.Stop if kind == STOP else bt.Order.StopLimit
                place = self.buy if side == BUY else self.sell
                place(size=10, exectype=exectype, price=stop_price, plimit=limit)

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                for bit in order.executed.exbits:
                    side = BUY if order.isbuy() else SELL
                    fills.append((self.data.datetime.date(0), side, bit.price, abs(bit.size)))

    cerebro = bt.Cerebro(stdstats=False)
    bars = frame.set_index(pd.DatetimeIndex(frame["timestamp"]).tz_convert(None))
    cerebro.adddata(bt.feeds.PandasData(dataname=bars[["open", "high", "low", "close", "volume"]]))
    cerebro.addstrategy(Scripted)
    cerebro.broker.setcash(1e12)
    cerebro.run()
    return sorted(fills, key=lambda f: (f[0], f[1], f[2]))


def test_stop_fills_equal_backtraders_for_the_same_orders() -> None:
    frame = load_sample_bars("AAPL")

    result = run_backtest(
        frame, strategy="tests.engine.test_stop_orders.ScriptedStops", symbol="AAPL"
    )
    ours = sorted(
        (pd.Timestamp(t["ts"], unit="ns").date(), t["side"], t["price"], t["qty"])
        for t in result.trades
    )

    reference = backtrader_stop_fills(frame)
    assert len(reference) > 20  # the script's orders really fill
    assert ours == reference


def test_a_bad_stop_order_is_rejected_naming_the_field() -> None:
    rig = trading_rig()
    rig.bar(open=100.0)
    order = rig.order(side=BUY, qty=1, order_type=STOP)

    from streams.events import OrderRejected

    rejected = [e for e in rig.events(OrderRejected) if e.order_id == order.order_id]
    assert rejected and "stop_price" in rejected[0].reason
    assert dataclasses.asdict(order)["stop_price"] is None
