"""Path matching, change detection and the subscription index."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from state.fold import apply_traced, replay
from state.model import initial_state
from state.subscriptions import SubscriptionRegistry, changed_paths, matches_prefix
from streams.errors import EventError
from streams.events import Event
from tests.factories import tick, with_seqs


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        (("positions", "*"), ("positions", "AAPL"), True),
        (("*", "AAPL"), ("prices", "AAPL"), True),
        (("positions",), ("positions", "AAPL"), True),
        (("positions", "MSFT"), ("positions", "AAPL"), False),
        (("prices", "*", "last"), ("prices", "AAPL"), False),
        ((), ("pnl",), True),
    ],
)
def test_matches_prefix(pattern: tuple[str, ...], path: tuple[str, ...], expected: bool) -> None:
    assert matches_prefix(pattern, path) is expected


def test_changed_paths_keeps_only_real_changes() -> None:
    old = replay(with_seqs([tick("AAPL", 1.0, ts_event=1)]))
    new, touched = apply_traced(old, tick("AAPL", 1.0, ts_event=1, seq=2))

    assert touched == ("prices.AAPL",)
    assert changed_paths(old, new, touched) == []


def test_registry_rejects_empty_segments() -> None:
    registry = SubscriptionRegistry(lambda exc, where, event: None)

    with pytest.raises(EventError, match="empty segment"):
        registry.add("positions..qty", lambda p, v, e: None)


def test_registry_add_and_dispose_from_many_threads() -> None:
    registry = SubscriptionRegistry(lambda exc, where, event: None)
    subs: list[Any] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for _ in range(200):
            sub = registry.add(f"prices.S{i}", lambda p, v, e: None)
            with lock:
                subs.append(sub)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry) == 800

    for sub in subs:
        sub.dispose()

    assert len(registry) == 0


def test_notify_reports_new_value_for_each_matching_path() -> None:
    registry = SubscriptionRegistry(lambda exc, where, event: None)
    seen: list[tuple[str, Any, Event]] = []
    registry.add("prices.*.last", lambda p, v, e: seen.append((p, v, e)))
    old = initial_state()
    event = tick("AAPL", 5.0, seq=1)
    new, touched = apply_traced(old, event)

    registry.notify(old, new, changed_paths(old, new, touched), event)

    assert seen == [("prices.AAPL.last", 5.0, event)]
