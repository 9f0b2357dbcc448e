"""Rx operators for consumers: time-based views of fast streams, on an injected clock.

The operators live in private modules by kind (``_latest``: throttled, sampled, debounced;
``_staleness``; ``_heartbeat``) and are re-exported here: this is the package's public API.
All of them are functions that return an operator for ``Observable.pipe`` (``heartbeat`` and
``heartbeats`` are sources), take durations as float seconds or ``timedelta`` (validated
when built: a bad value raises :class:`~streams.errors.ConfigError`), and take an optional
``scheduler`` that wins over the subscriber's (``TestScheduler``/``HistoricalScheduler`` in
tests and backtests).

Shared rules: an operator never raises into its source; failures of user callbacks go to
``on_error``. Emissions are serialized per subscription, so timers on other threads are
safe. On completion, held values are flushed before ``on_completed``; on error they are
dropped and the error is forwarded at once.

Operators:

- :func:`throttled` -- at most one value per interval, first at once, and the latest held
  value always emitted at the end of its window (leading + trailing throttle).
  For P&L every 5 s.
- :func:`sampled` -- the latest value on a fixed clock grid, only if something new arrived.
- :func:`debounced` -- emit when a burst goes quiet; ``max_wait`` caps how long a value is
  held so a never-ending flood still updates.
- :func:`staleness` -- FRESH/STALE status changes (:class:`Staleness`) for a stale badge.
- :func:`heartbeat` / :func:`heartbeats` -- periodic beats / ``Heartbeat`` events on the
  injected clock.
"""

from __future__ import annotations

from streams.operators._common import Interval
from streams.operators._heartbeat import heartbeat, heartbeats
from streams.operators._latest import debounced, sampled, throttled
from streams.operators._staleness import Staleness, staleness

__all__ = [
    "Interval",
    "Staleness",
    "debounced",
    "heartbeat",
    "heartbeats",
    "sampled",
    "staleness",
    "throttled",
]
