"""Events: lossless round trips, validation errors that name the field, catalogue coverage."""

from __future__ import annotations

import json

import pytest

from streams import events as ev
from streams.errors import EventError
from streams.events import event_from_dict, event_types

SAMPLES: list[ev.Event] = [
    ev.TickReceived(symbol="AAPL", bid=1.0, ask=1.1, last=1.05, size=3.0, ts_event=10),
    ev.BarReceived(symbol="MSFT", open=1, high=2, low=0.5, close=1.5, volume=100, ts_event=11),
    ev.DataRejected(source="csv", symbol="IBM", field="close", value="nan", reason="NaN price"),
    ev.SignalDetected(strategy="sma", symbol="AAPL", side="buy", strength=0.5, reason="cross"),
    ev.OrderSubmitted(order_id="o1", strategy="sma", symbol="AAPL", side="buy", qty=10),
    ev.OrderSubmitted(
        order_id="o2",
        strategy="sma",
        symbol="AAPL",
        side="sell",
        qty=5,
        order_type="limit",
        limit_price=99.5,
    ),
    ev.OrderAccepted(order_id="o1", strategy="sma", symbol="AAPL"),
    ev.OrderRejected(order_id="o1", strategy="sma", symbol="AAPL", reason="max_position"),
    ev.OrderCancelled(order_id="o1", strategy="sma", symbol="AAPL", reason="halt"),
    ev.TradeExecuted(
        fill_id="f1",
        order_id="o1",
        strategy="sma",
        symbol="AAPL",
        side="buy",
        qty=10,
        price=101.25,
        commission=1.0,
        correlation_id="c1",
        causation_id="o1",
    ),
    ev.PositionUpdated(symbol="AAPL", qty=-10, avg_price=100.0, realized_pnl=12.5),
    ev.PositionClosed(symbol="AAPL", realized_pnl=3.0),
    ev.CashAdjusted(amount=100_000.0, reason="deposit"),
    ev.PnlUpdated(realized=1, unrealized=2, daily=3, equity=4, drawdown=0.1, max_drawdown=0.2),
    ev.DailyLossBreached(daily_pnl=-600.0, limit=-500.0, action="halt"),
    ev.TradingStateChanged(state="halted", previous="active", reason="loss", actor="risk"),
    ev.ReconciliationAdjusted(symbol="AAPL", engine_qty=0, broker_qty=5, broker_avg_price=10),
    ev.StateChanged(path="risk.limits.max_position", value={"a": [1, 2]}, actor="operator"),
    ev.WriteRefused(path="positions.AAPL", actor="viewer", reason="not owner"),
    ev.RunnerStatusChanged(component="runner", status="running", previous="starting"),
    ev.Heartbeat(component="runner", count=3),
    ev.CommandIssued(command="pause", actor="alice", args={"why": "lunch"}),
    ev.CommandRefused(command="flatten", actor="bob", reason="viewer"),
    ev.ErrorRaised(component="strategy:sma", message="boom", error_type="ValueError"),
    ev.DataDropped(source="websocket", count=3, total=7, by_symbol={"AAPL": 2, "MSFT": 1}),
]


def test_every_registered_type_has_a_sample() -> None:
    assert {e.type for e in SAMPLES} == set(event_types())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip_through_json_is_lossless(event: ev.Event) -> None:
    stored = json.loads(json.dumps(event.with_seq(42).to_dict()))
    back = event_from_dict(stored)
    assert back == event.with_seq(42)
    assert type(back) is type(event)
    assert back.topic == event.topic and back.seq == 42


def test_required_names_of_the_plan_exist() -> None:
    names = set(event_types())
    for required in (
        "trade_executed",
        "position_updated",
        "position_closed",
        "signal_detected",
        "state_changed",
        "daily_loss_breached",
    ):
        assert required in names


def test_critical_flags() -> None:
    assert ev.TradeExecuted.CRITICAL and ev.DailyLossBreached.CRITICAL and ev.CommandIssued.CRITICAL
    assert not ev.TickReceived.CRITICAL and not ev.PnlUpdated.CRITICAL


def test_topic_is_derived_from_fields() -> None:
    assert SAMPLES[0].topic == "data.ticks.aapl"
    assert (
        ev.TradeExecuted(
            fill_id="f", order_id="o", strategy="SMA Cross", symbol="X", side="buy", qty=1, price=1
        ).topic
        == "fills.sma_cross"
    )


def test_events_are_immutable() -> None:
    with pytest.raises(AttributeError):
        SAMPLES[0].symbol = "MSFT"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(qty="ten"), "field 'qty' must be a number, got 'ten'"),
        (lambda d: d.pop("symbol"), "missing required field 'symbol'"),
        (lambda d: d.update(bogus=1), "unknown field(s) ['bogus']"),
        (lambda d: d.update(seq=True), "field 'seq' must be an integer"),
        (lambda d: d.update(type="no_such_event"), "unknown event type 'no_such_event'"),
        (lambda d: d.update(price=float("nan")), "field 'price' must not be NaN"),
    ],
)
def test_malformed_payloads_name_the_field(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = SAMPLES[9].to_dict()
    mutate(data)
    with pytest.raises(EventError) as err:
        event_from_dict(data)
    assert message in str(err.value)


def test_non_mapping_payload_is_rejected() -> None:
    with pytest.raises(EventError, match="must be a mapping"):
        event_from_dict(["tick"])  # type: ignore[arg-type]
