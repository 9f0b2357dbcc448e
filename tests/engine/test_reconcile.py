"""Start-up reconciliation against the broker's own books, with and without outside trades."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.broker import PaperBroker
from engine.broker_account import BrokerAccount, BrokerPosition
from engine.config import BrokerConfig
from engine.reconcile import (
    Reconciler,
    ReconciliationFailed,
    reconcile,
    reconcile_cash,
    reconcile_orders,
)
from state.model import initial_state
from streams.errors import SeamlessError
from streams.events import (
    BUY,
    SELL,
    CashAdjusted,
    OrderCancelled,
    PositionUpdated,
    ReconciliationAdjusted,
)
from tests.factories import order_submitted, restarted_rig, trading_rig


def broker_account(cash: float = 0.0, **positions: tuple[float, float]) -> BrokerAccount:
    return BrokerAccount(
        cash=cash,
        starting_cash=cash,
        commissions=0.0,
        positions={s: BrokerPosition(s, q, p) for s, (q, p) in positions.items()},
        fills=(),
        fill_count=0,
        open_orders={},
    )


def traded_rig(path: Path):
    rig = trading_rig(account_path=path)
    rig.order(BUY, 10)
    rig.order(SELL, 3, symbol="MSFT")
    rig.bar("AAPL", open=100.0)
    rig.bar("MSFT", open=300.0)
    return rig


def test_books_that_agree_need_no_adjustment(tmp_path: Path) -> None:
    rig = traded_rig(tmp_path / "broker.json")
    before = len(rig.journal.events)

    result = Reconciler(rig.core.publish, rig.store, rig.broker, rig.clock).run()

    assert result.in_sync
    assert result.events == ()
    assert len(rig.journal.events) == before


def test_an_external_fill_while_down_is_taken_from_the_broker_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "broker.json"
    rig = traded_rig(path)
    restarted = restarted_rig(rig, advance_s=3_600, account_path=path)
    restarted.broker.inject_external_fill("AAPL", SELL, 4, 110.0, commission=1.0)
    restarted.broker.inject_external_fill("IBM", BUY, 2, 150.0)
    events_before = len(restarted.journal.events)

    result = Reconciler(
        restarted.core.publish, restarted.store, restarted.broker, restarted.clock
    ).run()

    broker = restarted.broker.account()
    for symbol in ("AAPL", "MSFT", "IBM"):
        assert restarted.position(symbol) == broker.position(symbol)
    assert restarted.store.get_state("positions.AAPL.avg_price") == 100.0
    assert restarted.store.get_state("positions.IBM.avg_price") == 150.0
    assert restarted.store.get_state("account.cash") == pytest.approx(broker.cash)
    assert [(a.symbol, a.engine_qty, a.broker_qty) for a in result.adjustments] == [
        ("AAPL", 10.0, 6.0),
        ("IBM", 0.0, 2.0),
    ]
    assert result.cash is not None
    assert result.cash.amount == pytest.approx(4 * 110.0 - 1.0 - 2 * 150.0)
    logged = restarted.journal.events[events_before:]
    assert [e.event_id for e in logged if isinstance(e, ReconciliationAdjusted)] == [
        a.event_id for a in result.adjustments
    ]
    assert [e.reason for e in logged if isinstance(e, CashAdjusted)] == ["reconciliation"]
    assert {e.symbol for e in logged if isinstance(e, PositionUpdated)} == {"AAPL", "IBM"}
    assert all(e.seq > 0 for e in logged)


def test_after_reconciling_a_second_run_finds_nothing(tmp_path: Path) -> None:
    rig = traded_rig(tmp_path / "broker.json")
    rig.broker.inject_external_fill("MSFT", BUY, 3, 290.0)
    reconciler = Reconciler(rig.core.publish, rig.store, rig.broker, rig.clock)

    first = reconciler.run()
    second = reconciler.run()

    assert [a.symbol for a in first.adjustments] == ["MSFT"]
    assert rig.position("MSFT") == 0.0
    assert second.in_sync


def test_reconcile_is_pure_and_reports_quantity_and_price_differences() -> None:
    state = initial_state(1_000.0)
    state = state | {
        "positions": {
            "AAPL": {"qty": 10.0, "avg_price": 100.0, "realized_pnl": 5.0},
            "MSFT": {"qty": 5.0, "avg_price": 300.0, "realized_pnl": 0.0},
            "OLD": {"qty": 0.0, "avg_price": 0.0, "realized_pnl": 7.0},
        }
    }
    account = broker_account(1_000.0, AAPL=(10.0, 101.0), MSFT=(5.0, 300.0))

    adjustments = reconcile(state, account, ts_event=42)

    (only,) = adjustments
    assert (only.symbol, only.broker_qty, only.broker_avg_price, only.ts_event) == (
        "AAPL",
        10.0,
        101.0,
        42,
    )
    assert "average price differs" in only.note
    assert reconcile_cash(state, account) is None


def test_cash_differences_within_tolerance_are_ignored() -> None:
    state = initial_state(1_000.0)

    assert reconcile_cash(state, broker_account(1_000.004)) is None
    adjustment = reconcile_cash(state, broker_account(990.0))
    assert adjustment is not None and adjustment.amount == pytest.approx(-10.0)


def test_orders_open_on_one_side_only_are_cancelled() -> None:
    rig = trading_rig()
    kept = rig.order(BUY, 1, order_type="limit", limit_price=1.0)
    lost = rig.order(BUY, 1, order_type="limit", limit_price=2.0)
    # The broker's books hold ``kept`` and an order the engine never logged, not ``lost``.
    broker_events: list = []
    broker = PaperBroker(broker_events.append, rig.clock, starting_cash=100_000.0)
    broker.submit(kept)
    broker.submit(order_submitted("orphan", qty=1.0, order_type="limit", limit_price=3.0))

    engine_only, broker_only = reconcile_orders(rig.store.get_state(), broker.account())
    result = Reconciler(rig.core.publish, rig.store, broker, rig.clock).run()

    assert (engine_only, broker_only) == ([lost.order_id], ["orphan"])
    assert [(c.order_id, c.reason) for c in result.cancelled] == [
        (lost.order_id, "reconciliation: not working at the broker")
    ]
    assert result.broker_only_orders == ("orphan",)
    assert list(rig.store.get_state("orders")) == [kept.order_id]
    assert list(broker.account().open_orders) == [kept.order_id]
    assert isinstance(broker_events[-1], OrderCancelled)


def test_an_unreadable_broker_account_fails_reconciliation(tmp_path: Path) -> None:
    path = tmp_path / "broker.json"
    path.write_text("[]")
    rig = trading_rig()
    broker = PaperBroker(rig.core.publish, rig.clock, BrokerConfig(), account_path=path)
    before = len(rig.journal.events)

    with pytest.raises(ReconciliationFailed, match="cannot read the broker account") as info:
        Reconciler(rig.core.publish, rig.store, broker, rig.clock).run()

    assert isinstance(info.value, SeamlessError)
    assert len(rig.journal.events) == before
