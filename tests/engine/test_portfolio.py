"""Positions after fills (long, short, flips), their events, round trips, and conservation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import BrokerConfig
from streams.events import (
    BUY,
    SELL,
    PositionClosed,
    PositionUpdated,
    TradeExecuted,
)
from tests.factories import reconciliation, restarted_rig, trading_rig


def trade(rig, side: str, qty: float, price: float, symbol: str = "AAPL") -> None:
    """Fill a market order at ``price`` (the next bar's open)."""
    rig.order(side, qty, symbol=symbol)
    rig.bar(symbol, open=price)


def test_each_fill_publishes_the_position_the_store_holds() -> None:
    rig = trading_rig()

    trade(rig, BUY, 10, 100.0)
    trade(rig, BUY, 30, 110.0)

    updates = rig.events(PositionUpdated)
    assert [(u.qty, u.avg_price) for u in updates] == [(10.0, 100.0), (40.0, 107.5)]
    assert updates[-1].causation_id == rig.events(TradeExecuted)[-1].event_id
    assert dict(rig.store.get_state("positions.AAPL")) == {
        "qty": 40.0,
        "avg_price": 107.5,
        "realized_pnl": 0.0,
    }
    assert rig.events(PositionClosed) == []


def test_returning_to_zero_publishes_position_closed_with_the_realized_total() -> None:
    rig = trading_rig()
    trade(rig, BUY, 10, 100.0)
    trade(rig, SELL, 4, 110.0)

    trade(rig, SELL, 6, 95.0)

    (closed,) = rig.events(PositionClosed)
    assert closed.realized_pnl == pytest.approx(4 * 10.0 - 6 * 5.0)
    assert rig.events(PositionUpdated)[-1].qty == 0.0
    assert rig.position() == 0.0


def test_a_short_gains_when_price_falls() -> None:
    rig = trading_rig()

    trade(rig, SELL, 10, 100.0)
    trade(rig, BUY, 10, 92.0)

    assert rig.events(PositionUpdated)[0].qty == -10.0
    assert rig.events(PositionClosed)[0].realized_pnl == pytest.approx(80.0)


def test_a_flip_through_zero_realizes_the_old_side_and_opens_the_new_at_the_fill() -> None:
    rig = trading_rig()
    trade(rig, SELL, 10, 100.0)

    trade(rig, BUY, 15, 90.0)

    pos = rig.store.get_state("positions.AAPL")
    assert (pos["qty"], pos["avg_price"], pos["realized_pnl"]) == (5.0, 90.0, pytest.approx(100.0))
    assert rig.events(PositionClosed) == []  # it never rested at zero
    (trip,) = rig.portfolio.round_trips
    assert (trip.symbol, trip.side, trip.realized_pnl, trip.fills) == ("AAPL", "short", 100.0, 2)


def test_round_trips_split_a_flips_commission_by_quantity() -> None:
    config = BrokerConfig(account_path="", commission_per_unit=0.1)
    rig = trading_rig(broker_config=config)
    trade(rig, BUY, 10, 100.0)  # commission 1.0
    trade(rig, SELL, 30, 105.0)  # commission 3.0: 1.0 closes the long, 2.0 opens the short

    trade(rig, BUY, 20, 104.0)  # commission 2.0

    long_trip, short_trip = rig.portfolio.round_trips
    assert long_trip.side == "long"
    assert long_trip.realized_pnl == pytest.approx(50.0)
    assert long_trip.commissions == pytest.approx(2.0)
    assert long_trip.net_pnl == pytest.approx(48.0)
    assert short_trip.side == "short"
    assert short_trip.realized_pnl == pytest.approx(20.0)
    assert short_trip.commissions == pytest.approx(4.0)
    assert short_trip.max_qty == 20.0
    assert short_trip.opened_ns == long_trip.closed_ns


def test_a_reconciliation_is_stated_as_a_position_update() -> None:
    rig = trading_rig()

    rig.core.publish(
        reconciliation("MSFT", engine_qty=0.0, broker_qty=-3.0, broker_avg_price=250.0)
    )

    (update,) = rig.events(PositionUpdated)
    assert (update.symbol, update.qty, update.avg_price) == ("MSFT", -3.0, 250.0)


def test_positions_open_at_attach_are_taken_as_open_trips() -> None:
    first = trading_rig()
    trade(first, BUY, 10, 100.0)
    second = restarted_rig(first)

    trade(second, SELL, 10, 103.0)

    (trip,) = second.portfolio.round_trips
    assert (trip.opened_ns, trip.realized_pnl) == (0, pytest.approx(30.0))


steps = st.lists(
    st.tuples(
        st.sampled_from(("AAPL", "MSFT")),
        st.sampled_from((BUY, SELL)),
        st.integers(1, 50),
        st.integers(5_000, 15_000).map(lambda cents: cents / 100),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    slippage=st.sampled_from((0.0, 5.0)),
    per_unit=st.sampled_from((0.0, 0.01)),
    minimum=st.sampled_from((0.0, 1.0)),
)
def test_realized_over_round_trips_equals_cash_change_net_of_costs(
    steps: list[tuple[str, str, int, float]], slippage: float, per_unit: float, minimum: float
) -> None:
    config = BrokerConfig(
        account_path="", slippage_bps=slippage, commission_per_unit=per_unit, commission_min=minimum
    )
    rig = trading_rig(broker_config=config)
    cash_start = rig.store.get_state("account.cash")
    for symbol, side, qty, price in steps:
        trade(rig, side, qty, price, symbol)
    for symbol in ("AAPL", "MSFT"):  # end flat
        qty = rig.position(symbol)
        if qty:
            trade(rig, SELL if qty > 0 else BUY, abs(qty), 100.0, symbol)

    fills = rig.events(TradeExecuted)
    costs = sum(f.commission for f in fills)
    cash_change = rig.store.get_state("account.cash") - cash_start
    trips = rig.portfolio.round_trips
    assert rig.position("AAPL") == 0.0 and rig.position("MSFT") == 0.0
    assert sum(t.realized_pnl for t in trips) - costs == pytest.approx(cash_change, abs=1e-6)
    assert sum(t.net_pnl for t in trips) == pytest.approx(cash_change, abs=1e-6)
    assert sum(t.commissions for t in trips) == pytest.approx(costs, abs=1e-9)
    assert rig.store.get_state("account.realized_pnl") == pytest.approx(
        sum(t.realized_pnl for t in trips), abs=1e-6
    )
    assert rig.broker.account().cash == pytest.approx(rig.store.get_state("account.cash"))
    assert rig.store.get_state("pnl.realized") == pytest.approx(cash_change, abs=1e-6)
