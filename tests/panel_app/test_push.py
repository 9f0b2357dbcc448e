"""SessionBridge without a browser: coalescing by key, one toast per drain, clean dispose."""

from __future__ import annotations

import time
from typing import Any

import pytest
from bokeh.document import Document

from panel_app.push import SessionBridge
from panel_app.push_support import once_per_event
from panel_app.toasts import Toast, merge_toasts
from state.read_model import watcher_count
from tests.factories import buy


class CapturingDoc(Document):
    """A document whose next-tick callbacks are run by the test, not by a server loop."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Any] = []
        self.timeouts: list[tuple[Any, int]] = []

    def add_next_tick_callback(self, callback: Any) -> Any:  # type: ignore[override]
        self.pending.append(callback)
        return callback

    def add_timeout_callback(self, callback: Any, timeout_milliseconds: int) -> Any:  # type: ignore[override]
        self.timeouts.append((callback, timeout_milliseconds))
        return callback

    def run_pending(self) -> int:
        callbacks, self.pending = self.pending, []
        for callback in callbacks:
            callback()
        return len(callbacks)


def make_bridge(
    **options: Any,
) -> tuple[SessionBridge, CapturingDoc, list[tuple[str, str, int]]]:
    doc = CapturingDoc()
    shown: list[tuple[str, str, int]] = []
    bridge = SessionBridge(
        doc, name="t", notifier=lambda k, m, d: shown.append((k, m, d)), **options
    )
    return bridge, doc, shown


def test_keyed_updates_coalesce_to_the_newest_and_unkeyed_all_run_in_order() -> None:
    bridge, doc, _ = make_bridge()
    seen: list[str] = []
    for i in range(5):
        bridge.post(lambda i=i: seen.append(f"pnl{i}"), key="pnl")
    bridge.post(lambda: seen.append("a"))
    bridge.post(lambda: seen.append("b"))
    assert len(doc.pending) == 1, "one next-tick callback per drain, however many posts"
    assert doc.run_pending() == 1
    assert seen == ["pnl4", "a", "b"]
    assert bridge.stats.coalesced == 4
    assert bridge.stats.applied == 3
    assert bridge.stats.drains == 1
    bridge.post(lambda: seen.append("c"))
    assert len(doc.pending) == 1
    doc.run_pending()
    assert seen[-1] == "c"


def test_a_failing_update_does_not_stop_the_others() -> None:
    bridge, doc, _ = make_bridge()
    seen: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    bridge.post(boom)
    bridge.post(lambda: seen.append(1))
    doc.run_pending()
    assert seen == [1]
    assert bridge.stats.failed == 1


def test_at_most_one_toast_per_drain_most_severe_wins_and_sticky_stays() -> None:
    bridge, doc, shown = make_bridge()
    for i in range(20):
        bridge.toast("info", f"trade {i}")
    doc.run_pending()
    assert shown == [("info", "trade 19 | trade 18 | trade 17 | trade 16 | +16 more", 4_000)]
    bridge.toast("info", "trade x")
    bridge.toast("error", "Daily loss limit breached", duration=0)
    bridge.toast("info", "trade y")
    doc.run_pending()  # urgent: not held back by the rate limit
    assert shown[-1] == ("error", "Daily loss limit breached | trade y | trade x", 0)
    assert bridge.stats.toasts_posted == 23
    assert bridge.stats.toasts_shown == 2


def test_ordinary_toasts_are_rate_limited_and_held_ones_shown_later() -> None:
    # A long interval: the second toast comes within it however slow the machine is.
    bridge, doc, shown = make_bridge(toast_interval_s=60.0)
    bridge.toast("info", "first")
    doc.run_pending()
    bridge.toast("info", "second")
    bridge.toast("success", "third")
    doc.run_pending()
    assert [m for _, m, _ in shown] == ["first"]  # within toast_interval_s: held
    assert len(doc.timeouts) == 1
    callback, delay_ms = doc.timeouts.pop()
    assert 59_000 < delay_ms <= 60_000  # shown when the interval since "first" is over
    callback()
    assert shown[-1] == ("success", "third | second", 4_000)


def test_without_the_held_toast_timer_held_toasts_wait_for_flush_held_toasts() -> None:
    bridge, doc, shown = make_bridge(held_toast_timer=False, toast_interval_s=60.0)
    bridge.toast("info", "first")
    doc.run_pending()
    bridge.toast("info", "second")
    doc.run_pending()
    assert [m for _, m, _ in shown] == ["first"]
    assert doc.timeouts == []  # no message of their own: the session's tick shows them
    bridge.flush_held_toasts()
    assert shown[-1] == ("info", "second", 4_000)
    bridge.flush_held_toasts()  # nothing held any more: nothing shown again
    assert len(shown) == 2


def test_merge_toasts_single_and_empty() -> None:
    assert merge_toasts([]) is None
    only = Toast("warning", "w", 10)
    assert merge_toasts([only]) is only


def test_once_per_event_computes_once_for_all_sessions() -> None:
    calls: list[int] = []
    event = object()
    for _ in range(10):
        value = once_per_event(event, "row", lambda: calls.append(1) or {"x": 1})
    assert value == {"x": 1}
    assert len(calls) == 1
    assert once_per_event(object(), "row", lambda: 2) == 2


def test_toasts_and_posts_raised_by_a_drain_join_it_not_another_drain() -> None:
    bridge, doc, shown = make_bridge()
    seen: list[str] = []

    def fill() -> None:  # like the dashboard's trade flush: an update that raises a toast
        seen.append("fill")
        bridge.toast("info", "Trade BUY 1 AAPL")
        bridge.post(lambda: seen.append("follow-up"))

    bridge.post(fill, key="trades")
    assert doc.run_pending() == 1
    assert seen == ["fill", "follow-up"]
    assert shown == [("info", "Trade BUY 1 AAPL", 4_000)]
    assert bridge.stats.drains == 1
    assert doc.pending == [], "nothing left for a second drain"


def test_a_drain_stops_after_max_passes_and_schedules_the_rest() -> None:
    bridge, doc, _ = make_bridge()
    seen: list[int] = []

    def again(i: int) -> None:
        seen.append(i)
        bridge.post(lambda: again(i + 1))

    bridge.post(lambda: again(0))
    doc.run_pending()
    assert seen == list(range(SessionBridge.MAX_PASSES))
    assert len(doc.pending) == 1, "what is still queued gets its own drain"


def test_posts_on_the_dispatch_thread_drain_once_per_round(kernel: Any) -> None:
    """A fill and the position/P&L events derived from it in the same dispatch round reach
    the session in one drain (one message), scheduled when the round ends."""
    bridge, doc, _ = make_bridge()
    bridge.follow_rounds(kernel.bus)
    seen: list[str] = []
    bridge.on_bus(kernel.bus, "fills.*", lambda e: seen.append(e.type), key="fills")
    bridge.on_bus(kernel.bus, "positions.*", lambda e: seen.append(e.type), key="positions")
    bridge.on_bus(kernel.bus, "pnl", lambda e: seen.append(e.type), key="pnl")
    kernel.publish(buy(1.0, 100.0, fill_id="f-round", order_id="o1", strategy="t"))
    assert kernel.bus.join(10)
    assert len(doc.pending) == 1, "one drain for the whole round"
    doc.run_pending()
    assert seen[0] == "trade_executed"
    assert "position_updated" in seen
    assert bridge.stats.drains == 1
    bridge.dispose()


def test_a_post_from_another_thread_is_not_held_by_a_deferred_round() -> None:
    class RoundBus:
        on_dispatch_thread = True

        def __init__(self) -> None:
            self.ends: list[Any] = []

        def after_round(self, callback: Any) -> None:
            self.ends.append(callback)

    bus = RoundBus()
    bridge, doc, _ = make_bridge()
    bridge.follow_rounds(bus)
    seen: list[str] = []
    bridge.post(lambda: seen.append("engine"))
    bridge.post(lambda: seen.append("engine 2"))
    assert doc.pending == [] and len(bus.ends) == 1, "deferred to the round's end, once"
    bus.on_dispatch_thread = False
    bridge.post(lambda: seen.append("timer thread"))
    assert len(doc.pending) == 1, "another thread's post schedules at once"
    doc.run_pending()
    assert seen == ["engine", "engine 2", "timer thread"]
    bus.ends.pop()()  # the round ends: nothing left to drain, nothing scheduled
    assert doc.pending == []


def test_a_round_that_does_not_end_holds_the_drain_at_most_max_round_wait_s() -> None:
    class StuckBus:
        on_dispatch_thread = True

        def after_round(self, callback: Any) -> None:
            pass  # the round never ends (a commit held by a checkpoint, a blocked subscriber)

    doc = CapturingDoc()
    bridge = SessionBridge(doc, name="t", notifier=lambda *a: None, max_round_wait_s=0.02)
    bridge.follow_rounds(StuckBus())
    bridge.post(lambda: None)
    assert doc.pending == []
    deadline = time.monotonic() + 5
    while not doc.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(doc.pending) == 1


def test_dispose_drops_queued_updates_and_ignores_later_posts() -> None:
    bridge, doc, shown = make_bridge()
    seen: list[int] = []
    bridge.post(lambda: seen.append(1))
    bridge.toast("info", "x")
    bridge.dispose()
    bridge.post(lambda: seen.append(2))
    bridge.toast("info", "y")
    doc.run_pending()
    assert seen == []
    assert shown == []
    assert bridge.closed


def test_disposing_a_dashboard_session_restores_subscriber_counts(kernel: Any) -> None:
    from panel_app.app import DashboardSession
    from panel_app.services import services_for

    services_for(kernel)  # the per-engine aggregator subscribes once, before any session
    bus, store = kernel.bus, kernel.store
    before = (bus.subscriber_count(), store.subscription_count, watcher_count(store))
    sessions = [DashboardSession(kernel, f"user{i}", "operator") for i in range(3)]
    assert bus.subscriber_count() > before[0]
    assert watcher_count(store) == before[2] + 3 * 3  # each session: pnl, runner, prices views
    for session in sessions:
        session.dispose()
        session.dispose()  # idempotent
    assert (bus.subscriber_count(), store.subscription_count, watcher_count(store)) == before


@pytest.mark.parametrize("n", [1, 4])
def test_shared_throttled_streams_subscribe_once_per_engine(kernel: Any, n: int) -> None:
    from panel_app.app import DashboardSession
    from panel_app.services import services_for

    services_for(kernel)
    bus = kernel.bus
    base = bus.subscriber_count("system.runner")
    sessions = [DashboardSession(kernel, f"u{i}", "viewer") for i in range(n)]
    try:
        # heartbeats: one shared throttle + one shared staleness watcher, whatever n is; and
        # each session's own runner-status subscription (immediate tier)
        assert bus.subscriber_count("system.runner") == base + 2 + n
    finally:
        for session in sessions:
            session.dispose()
    assert bus.subscriber_count("system.runner") == base


class RecordingLoop:
    """An IOLoop stand-in: ``add_callback`` records (any thread); the test runs them."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_callback(self, callback: Any, *args: Any) -> None:
        self.callbacks.append((callback, args))

    def run(self) -> int:
        callbacks, self.callbacks = self.callbacks, []
        for callback, args in callbacks:
            callback(*args)
        return len(callbacks)


