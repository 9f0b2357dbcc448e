"""The store's read model: versions per path, snapshots, reads from any thread, path
subscriptions and the param views."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from state.journal import MemoryJournal
from state.model import initial_state, state_to_dict
from state.store import StateStore
from streams.events import Event
from tests.factories import (
    FakeClock,
    buy,
    loss_breached,
    order_cancelled,
    order_submitted,
    pnl_updated,
    runner_status,
    sell,
    tick,
    trading_state,
)


# -- versions and snapshot ---------------------------------------------------------------------
def test_versions_per_path_with_updated_at(store: StateStore, clock: FakeClock) -> None:
    store.record(tick("AAPL", 100.0))
    clock.advance(1.0)
    store.record(buy(10, 100.0, symbol="MSFT"))
    clock.advance(1.0)
    store.record(tick("AAPL", 101.0))

    assert store.version == 3
    assert store.path_version("prices.AAPL") == 3
    assert store.path_version("prices.AAPL.last") == 3
    assert store.path_version("prices") == 3
    assert store.path_version("positions.MSFT") == 2
    assert store.path_version("account") == 2
    assert store.path_version("positions.AAPL") == 0
    assert store.updated_at("positions.MSFT") == 1_000 + 1_000_000_000
    assert store.updated_at("prices.AAPL") == 1_000 + 2_000_000_000
    assert store.updated_at("") == 1_000 + 2_000_000_000


def test_unchanged_value_does_not_bump_path_version(store: StateStore) -> None:
    store.record(tick("AAPL", 100.0, ts_event=5))
    store.record(tick("AAPL", 100.0, ts_event=5))

    assert store.version == 2
    assert store.path_version("prices.AAPL") == 1


def test_snapshot_is_a_consistent_triple(store: StateStore) -> None:
    store.record(buy(10, 100.0))
    store.record(tick())

    seq, version, data = store.snapshot()

    assert (seq, version) == (2, 2)
    assert data == state_to_dict(store.get_state())
    assert type(data["positions"]) is dict


# -- reading ---------------------------------------------------------------------------------
def test_get_state_is_immutable_and_never_changes_later(store: StateStore) -> None:
    store.record(buy(10, 100.0))
    positions = store.get_state("positions")

    with pytest.raises(TypeError):
        positions["AAPL"] = {"qty": 0}
    with pytest.raises(TypeError):
        positions["AAPL"]["qty"] = 0
    store.record(buy(5, 100.0))

    assert positions["AAPL"]["qty"] == 10.0
    assert store.get_state("positions.AAPL.qty") == 15.0


def test_get_state_missing_path(store: StateStore) -> None:
    assert store.get_state("positions.NONE", None) is None
    with pytest.raises(KeyError, match="NONE"):
        store.get_state("positions.NONE")


def test_concurrent_readers_never_see_torn_state(clock: FakeClock) -> None:
    # Each fill at a fixed price moves position and cash together in one event, so
    # cash + qty * price stays equal to the starting cash in every consistent state.
    store = StateStore(MemoryJournal(), clock=clock, initial=initial_state(1_000_000.0))
    fills = [buy(1, 10.0) if i % 3 else sell(2, 10.0) for i in range(3000)]
    stop = threading.Event()
    torn: list[tuple[float, float]] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            state = store.get_state()
            qty = state["positions"]["AAPL"]["qty"] if "AAPL" in state["positions"] else 0.0
            cash = state["account"]["cash"]
            if cash + qty * 10.0 != 1_000_000.0:
                torn.append((cash, qty))
            seq, version, data = store.snapshot()
            if not (seq == version == data["meta"]["seq"]):
                torn.append((seq, version))
            reads[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for event in fills:
            store.record(event)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert torn == []
    assert reads[0] > 0
    assert store.version == 3000


# -- subscriptions ---------------------------------------------------------------------------
def collect(store: StateStore, pattern: str) -> tuple[list[tuple[str, Any]], Any]:
    seen: list[tuple[str, Any]] = []
    sub = store.subscribe(pattern, lambda path, value, event: seen.append((path, value)))
    return seen, sub


def test_subscriber_sees_changes_only(store: StateStore) -> None:
    seen, _ = collect(store, "prices.AAPL")

    store.record(tick("AAPL", 100.0, ts_event=1))
    store.record(tick("AAPL", 100.0, ts_event=1))
    store.record(tick("MSFT", 50.0))
    store.record(tick("AAPL", 101.0, ts_event=2))

    assert [(p, v["last"]) for p, v in seen] == [("prices.AAPL", 100.0), ("prices.AAPL", 101.0)]


def test_wildcard_subscription(store: StateStore) -> None:
    seen, _ = collect(store, "positions.*")

    store.record(buy(1, 10.0, symbol="AAPL"))
    store.record(tick("AAPL", 11.0))
    store.record(sell(2, 20.0, symbol="MSFT"))

    assert [p for p, _ in seen] == ["positions.AAPL", "positions.MSFT"]
    assert seen[1][1]["qty"] == -2.0


def test_deeper_pattern_fires_only_when_its_leaf_changes(store: StateStore) -> None:
    seen, _ = collect(store, "prices.*.last")

    store.record(tick("AAPL", 100.0, ts_event=1))
    store.record(tick("AAPL", 100.0, ts_event=2))  # ts changed, last did not
    store.record(tick("AAPL", 99.0, ts_event=3))

    assert seen == [("prices.AAPL.last", 100.0), ("prices.AAPL.last", 99.0)]


def test_section_pattern_fires_once_per_event(store: StateStore) -> None:
    seen, _ = collect(store, "*")

    store.record(buy(1, 10.0, order_id="o1"))

    assert sorted(p for p, _ in seen) == ["account", "positions"]


def test_removed_path_is_reported_as_none(store: StateStore) -> None:
    store.record(order_submitted("o1"))
    seen, _ = collect(store, "orders.*")

    store.record(order_cancelled("o1"))

    assert seen == [("orders.o1", None)]


def test_generic_path_subscription(store: StateStore) -> None:
    seen, _ = collect(store, "risk.limits.max_position")

    store.update_state("risk.limits.max_position", 100, actor="operator")
    store.update_state("risk.limits.other", 1, actor="operator")
    store.update_state("risk.limits.max_position", 100, actor="operator")
    store.update_state("risk.limits.max_position", 200, actor="operator")

    assert seen == [("risk.limits.max_position", 100), ("risk.limits.max_position", 200)]


def test_dispose_stops_callbacks_and_is_idempotent(store: StateStore) -> None:
    seen, sub = collect(store, "prices.*")
    store.record(tick("AAPL", 1.0))

    sub.dispose()
    sub.dispose()
    store.record(tick("AAPL", 2.0))

    assert len(seen) == 1
    assert sub.disposed
    assert store.subscription_count == 0


def test_dispose_inside_callback(store: StateStore) -> None:
    calls: list[str] = []
    holder: list[Any] = []

    def once(path: str, value: Any, event: Event) -> None:
        calls.append(path)
        holder[0].dispose()

    holder.append(store.subscribe("*", once))
    store.record(buy(1, 10.0))
    store.record(buy(1, 10.0))

    assert len(calls) == 1


def test_failing_subscriber_is_isolated_and_reported(clock: FakeClock) -> None:
    errors: list[tuple[BaseException, str, Event | None]] = []
    store = StateStore(
        MemoryJournal(),
        clock=clock,
        on_error=lambda exc, where, ev: errors.append((exc, where, ev)),
    )
    seen_after: list[str] = []

    def broken(path: str, value: Any, event: Event) -> None:
        raise RuntimeError("boom")

    store.subscribe("positions.*", broken)
    store.subscribe("positions.*", lambda path, value, event: seen_after.append(path))

    stored = store.record(buy(1, 10.0))
    store.record(buy(1, 10.0))

    assert stored is not None
    assert seen_after == ["positions.AAPL", "positions.AAPL"]
    assert store.subscriber_errors == 2
    assert isinstance(errors[0][0], RuntimeError)
    assert "positions.*" in errors[0][1]
    assert errors[0][2] == stored
    assert store.get_state("positions.AAPL.qty") == 2.0


def test_failing_on_error_hook_does_not_break_record(clock: FakeClock) -> None:
    def bad_hook(exc: BaseException, where: str, ev: Event | None) -> None:
        raise ValueError("hook broken too")

    store = StateStore(MemoryJournal(), clock=clock, on_error=bad_hook)
    store.subscribe("*", lambda p, v, e: 1 / 0)

    assert store.record(buy(1, 1.0)) is not None
    assert store.subscriber_errors == 2  # positions and account


def test_subscribe_from_another_thread(store: StateStore) -> None:
    seen: list[str] = []
    t = threading.Thread(target=lambda: store.subscribe("prices.*", lambda p, v, e: seen.append(p)))
    t.start()
    t.join()

    store.record(tick())

    assert seen == ["prices.AAPL"]


# -- param views -----------------------------------------------------------------------------
def test_critical_event_updates_views_at_once_in_one_batch(
    store: StateStore, clock: FakeClock
) -> None:
    batches: list[list[str]] = []
    store.param.watch(
        lambda *events: batches.append(sorted(e.name for e in events)),
        ["positions", "account", "view_version", "seq", "trading_state"],
    )

    store.record(buy(10, 100.0))

    assert store.positions["AAPL"]["qty"] == 10.0
    assert store.account["cash"] == 9_000.0
    assert store.view_version == 1
    assert store.seq == 1
    assert store.last_update_ns == clock.now_ns
    assert batches == [["account", "positions", "seq", "view_version"]]


def test_trading_state_and_runner_views(store: StateStore) -> None:
    store.record(runner_status("feed", "running"))
    store.record(loss_breached(action="halt"))

    assert store.runner == {"feed": "running"}
    assert store.trading_state == "halted"
    assert "daily loss" in store.trading_reason

    store.record(trading_state("reducing", reason="operator"))

    assert store.trading_state == "reducing"


def test_prices_and_pnl_views_are_throttled(store: StateStore, clock: FakeClock) -> None:
    store.record(tick("AAPL", 100.0))
    store.record(pnl_updated(equity=10_050.0))

    assert store.prices == {}
    assert store.pnl["equity"] == 10_000.0
    assert store.view_version == 0

    clock.advance(0.3)
    store.record(tick("AAPL", 101.0))
    assert store.prices == {}

    clock.advance(0.3)
    store.record(tick("AAPL", 102.0))
    assert store.prices["AAPL"]["last"] == 102.0
    assert store.pnl["equity"] == 10_050.0
    assert store.view_version == 4

    store.record(tick("AAPL", 103.0))
    assert store.prices["AAPL"]["last"] == 102.0


def test_critical_event_does_not_push_throttled_views_early(
    store: StateStore, clock: FakeClock
) -> None:
    store.record(tick("AAPL", 100.0))

    store.record(buy(1, 100.0))

    assert store.positions["AAPL"]["qty"] == 1.0
    assert store.prices == {}


def test_flush_views_publishes_pending_prices(store: StateStore) -> None:
    store.record(tick("AAPL", 100.0))
    fired: list[str] = []
    store.param.watch(lambda e: fired.append(e.name), ["prices"])

    store.flush_views()
    store.flush_views()

    assert store.prices["AAPL"]["last"] == 100.0
    assert store.view_version == 1
    assert fired == ["prices"]


def test_views_are_new_immutable_objects(store: StateStore) -> None:
    store.record(buy(1, 10.0))
    first = store.positions

    store.record(buy(1, 10.0))

    assert store.positions is not first
    assert first["AAPL"]["qty"] == 1.0
    with pytest.raises(TypeError):
        store.positions["X"] = 1


def test_values_view_holds_generic_sections(store: StateStore) -> None:
    store.update_state("risk.limits.max_position", 7, actor="operator")

    assert store.values == {"risk": {"limits": {"max_position": 7}}}


def test_failing_view_watcher_is_isolated(store: StateStore) -> None:
    store.param.watch(lambda e: 1 / 0, ["positions"])

    stored = store.record(buy(1, 10.0))

    assert stored is not None
    assert store.subscriber_errors == 1
    assert store.get_state("positions.AAPL.qty") == 1.0


def test_zero_interval_publishes_every_event(journal: MemoryJournal, clock: FakeClock) -> None:
    store = StateStore(journal, clock=clock, view_interval_s=0.0)

    store.record(tick("AAPL", 1.0))

    assert store.prices["AAPL"]["last"] == 1.0
