"""Time travel on the Analytics tab, without a browser: the seq slider is debounced, the
restore runs off the session's loop, and its result reaches the tables only through the
session's bridge, on the loop."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import parse_config
from engine.kernel import Kernel, Mode
from panel_app.history import MISSING, fmt_ns
from panel_app.push import SessionBridge
from panel_app.services import release_services, services_for
from panel_app.views.analytics import FILTER_DEBOUNCE_S, AnalyticsView
from panel_app.views.time_travel import TIME_TRAVEL_DEBOUNCE_S, time_travel_rows
from streams.events import BUY, SELL, TradeExecuted
from tests.panel_app.test_push import CapturingDoc, RecordingLoop

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    config = parse_config(
        {
            "storage": {"db_path": str(tmp_path / "engine.duckdb")},
            "broker": {"account_path": str(tmp_path / "broker.json")},
            "feed": {"kind": "none", "symbols": ["AAPL", "MSFT"]},
            "strategies": [],
            "runner": {"heartbeat_interval_s": 3_600.0},  # no events but the test's
            "state": {"starting_cash": 10_000.0},
            "dashboard": {"prefs_dir": str(tmp_path / "prefs")},
        },
        env={},
    )
    k = Kernel(config, mode=Mode.LIVE).start()
    yield k
    release_services(k)
    k.stop()


def trade(kernel: Kernel, n: int, symbol: str, side: str, qty: float, price: float) -> int:
    kernel.publish(
        TradeExecuted(
            fill_id=f"f{n}",
            order_id=f"o{n}",
            strategy="manual",
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            ts_event=T0 + n * 1_000_000_000,
        )
    )
    assert kernel.bus.join(10)
    return int(kernel.store.last_seq)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_loop(loop: RecordingLoop, doc: CapturingDoc) -> None:
    """What the session's Tornado loop does with what other threads handed it."""
    loop.run()
    doc.run_pending()


def settle(view: AnalyticsView, loop: RecordingLoop, doc: CapturingDoc, seq: int) -> None:
    """Play the session's loop until the view shows the state as of ``seq``; between loop
    runs (other threads at work) the view must not change."""
    tt = view.time_travel
    deadline = time.monotonic() + 20.0
    while tt.result is None or tt.result["seq"] != seq:
        assert time.monotonic() < deadline, f"timed out waiting for seq {seq} to be shown"
        shown = (tt.result, tt.positions.object)
        time.sleep(0.01)
        assert (tt.result, tt.positions.object) == shown, (
            "the worker must not touch the session's widgets; only the loop applies results"
        )
        run_loop(loop, doc)


def qty_cell(html_text: str, symbol: str) -> str:
    row = re.search(rf'<tr data-key="{symbol}">(.*?)</tr>', html_text)
    assert row is not None, f"no {symbol} row in {html_text}"
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))[1]


def test_the_slider_shows_the_state_as_of_a_seq_restored_off_the_loop(kernel: Kernel) -> None:
    seq_buy = trade(kernel, 1, "AAPL", BUY, 10, 100.0)
    assert kernel.snapshotter is not None and kernel.snapshotter.snapshot_now() is not None
    seq_msft = trade(kernel, 2, "MSFT", BUY, 5, 300.0)
    seq_sell = trade(kernel, 3, "AAPL", SELL, 4, 110.0)
    last = int(kernel.store.last_seq)

    services = services_for(kernel)
    doc, loop = CapturingDoc(), RecordingLoop()
    bridge = SessionBridge(doc, name="tt", notifier=lambda *a: None, loop=loop)
    view = AnalyticsView(services, bridge, 20, kernel=kernel)
    tt = view.time_travel
    view.activate()
    assert (tt.slider.end, tt.slider.value, tt.seq_input.value) == (last, last, last)
    time.sleep(0.5)  # longer than the debounce: opening the tab restores nothing
    assert tt.requests == 0 and tt.result is None
    empty_positions = tt.positions.object

    # A drag: many values within the debounce window start one restore, of the last value.
    started = time.monotonic()
    for value in range(last, seq_msft - 1, -1):
        tt.slider.value = value
    drag_s = time.monotonic() - started
    assert tt.seq_input.value == seq_msft  # the seq box follows the slider
    assert tt.positions.loading
    wait_for(
        lambda: services.history.cache.get(("state_at", seq_msft)) is not MISSING,
        "the restore on the worker",
    )
    time.sleep(0.1)
    assert tt.result is None and tt.positions.object == empty_positions, (
        "the worker must not touch the session's widgets; only the loop applies the result"
    )
    settle(view, loop, doc, seq_msft)
    if drag_s < TIME_TRAVEL_DEBOUNCE_S:  # (a machine too busy to drag that fast: no count)
        assert tt.requests == 1
    expected = kernel.state_at(seq_msft)
    assert tt.result == expected
    assert not tt.positions.loading
    assert qty_cell(tt.positions.object, "AAPL") == "10"
    assert qty_cell(tt.positions.object, "MSFT") == "5"
    cash = expected["state"]["account"]["cash"]
    assert cash == pytest.approx(10_000.0 - 10 * 100.0 - 5 * 300.0)
    assert f"{cash:,.2f}" in tt.summary.object
    assert f'data-seq="{seq_msft}"' in tt.readout.object
    assert fmt_ns(expected["ts"]) in tt.readout.object  # the event's time and type
    assert expected["type"] in tt.readout.object

    # The seq box: as of the first fill (restored from the snapshot taken right after it).
    requests = tt.requests
    tt.seq_input.value = seq_buy
    assert tt.slider.value == seq_buy
    settle(view, loop, doc, seq_buy)
    assert tt.requests == requests + 1
    assert qty_cell(tt.positions.object, "AAPL") == "10"
    assert "MSFT" not in tt.positions.object
    assert "snapshot at seq" in tt.readout.object

    # "Latest" after the engine moved on: the range grows and the newest state is shown.
    seq_more = trade(kernel, 4, "MSFT", SELL, 5, 310.0)
    tt.refresh_range(move=True)
    assert tt.slider.end == seq_more >= seq_sell
    settle(view, loop, doc, seq_more)
    assert tt.result is not None
    assert tt.result["state"] == kernel.state_at(seq_more)["state"]
    assert qty_cell(tt.positions.object, "AAPL") == "6"
    assert "MSFT" in tt.positions.object  # flat now, but with a realized P&L

    # Another session at a seq already restored gets it from the shared cache.
    restores = services.history.restores
    other = AnalyticsView(services, SessionBridge(None, name="tt2"), 20, kernel=kernel)
    other.activate()
    other.time_travel.slider.value = seq_buy
    wait_for(lambda: other.time_travel.result is not None, "the other session's result")
    assert other.time_travel.result == kernel.state_at(seq_buy)
    assert services.history.restores == restores
    bridge.dispose()