def test_other_threads_never_touch_the_document_they_hand_the_drain_to_the_loop() -> None:
    # Bokeh's add_next_tick_callback from another thread can lose the callback while the loop
    # holds the document (the session then never drains again); only the loop may call it.
    import threading

    doc, loop = CapturingDoc(), RecordingLoop()
    bridge = SessionBridge(doc, name="t", notifier=lambda *a: None, loop=loop)  # "loop" thread
    seen: list[str] = []
    worker = threading.Thread(target=lambda: bridge.post(lambda: seen.append("engine")))
    worker.start()
    worker.join()
    assert doc.pending == [], "the engine thread must not call add_next_tick_callback"
    assert len(loop.callbacks) == 1
    worker = threading.Thread(target=lambda: bridge.post(lambda: seen.append("engine 2")))
    worker.start()
    worker.join()
    assert len(loop.callbacks) == 1, "one hand-over per drain, however many posts"
    assert loop.run() == 1
    assert len(doc.pending) == 1, "on the loop, the drain is scheduled on the document"
    doc.run_pending()
    assert seen == ["engine", "engine 2"]
    bridge.post(lambda: seen.append("loop"))  # a post made on the loop's own thread
    assert loop.callbacks == [] and len(doc.pending) == 1
    doc.run_pending()
    assert seen[-1] == "loop"


def test_a_closed_loop_leaves_the_bridge_able_to_schedule_later() -> None:
    import threading

    class ClosedLoop(RecordingLoop):
        closed = True

        def add_callback(self, callback: Any, *args: Any) -> None:
            if self.closed:
                raise RuntimeError("Event loop is closed")
            super().add_callback(callback, *args)

    doc, loop = CapturingDoc(), ClosedLoop()
    bridge = SessionBridge(doc, name="t", notifier=lambda *a: None, loop=loop)
    post = threading.Thread(target=lambda: bridge.post(lambda: None))
    post.start()
    post.join()
    assert loop.callbacks == []
    loop.closed = False
    post = threading.Thread(target=lambda: bridge.post(lambda: None))
    post.start()
    post.join()
    assert len(loop.callbacks) == 1, "a failed hand-over does not leave the bridge stuck"
