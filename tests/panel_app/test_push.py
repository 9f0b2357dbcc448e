"""SessionBridge without a browser: coalescing by key, one toast per drain, clean dispose."""

from __future__ import annotations

from typing import Any

import pytest
from bokeh.document import Document

from panel_app.push import SessionBridge, Toast, merge_toasts, once_per_event


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


def make_bridge() -> tuple[SessionBridge, CapturingDoc, list[tuple[str, str, int]]]:
    doc = CapturingDoc()
    shown: list[tuple[str, str, int]] = []
    bridge = SessionBridge(doc, name="t", notifier=lambda k, m, d: shown.append((k, m, d)))
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
    bridge, doc, shown = make_bridge()
    bridge.toast("info", "first")
    doc.run_pending()
    bridge.toast("info", "second")
    bridge.toast("success", "third")
    doc.run_pending()
    assert [m for _, m, _ in shown] == ["first"]  # within toast_interval_s: held
    assert len(doc.timeouts) == 1
    callback, delay_ms = doc.timeouts.pop()
    assert 0 < delay_ms <= 500
    callback()
    assert shown[-1] == ("success", "third | second", 4_000)


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
    before = (bus.subscriber_count(), store.subscription_count)
    sessions = [DashboardSession(kernel, f"user{i}", "operator") for i in range(3)]
    assert bus.subscriber_count() > before[0]
    for session in sessions:
        session.dispose()
        session.dispose()  # idempotent
    assert (bus.subscriber_count(), store.subscription_count) == before


@pytest.mark.parametrize("n", [1, 4])
def test_shared_throttled_streams_subscribe_once_per_engine(kernel: Any, n: int) -> None:
    from panel_app.app import DashboardSession
    from panel_app.services import services_for

    services_for(kernel)
    bus = kernel.bus
    base = bus.subscriber_count("system.>")
    sessions = [DashboardSession(kernel, f"u{i}", "viewer") for i in range(n)]
    try:
        # heartbeat: one shared throttle + one shared staleness watcher, whatever n is
        assert bus.subscriber_count("system.>") == base + 2
    finally:
        for session in sessions:
            session.dispose()
    assert bus.subscriber_count("system.>") == base