def test_time_travel_rows_list_open_positions_orders_and_the_account() -> None:
    state: dict[str, Any] = {
        "positions": {
            "MSFT": {"qty": 0.0, "avg_price": 0.0, "realized_pnl": 0.0},  # never traded: hidden
            "AAPL": {"qty": 3.0, "avg_price": 100.0, "realized_pnl": 5.0},
        },
        "prices": {"AAPL": {"last": 101.5}},
        "orders": {"o2": {"order_id": "o2", "ts": 2}, "o1": {"order_id": "o1", "ts": 1}},
        "account": {"cash": 700.0, "commissions": 1.0},
        "pnl": {"equity": 1004.5, "realized": 5.0, "unrealized": 4.5, "daily": 9.5},
        "trading": {"state": "active"},
    }
    rows = time_travel_rows({"state": state})
    assert rows["positions"] == [
        {"qty": 3.0, "avg_price": 100.0, "realized_pnl": 5.0, "symbol": "AAPL", "last": 101.5}
    ]
    assert [o["order_id"] for o in rows["orders"]] == ["o1", "o2"]
    assert rows["summary"][0]["cash"] == 700.0 and rows["summary"][0]["trading"] == "active"


def test_a_view_without_an_engine_that_can_time_travel_says_so(kernel: Kernel) -> None:
    services = services_for(kernel)

    class NoTimeTravel:
        store = kernel.store

    view = AnalyticsView(services, SessionBridge(None, name="t"), 20, kernel=NoTimeTravel())
    view.activate()
    tt = view.time_travel
    assert tt.slider.disabled and "not available" in tt.readout.object


def test_history_state_at_restores_each_seq_once_and_one_at_a_time() -> None:
    import threading

    from panel_app.aggregates import TradeAggregator
    from panel_app.history import HistoryService

    history = HistoryService(None, TradeAggregator(), ttl_s=60)
    running: list[int] = []
    overlap: list[int] = []

    def restore(seq: int) -> dict[str, Any]:
        running.append(seq)
        if len(running) > 1:
            overlap.append(seq)
        time.sleep(0.1)
        running.remove(seq)
        return {"seq": min(seq, 5)}  # the log ends at seq 5

    threads = [
        threading.Thread(target=history.state_at, args=(seq, restore)) for seq in (3, 3, 4, 3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [], "two restores ran at once"
    assert history.restores == 2  # seq 3 once (the others waited and got it cached), seq 4
    assert history.state_at(3, restore) == {"seq": 3} and history.restores == 2
    assert history.state_at(9, restore) == {"seq": 5}  # beyond the end: the log may grow
    assert history.state_at(9, restore) == {"seq": 5}
    assert history.restores == 4


def test_the_topic_filter_searches_once_typing_stops_and_skips_unfinished_patterns(
    kernel: Kernel,
) -> None:
    trade(kernel, 1, "AAPL", BUY, 10, 100.0)
    services = services_for(kernel)
    doc, loop = CapturingDoc(), RecordingLoop()
    bridge = SessionBridge(doc, name="filter", notifier=lambda *a: None, loop=loop)
    view = AnalyticsView(services, bridge, 20, kernel=kernel)

    for typed in ("f", "fi", "fills", "fills.", "fills.*"):  # one keystroke at a time
        view.topic.value_input = typed
    wait_for(lambda: view.typed_searches == 1, "the search once typing stopped")
    deadline = time.monotonic() + 10
    while not len(view.events.value) and time.monotonic() < deadline:
        run_loop(loop, doc)
        time.sleep(0.02)
    view.topic.value_input = "fills."  # unfinished: not searched
    time.sleep(3 * FILTER_DEBOUNCE_S)

    assert view.topic.value == "fills.*"
    assert set(view.events.value["topic"]) == {"fills.manual"}
    assert view.typed_searches == 1
    bridge.dispose()
