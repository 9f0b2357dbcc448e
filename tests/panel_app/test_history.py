"""History service (lazy tier): the TTL cache and paging of trades, without a browser."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from panel_app.aggregates import TradeAggregator
from panel_app.history import TRADE_COLUMNS, HistoryService, TtlCache
from testkit.workload import numbered_fill


def test_ttl_cache_hits_within_ttl_and_recomputes_after() -> None:
    cache = TtlCache(ttl_s=1.0)  # the second call must come within it, even on a busy machine
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("k", compute) == 1
    assert cache.get_or_compute("k", compute) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    time.sleep(1.1)
    assert cache.get_or_compute("k", compute) == 2
    cache.clear()
    assert cache.get_or_compute("k", compute) == 3


def test_ttl_cache_is_bounded() -> None:
    cache = TtlCache(ttl_s=60, max_entries=8)
    for i in range(50):
        cache.get_or_compute(i, lambda i=i: i)
    assert len(cache._items) <= 8
    assert cache.get_or_compute(49, lambda: -1) == 49  # the newest survive


def test_a_failing_compute_is_not_cached() -> None:
    cache = TtlCache(ttl_s=60)

    def boom() -> int:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", boom)
    assert cache.get_or_compute("k", lambda: 7) == 7


class FakeLog:
    """The part of EventLog the history reads: trades by seq range."""

    def __init__(self, trades: list[Any]) -> None:
        self.trades = trades
        self.reads = 0

    def read(self, *, since_seq: int, until_seq: int, types: list[str]) -> list[Any]:
        assert types == ["trade_executed"]
        self.reads += 1
        return [t for t in self.trades if since_seq < t.seq <= until_seq]


def make(n: int) -> tuple[HistoryService, FakeLog]:
    trades = [  # seqs with gaps: other events sit in between
        numbered_fill(i, strategy="s", price=100.0 + i, seq=i * 3) for i in range(1, n + 1)
    ]
    agg = TradeAggregator()
    for t in trades:
        agg.on_event(t)
    log = FakeLog(trades)
    return HistoryService(log, agg, ttl_s=60), log


def test_trade_pages_are_newest_first_and_cover_everything_once() -> None:
    history, _ = make(23)
    pages = [history.trade_page(p, 10) for p in range(3)]
    assert list(pages[0].columns) == TRADE_COLUMNS
    assert [len(p) for p in pages] == [10, 10, 3]
    seqs = [s for p in pages for s in p["seq"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 23
    assert history.trade_page(3, 10).empty


def test_trade_pages_are_cached() -> None:
    history, log = make(5)
    first = history.trade_page(0, 10)
    again = history.trade_page(0, 10)
    assert log.reads == 1
    pd.testing.assert_frame_equal(first, again)


def test_empty_history_gives_an_empty_page_with_columns() -> None:
    history, log = make(0)
    page = history.trade_page(0, 10)
    assert page.empty and list(page.columns) == TRADE_COLUMNS
    assert log.reads == 0
