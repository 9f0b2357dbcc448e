"""Pre-trade limits and the daily-loss breaker, through real broker, portfolio, P&L and store."""

from __future__ import annotations

import dataclasses

import pytest

from engine.config import RiskConfig, build
from streams.errors import ConfigError
from streams.events import (
    ACTIVE,
    BUY,
    HALTED,
    REDUCING,
    SELL,
    DailyLossBreached,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    TradeExecuted,
    TradingStateChanged,
)
from tests.factories import trading_rig, trading_state

OFF = RiskConfig(
    max_position=0.0, max_order_notional=0.0, max_orders_per_second=0, daily_loss_limit=0.0
)


def limits(**kw: object) -> RiskConfig:
    return dataclasses.replace(OFF, **kw)


def rejection(rig, order: OrderSubmitted) -> str | None:
    found = [r.reason for r in rig.events(OrderRejected) if r.order_id == order.order_id]
    return found[0] if found else None


def accepted(rig, order: OrderSubmitted) -> bool:
    return any(a.order_id == order.order_id for a in rig.events(OrderAccepted))


# -- max position -----------------------------------------------------------------------------
def test_max_position_counts_the_position_and_open_orders_on_the_same_side() -> None:
    rig = trading_rig(risk_config=limits(max_position=100.0))
    rig.order(BUY, 80)
    rig.bar(open=10.0)
    rig.order(BUY, 15)  # working

    too_big = rig.order(BUY, 10)
    fits = rig.order(BUY, 5)

    assert rejection(rig, too_big) == (
        "risk: max_position: AAPL position would be 105 (position 80, open orders 15, "
        "order +10), limit 100"
    )
    assert accepted(rig, fits)
    assert too_big.order_id not in rig.store.get_state("orders")


def test_max_position_applies_to_shorts_and_lets_reducing_orders_through() -> None:
    rig = trading_rig(risk_config=limits(max_position=50.0))
    rig.order(SELL, 50)
    rig.bar(open=10.0)

    deeper = rig.order(SELL, 1)
    cover = rig.order(BUY, 100)  # -50 -> +50: within the limit on the other side

    assert "position would be -51" in (rejection(rig, deeper) or "")
    assert accepted(rig, cover)


def test_a_per_symbol_position_limit_overrides_the_default() -> None:
    rig = trading_rig(risk_config=limits(max_position=1_000.0, position_limits={"BTC": 2.0}))

    small = rig.order(BUY, 3, symbol="BTC")
    other = rig.order(BUY, 3, symbol="AAPL")

    assert "limit 2" in (rejection(rig, small) or "")
    assert accepted(rig, other)


# -- max notional -----------------------------------------------------------------------------
def test_max_order_notional_uses_the_last_price() -> None:
    rig = trading_rig(risk_config=limits(max_order_notional=10_000.0))
    rig.bar(open=100.0, close=100.0)

    too_big = rig.order(BUY, 101)
    fits = rig.order(BUY, 100)

    assert rejection(rig, too_big) == (
        "risk: max_order_notional: 10,100.00 (101 x 100) exceeds limit 10,000.00"
    )
    assert accepted(rig, fits)


def test_max_order_notional_sizes_a_limit_order_at_its_limit_price() -> None:
    rig = trading_rig(risk_config=limits(max_order_notional=10_000.0))
    rig.bar(open=10.0, close=10.0)

    order = rig.order(BUY, 100, order_type="limit", limit_price=150.0)

    assert "15,000.00 (100 x 150)" in (rejection(rig, order) or "")


def test_without_a_known_price_an_order_cannot_be_sized_and_is_refused() -> None:
    rig = trading_rig(risk_config=limits(max_order_notional=10_000.0))

    order = rig.order(BUY, 1, symbol="NEW")

    assert rejection(rig, order) == "risk: max_order_notional: no price known for NEW to size it"


def test_require_price_off_lets_an_unpriced_order_through() -> None:
    rig = trading_rig(risk_config=limits(max_order_notional=10_000.0, require_price=False))

    assert accepted(rig, rig.order(BUY, 1, symbol="NEW"))


