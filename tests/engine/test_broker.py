"""The paper broker on a real synchronous core: fill timing, prices, costs, its own account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.broker import PaperBroker
from engine.broker_account import BrokerAccountError, BrokerFill, BrokerLedger
from engine.config import BrokerConfig
from streams.clock import ManualClock
from streams.events import (
    BUY,
    SELL,
    ErrorRaised,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    TradeExecuted,
)
from tests.factories import T0, TradingRig, order_cancelled, order_submitted, trading_rig


def test_market_order_on_bars_fills_at_the_next_bar_open_not_the_current_one() -> None:
    rig = trading_rig()
    rig.bar(open=100.0, close=105.0)  # the bar the strategy decided on
    order = rig.order(BUY, 10)

    assert rig.events(OrderAccepted)[0].order_id == order.order_id
    assert rig.events(TradeExecuted) == []

    rig.bar(open=106.0, close=104.0)

    (fill,) = rig.events(TradeExecuted)
    assert (fill.order_id, fill.side, fill.qty, fill.price) == (order.order_id, BUY, 10.0, 106.0)
    assert fill.fill_id == f"{order.order_id}-f1"
    assert fill.leaves_qty == 0.0
    assert rig.position() == 10.0
    assert rig.store.get_state("orders") == {}


def test_bars_of_another_symbol_do_not_fill() -> None:
    rig = trading_rig()
    rig.order(BUY, 10, symbol="AAPL")

    rig.bar("MSFT", open=300.0)

    assert rig.events(TradeExecuted) == []
    rig.bar("AAPL", open=101.0)
    assert [f.price for f in rig.events(TradeExecuted)] == [101.0]


def test_with_a_known_quote_buys_fill_at_once_at_the_ask_and_sells_at_the_bid() -> None:
    rig = trading_rig()
    rig.quote(bid=99.9, ask=100.1)

    rig.order(BUY, 10)
    rig.order(SELL, 4)

    assert [(f.side, f.price) for f in rig.events(TradeExecuted)] == [(BUY, 100.1), (SELL, 99.9)]
    assert rig.position() == 6.0


def test_without_a_quote_a_market_order_waits_for_the_next_tick() -> None:
    rig = trading_rig()
    rig.order(SELL, 5)
    assert rig.events(TradeExecuted) == []

    rig.quote(bid=50.0, ask=50.2)

    assert [(f.side, f.price) for f in rig.events(TradeExecuted)] == [(SELL, 50.0)]
    assert rig.position() == -5.0


def test_fill_on_known_quote_off_waits_for_the_next_tick() -> None:
    rig = trading_rig(broker_config=BrokerConfig(account_path="", fill_on_known_quote=False))
    rig.quote(bid=99.9, ask=100.1)
    rig.order(BUY, 10)
    assert rig.events(TradeExecuted) == []

    rig.quote(bid=100.4, ask=100.6)

    assert [f.price for f in rig.events(TradeExecuted)] == [100.6]


def test_buy_limit_on_bars_waits_for_the_low_to_cross_and_fills_at_the_better_price() -> None:
    rig = trading_rig()
    rig.bar(open=100.0)
    rig.order(BUY, 10, order_type="limit", limit_price=99.0)

    rig.bar(open=100.0, close=100.5, low=99.5)
    assert rig.events(TradeExecuted) == []
    rig.bar(open=100.0, close=99.5, low=98.5)

    assert [f.price for f in rig.events(TradeExecuted)] == [99.0]


def test_sell_limit_gapping_through_fills_at_the_open() -> None:
    rig = trading_rig()
    rig.bar(open=100.0)
    rig.order(SELL, 3, order_type="limit", limit_price=101.0)

    rig.bar(open=103.0, close=102.0)

    assert [f.price for f in rig.events(TradeExecuted)] == [103.0]


def test_limit_on_ticks_fills_only_once_the_quote_crosses() -> None:
    rig = trading_rig()
    rig.quote(bid=100.0, ask=100.2)
    rig.order(BUY, 10, order_type="limit", limit_price=100.0)  # checked at once: not marketable
    rig.quote(bid=99.9, ask=100.1)
    assert rig.events(TradeExecuted) == []

    rig.quote(bid=99.7, ask=99.9)

    assert [f.price for f in rig.events(TradeExecuted)] == [99.9]


def test_slippage_and_commission_arithmetic_reaches_the_fill_and_the_cash() -> None:
    config = BrokerConfig(
        account_path="",
        slippage_bps=10.0,
        commission_per_unit=0.01,
        commission_bps=1.0,
        commission_min=1.0,
    )
    rig = trading_rig(broker_config=config)
    rig.order(BUY, 100)
    rig.bar(open=50.0)
    rig.order(SELL, 100)
    rig.bar(open=60.0)

    buy, sell = rig.events(TradeExecuted)
    assert buy.price == pytest.approx(50.05)  # 50 + 10 bp
    assert buy.commission == pytest.approx(100 * 0.01 + 100 * 50.05 * 1e-4)  # 1.0 + 0.5005
    assert sell.price == pytest.approx(59.94)
    assert sell.commission == pytest.approx(1.0 + 0.5994)
    account = rig.store.get_state("account")
    expected_cash = 100_000.0 - 100 * 50.05 - buy.commission + 100 * 59.94 - sell.commission
    assert account["cash"] == pytest.approx(expected_cash)
    assert account["commissions"] == pytest.approx(buy.commission + sell.commission)
    assert rig.broker.account().cash == pytest.approx(expected_cash)


def test_minimum_commission_applies_to_small_fills() -> None:
    rig = trading_rig(broker_config=BrokerConfig(account_path="", commission_min=2.5))
    rig.order(BUY, 1)
    rig.bar(open=10.0)

    assert rig.events(TradeExecuted)[0].commission == 2.5


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"qty": 0.0}, "qty 0.0 must be greater than 0"),
        ({"qty": -3.0}, "qty -3.0"),
        ({"side": "short"}, "side 'short'"),
        ({"order_type": "stop_loss"}, "order_type 'stop_loss'"),
        ({"order_type": "limit"}, "limit order needs a limit_price"),
    ],
)
def test_invalid_orders_are_rejected_with_the_reason(fields: dict, words: str) -> None:
    rig = trading_rig()

    order = rig.order(**fields)

    (rejected,) = rig.events(OrderRejected)
    assert rejected.order_id == order.order_id
    assert rejected.reason.startswith("broker: ")
    assert words in rejected.reason
    assert rig.events(OrderAccepted) == []
    assert order.order_id not in rig.store.get_state("orders")
    rig.bar(open=100.0)
    assert rig.events(TradeExecuted) == []


def test_a_duplicate_order_id_is_rejected() -> None:
    rig = trading_rig()
    first = rig.order(BUY, 1)

    accepted = rig.broker.submit(first)

    assert accepted is False
    assert "already submitted" in rig.events(OrderRejected)[0].reason


def test_cancel_stops_a_working_order_and_unknown_ids_are_refused() -> None:
    rig = trading_rig()
    order = rig.order(BUY, 10)

    assert rig.broker.cancel(order.order_id, "changed my mind") is True
    assert rig.broker.cancel(order.order_id) is False
    assert rig.broker.cancel("no-such-order") is False

    (cancelled,) = rig.events(OrderCancelled)
    assert (cancelled.order_id, cancelled.reason) == (order.order_id, "changed my mind")
    rig.bar(open=100.0)
    assert rig.events(TradeExecuted) == []
    assert rig.broker.open_orders() == []
    assert rig.store.get_state("orders") == {}


def test_a_cancel_published_on_the_bus_by_someone_else_also_stops_the_order() -> None:
    rig = trading_rig()
    order = rig.order(BUY, 10)

    rig.core.publish(order_cancelled(order.order_id, strategy="test", reason="by strategy"))
    rig.bar(open=100.0)

    assert rig.events(TradeExecuted) == []
    assert rig.broker.account().open_orders == {}


def test_account_is_saved_atomically_and_reloaded_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "broker" / "account.json"
    rig = trading_rig(account_path=path, starting_cash=50_000.0)
    rig.order(BUY, 10)
    rig.bar(open=100.0)
    rig.order(SELL, 4, order_type="limit", limit_price=120.0)  # left working

    reloaded = PaperBroker(
        rig.core.publish, rig.clock, BrokerConfig(), account_path=path, starting_cash=1.0
    ).account()

    assert reloaded.cash == pytest.approx(50_000.0 - 1_000.0)
    assert reloaded.starting_cash == 50_000.0  # the file wins over the argument
    assert reloaded.positions["AAPL"].qty == 10.0
    assert reloaded.positions["AAPL"].avg_price == 100.0
    assert [f.fill_id for f in reloaded.fills] == [rig.events(TradeExecuted)[0].fill_id]
    assert list(reloaded.open_orders) == [rig.broker.open_orders()[0].order_id]
    assert reloaded == rig.broker.account()
    assert sorted(p.name for p in path.parent.iterdir()) == ["account.json"]  # no temp files
    assert json.loads(path.read_text())["format"] == 1


def test_a_reloaded_broker_keeps_filling_its_working_orders(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    first = trading_rig(account_path=path)
    order = first.order(BUY, 5, order_type="limit", limit_price=95.0)

    second = trading_rig(account_path=path)
    second.bar(open=96.0, low=94.0, close=95.5)

    (fill,) = second.events(TradeExecuted)
    assert (fill.order_id, fill.price) == (order.order_id, 95.0)
    assert second.broker.account().position("AAPL") == 5.0


def test_an_unreadable_account_file_makes_the_broker_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text('{"format": 1, "cash": "lots"}')
    clock = ManualClock(T0)
    published: list = []

    broker = PaperBroker(published.append, clock, BrokerConfig(), account_path=path)

    with pytest.raises(BrokerAccountError, match=r"account\.json.*'cash'.*'lots'"):
        broker.account()
    assert broker.submit(order_submitted()) is False
    assert isinstance(published[0], OrderRejected)
    assert "account unavailable" in published[0].reason


def test_an_account_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text("{not json")

    with pytest.raises(BrokerAccountError, match="not valid JSON"):
        BrokerLedger(path)


def test_a_failed_save_rejects_the_order_and_leaves_the_books_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    rig = trading_rig(account_path=path)
    rig.order(BUY, 10)
    rig.bar(open=100.0)
    before = rig.broker.account()
    _break(path)

    order = rig.order(BUY, 5)

    rejected = rig.events(OrderRejected)
    assert [r.order_id for r in rejected] == [order.order_id]
    assert "cannot record the order" in rejected[0].reason
    assert rig.broker.account() == before


def test_a_fill_that_cannot_be_booked_is_not_published_and_retries(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    rig = trading_rig(account_path=path)
    rig.order(BUY, 10)
    before = rig.broker.account()
    _break(path)

    rig.bar(open=100.0)

    assert rig.events(TradeExecuted) == []
    assert [e.component for e in rig.events(ErrorRaised)] == ["broker"]
    assert rig.broker.account() == before
    path.rmdir()
    rig.bar(open=101.0)
    assert [f.price for f in rig.events(TradeExecuted)] == [101.0]
    assert rig.broker.account().position("AAPL") == 10.0


@pytest.fixture
def quoted(tmp_path: Path) -> tuple[TradingRig, Path]:
    """A rig whose broker keeps its account in ``account.json``, quoted at 99.9/100.1: a market
    order fills at once."""
    path = tmp_path / "account.json"
    rig = trading_rig(account_path=path)
    rig.quote(bid=99.9, ask=100.1)
    return rig, path


def test_an_order_that_fills_at_once_is_saved_with_its_fill_in_one_write(
    quoted: tuple[TradingRig, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, path = quoted
    writes: list[str] = []
    real_save = BrokerLedger.save

    def counted(ledger: BrokerLedger) -> None:
        real_save(ledger)
        writes.append(path.read_text())

    monkeypatch.setattr(BrokerLedger, "save", counted)

    order = rig.order(BUY, 10)

    assert len(writes) == 1
    saved = json.loads(writes[0])
    assert [f["order_id"] for f in saved["fills"]] == [order.order_id]
    assert saved["open_orders"] == {}
    accepted, (fill,) = rig.events(OrderAccepted), rig.events(TradeExecuted)
    assert [a.order_id for a in accepted] == [order.order_id]
    assert rig.journal.events.index(accepted[0]) < rig.journal.events.index(fill)


def test_an_immediate_fill_that_cannot_be_saved_leaves_the_order_saved_and_working(
    quoted: tuple[TradingRig, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, path = quoted
    real_save = BrokerLedger.save
    failures = [BrokerAccountError("disk full (injected)")]

    def first_fails(ledger: BrokerLedger) -> None:
        if failures:
            raise failures.pop()
        real_save(ledger)

    monkeypatch.setattr(BrokerLedger, "save", first_fails)

    order = rig.order(BUY, 10)

    assert rig.events(TradeExecuted) == []
    assert [a.order_id for a in rig.events(OrderAccepted)] == [order.order_id]
    assert [e.component for e in rig.events(ErrorRaised)] == ["broker"]
    assert list(json.loads(path.read_text())["open_orders"]) == [order.order_id]
    rig.quote(bid=100.0, ask=100.2)
    assert [f.price for f in rig.events(TradeExecuted)] == [100.2]
    assert json.loads(path.read_text())["open_orders"] == {}


def test_an_immediate_fill_and_its_order_that_cannot_be_saved_reject_the_order(
    quoted: tuple[TradingRig, Path],
) -> None:
    rig, path = quoted
    before = rig.broker.account()
    path.mkdir()  # no file saved yet: a folder in its place makes every save fail

    order = rig.order(BUY, 10)

    assert rig.events(TradeExecuted) == []
    assert rig.events(OrderAccepted) == []
    assert [r.order_id for r in rig.events(OrderRejected)] == [order.order_id]
    assert rig.broker.account() == before
    assert rig.broker.open_orders() == []


def test_an_external_fill_changes_only_the_brokers_account() -> None:
    rig = trading_rig()
    events_before = len(rig.journal.events)
    state_before = rig.store.get_state()

    fill = rig.broker.inject_external_fill("MSFT", SELL, 7, 300.0, commission=1.5)

    account = rig.broker.account()
    assert fill.external is True
    assert account.position("MSFT") == -7.0
    assert account.cash == pytest.approx(100_000.0 + 2_100.0 - 1.5)
    assert account.fills[-1] == fill
    assert len(rig.journal.events) == events_before
    assert rig.store.get_state() is state_before


@pytest.mark.parametrize(
    ("side", "qty", "price"), [("hold", 1.0, 1.0), (BUY, 0.0, 1.0), (BUY, 1.0, -2.0)]
)
def test_external_fills_with_bad_values_are_refused(side: str, qty: float, price: float) -> None:
    rig = trading_rig()

    with pytest.raises(ValueError):
        rig.broker.inject_external_fill("AAPL", side, qty, price)
    assert rig.broker.account().fill_count == 0


def test_only_the_most_recent_fills_are_kept_but_all_are_counted() -> None:
    ledger = BrokerLedger(None, starting_cash=1_000.0, max_fills_kept=2)
    fills = [BrokerFill(f"f{i}", "o", "AAPL", BUY, 1.0, 10.0, 0.0, i) for i in range(3)]

    for fill in fills:
        ledger.book_fill(fill)

    account = ledger.snapshot()
    assert account.fill_count == 3
    assert account.fills == tuple(fills[1:])
    assert account.cash == pytest.approx(970.0)
    with pytest.raises(ValueError, match="max_fills_kept"):
        BrokerLedger(None, max_fills_kept=0)


def _break(path: Path) -> None:
    """Make saves fail even as root: renaming a file onto a directory is refused."""
    path.unlink()
    path.mkdir()


def test_the_file_holds_exactly_the_books_after_rollovers_and_a_failed_save(
    tmp_path: Path,
) -> None:
    # The file is built from each fill's JSON encoded once; it must still equal the books.
    path = tmp_path / "account.json"
    ledger = BrokerLedger(path, starting_cash=1_000.0, max_fills_kept=3)
    fills = [
        BrokerFill(f"f{i}", f"o{i}", "AAPL" if i % 2 else "MSFT", BUY, 1.0, 10.0 + i, 0.5, i)
        for i in range(5)
    ]
    for fill in fills[:4]:
        ledger.book_fill(fill)
    assert json.loads(path.read_text()) == ledger.to_dict()
    _break(path)
    with pytest.raises(BrokerAccountError):
        ledger.book_fill(fills[4])  # rolled back: the oldest kept fill comes back
    path.rmdir()
    ledger.save()
    assert json.loads(path.read_text()) == ledger.to_dict()
    assert [f["fill_id"] for f in json.loads(path.read_text())["fills"]] == ["f1", "f2", "f3"]
    ledger.book_fill(fills[4])
    reloaded = BrokerLedger(path, max_fills_kept=3)
    assert reloaded.to_dict() == ledger.to_dict()
    assert reloaded.file_text() == ledger.file_text()
