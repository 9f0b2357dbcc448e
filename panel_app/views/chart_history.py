"""Chart history on demand: the price chart starts at the session's first quote, and panning or
zooming it back past that point loads the older prices and the fills on them from the event
log, once the gesture stops.

A pan or a wheel zoom sends the server a Bokeh ``RangesUpdate`` per step. The steps go into an
Rx subject composed with ``debounced``: only the range the user settles on is loaded (one log
read per gesture, not one per mouse move), on the session's loop. The chart's axis ranges stay
browser-side (``panel_app.views.charts``); only these events come back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
from bokeh.events import Event, RangesUpdate
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from reactivex import abc
from reactivex.subject import Subject

from streams.operators import debounced

#: How long the chart's range must rest before history loads (seconds).
RANGE_DEBOUNCE_S = 0.3
#: Fill marker colours by side.
SIDE_COLORS = {"buy": "#2ca02c", "sell": "#d62728"}

#: ``load(symbol, start_ns, end_ns)`` -> ``HistoryService.price_history``'s answer.
Loader = Callable[[str, int, int], dict[str, list[Any]]]


class ChartHistory:
    """Loads what lies before the price chart's first point when the user scrolls back.

    ``first_ns()`` is the chart's covered start (0: nothing charted yet, nothing to extend),
    ``symbol()`` the shown symbol; ``extend(answer)`` puts a loaded span on the chart.
    ``run(job)`` runs the read and the extend: at once by default; a served session passes a
    worker thread, so a log read never holds the server's loop (``extend`` then posts its
    change to the session).
    """

    def __init__(
        self,
        load: Loader,
        first_ns: Callable[[], int],
        symbol: Callable[[], str | None],
        extend: Callable[[dict[str, list[Any]]], None],
        *,
        quiet_s: float = RANGE_DEBOUNCE_S,
        scheduler: abc.SchedulerBase | None = None,
        run: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._load = load
        self._run = run or (lambda job: job())
        self._first_ns = first_ns
        self._symbol = symbol
        self._extend = extend
        self._ranges: Subject[tuple[int, int]] = Subject()
        self._subscription = self._ranges.pipe(debounced(quiet_s, scheduler)).subscribe(
            on_next=self._settled
        )
        #: Log reads made (one per settled gesture that reached back): for tests.
        self.loads = 0

    def watch(self, fig: figure) -> None:
        """Follow ``fig``'s pan and zoom gestures."""
        fig.on_event(RangesUpdate, self._on_ranges)

    def on_range(self, x0_ns: int, x1_ns: int) -> None:
        """One step of a gesture: the x range now shown, in ns."""
        self._ranges.on_next((int(x0_ns), int(x1_ns)))

    def dispose(self) -> None:
        """Stop following (the session ends)."""
        self._subscription.dispose()

    def _on_ranges(self, event: Event) -> None:
        if not isinstance(event, RangesUpdate):
            return
        if event.x0 is not None and event.x1 is not None:  # datetime axes send ms
            self.on_range(int(event.x0 * 1_000_000), int(event.x1 * 1_000_000))

    def _settled(self, shown: tuple[int, int]) -> None:
        start, symbol = self._first_ns(), self._symbol()
        if not start or symbol is None or shown[0] >= start:
            return  # nothing charted yet, or the range holds no time before the chart
        self.loads += 1
        self._run(lambda: self._extend(self._load(symbol, shown[0], start)))


def prepend(prices: ColumnDataSource, marks: ColumnDataSource, answer: dict[str, list[Any]]) -> int:
    """Put a loaded span in front of the chart's sources (one data message each; on the
    session's loop, holding its document); returns how many points the price source holds."""

    def stamps(values: list[int]) -> list[pd.Timestamp]:
        return [pd.Timestamp(v, unit="ns") for v in values]

    price_data = dict(prices.data)
    prices.data = {
        "t": stamps(answer["t"]) + list(price_data.get("t", [])),
        "price": list(answer["price"]) + list(price_data.get("price", [])),
    }
    if answer["fill_t"]:
        mark_data = dict(marks.data)
        marks.data = {
            "t": stamps(answer["fill_t"]) + list(mark_data.get("t", [])),
            "price": list(answer["fill_price"]) + list(mark_data.get("price", [])),
            "color": [SIDE_COLORS.get(s, "#7f7f7f") for s in answer["fill_side"]]
            + list(mark_data.get("color", [])),
            "side": list(answer["fill_side"]) + list(mark_data.get("side", [])),
        }
    return len(prices.data["t"])


def in_thread(job: Callable[[], None]) -> None:
    """Run ``job`` on a short-lived daemon thread (one per settled gesture)."""
    threading.Thread(target=job, name="chart-history", daemon=True).start()