# -- rate -------------------------------------------------------------------------------------
def test_max_orders_per_second_is_a_sliding_window_on_the_clock() -> None:
    rig = trading_rig(risk_config=limits(max_orders_per_second=3))
    first = [rig.order(BUY, 1) for _ in range(3)]

    fourth = rig.order(BUY, 1)
    rig.clock.advance(0.999)
    still = rig.order(BUY, 1)
    rig.clock.advance(0.002)
    later = rig.order(BUY, 1)

    assert all(accepted(rig, o) for o in first)
    assert rejection(rig, fourth) == "risk: max_orders_per_second: 4 orders within 1s, limit 3"
    assert rejection(rig, still) is not None
    assert accepted(rig, later)


# -- trading state ----------------------------------------------------------------------------
def test_while_halted_every_order_is_refused() -> None:
    rig = trading_rig()
    rig.core.publish(trading_state(HALTED, reason="operator says stop"))

    order = rig.order(BUY, 1)

    assert rejection(rig, order) == "risk: trading_state: trading is halted (operator says stop)"
    assert rig.events(OrderAccepted) == []


def test_while_reducing_only_orders_that_shrink_the_position_pass() -> None:
    rig = trading_rig()
    rig.order(BUY, 10)
    rig.bar(open=100.0)
    rig.core.publish(trading_state(REDUCING, reason="reduce only"))

    grow = rig.order(BUY, 1)
    flip = rig.order(SELL, 11)
    shrink = rig.order(SELL, 6)
    too_much = rig.order(SELL, 5)  # 6 already working on that side

    assert "reducing only" in (rejection(rig, grow) or "")
    assert "does not reduce position 10" in (rejection(rig, flip) or "")
    assert accepted(rig, shrink)
    assert "open same-side orders -6" in (rejection(rig, too_much) or "")


def test_a_malformed_order_is_left_to_the_broker_to_reject() -> None:
    rig = trading_rig(risk_config=limits(max_position=10.0, max_order_notional=1.0))

    order = rig.order(BUY, -5)

    (rejected,) = rig.events(OrderRejected)
    assert rejected.order_id == order.order_id
    assert rejected.reason == "broker: qty -5 must be greater than 0"


# -- daily loss -------------------------------------------------------------------------------
def breach_rig(**kw: object):
    config = limits(daily_loss_limit=1_000.0, **kw)
    rig = trading_rig(risk_config=config)
    rig.order(BUY, 100)
    rig.bar(open=100.0, close=100.0)
    return rig


def test_a_daily_loss_breach_halts_flattens_and_stays_halted_until_an_operator_reset() -> None:
    rig = breach_rig(flatten_on_breach=True)
    rig.order(BUY, 5, order_type="limit", limit_price=50.0)  # a strategy order left working

    rig.bar(open=95.0, close=89.0)  # daily -1100

    (breach,) = rig.events(DailyLossBreached)
    assert (breach.daily_pnl, breach.limit, breach.action) == (-1_100.0, -1_000.0, "halt+flatten")
    (change,) = rig.events(TradingStateChanged)
    assert (change.state, change.previous, change.actor) == (HALTED, ACTIVE, "risk")
    assert rig.store.get_state("trading.state") == HALTED
    assert [c.reason for c in rig.events(OrderCancelled)] == [change.reason]
    flatten = [o for o in rig.events(OrderSubmitted) if o.strategy == "risk"]
    assert [(o.side, o.qty, o.actor) for o in flatten] == [(SELL, 100.0, "risk")]
    assert accepted(rig, flatten[0])

    rig.bar(open=88.0, close=80.0)  # the flatten order fills; P&L keeps updating
    rig.bar(open=79.0, close=70.0)

    assert rig.position() == 0.0
    assert rig.events(TradeExecuted)[-1].order_id == flatten[0].order_id
    assert len(rig.events(DailyLossBreached)) == 1
    assert rejection(rig, rig.order(BUY, 1)) is not None

    reset = rig.risk.reset("alice")

    assert reset is not None
    assert (reset.state, reset.previous, reset.actor) == (ACTIVE, HALTED, "alice")
    assert rig.store.get_state("trading.state") == ACTIVE
    assert accepted(rig, rig.order(BUY, 1))
    assert rig.risk.reset("alice") is None  # already active


def test_after_a_reset_only_a_further_full_loss_trips_the_breaker_again() -> None:
    rig = breach_rig()
    rig.bar(open=95.0, close=89.0)  # -1100: halted, position kept (no flatten)
    assert rig.position() == 100.0
    rig.risk.reset("alice")

    rig.bar(open=89.0, close=85.0)  # -1500: less than 1000 beyond the reset point
    assert len(rig.events(DailyLossBreached)) == 1
    rig.bar(open=85.0, close=78.0)  # -2200: 1100 beyond the reset point

    second = rig.events(DailyLossBreached)[-1]
    assert len(rig.events(DailyLossBreached)) == 2
    assert second.limit == pytest.approx(-2_100.0)
    assert rig.store.get_state("trading.state") == HALTED


def test_breach_action_reduce_allows_only_reducing_orders() -> None:
    rig = breach_rig(breach_action="reduce")

    rig.bar(open=95.0, close=89.0)

    assert rig.events(DailyLossBreached)[0].action == "reduce"
    assert rig.store.get_state("trading.state") == REDUCING
    assert rejection(rig, rig.order(BUY, 1)) is not None
    assert accepted(rig, rig.order(SELL, 100))


def test_a_breach_in_the_same_round_as_an_order_refuses_that_order() -> None:
    rig = breach_rig()
    late = OrderSubmitted(
        order_id="late", strategy="test", symbol="AAPL", side=BUY, qty=1.0
    )  # published by a strategy reacting to the same bar
    rig.core.bus.subscribe("data.bars.*", lambda e: rig.core.publish(late))

    rig.bar(open=95.0, close=89.0)

    assert rejection(rig, late) is not None


def test_flatten_all_twice_does_not_overshoot() -> None:
    rig = trading_rig()
    rig.order(BUY, 10)
    rig.order(SELL, 4, symbol="MSFT")
    rig.bar("AAPL", open=100.0)
    rig.bar("MSFT", open=200.0)

    first = rig.risk.flatten_all("bob", "operator flatten")
    second = rig.risk.flatten_all("bob", "operator flatten")
    rig.bar("AAPL", open=101.0)
    rig.bar("MSFT", open=199.0)

    assert sorted((o.symbol, o.side, o.qty) for o in first) == [
        ("AAPL", SELL, 10.0),
        ("MSFT", BUY, 4.0),
    ]
    assert second == []
    assert {o.actor for o in first} == {"bob"}
    assert (rig.position("AAPL"), rig.position("MSFT")) == (0.0, 0.0)
    assert rig.risk.flatten_all("bob") == []


def test_halt_by_an_operator_publishes_the_change_once() -> None:
    rig = trading_rig()

    change = rig.risk.halt("alice", "maintenance")

    assert change is not None and change.state == HALTED
    assert rig.risk.halt("alice", "again") is None
    assert rig.store.get_state("trading") == {
        "state": HALTED,
        "reason": "maintenance",
        "actor": "alice",
        "ts": change.ts_event,
    }


def test_breach_and_state_events_are_in_the_journal_in_order() -> None:
    rig = breach_rig()

    rig.bar(open=95.0, close=89.0)

    types = [e.type for e in rig.journal.events]
    breach_at = types.index("daily_loss_breached")
    assert types[breach_at + 1] == "trading_state_changed"
    assert rig.journal.events[breach_at].seq < rig.journal.events[breach_at + 1].seq


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"max_position": -1}, "risk.max_position: expected a value >= 0.0"),
        ({"breach_action": "panic"}, "risk.breach_action: expected one of"),
        ({"max_orders_per_second": 1.5}, "risk.max_orders_per_second: expected an integer"),
        ({"position_limits": {"AAPL": "many"}}, "risk.position_limits.AAPL: expected a number"),
    ],
)
def test_bad_risk_config_is_refused_naming_the_key(data: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        build(RiskConfig, data, "risk")
