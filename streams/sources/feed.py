"""What every threaded market-data feed shares: its thread, lifecycle, pacing, validation, publish.

A feed runs in its own daemon thread and hands events to ``publish`` (the bus's thread-safe
``publish``). Subclasses implement :meth:`FeedBase._run`, which runs in that thread and calls
:meth:`FeedBase._pace` before each event and :meth:`FeedBase._emit` to validate and publish it.

Lifecycle (``status``)::

    stopped --start()--> running | connecting --(data ends)--> finished
    running <--pause()/resume()--> paused          any --stop()--> stopped
    running <--(connection lost)--> reconnecting   any --(unexpected error)--> failed

A feed is started once; build a new one to start again. An exception inside the thread is
never silent: it is logged and published as an ``ErrorRaised`` event, then the feed stops
cleanly with status ``failed`` (the websocket feed reconnects instead).

Overflow. By default a feed hands every event in with ``publish``, which waits while the
engine's inbox is full: a replay slows down instead of losing bars. A live feed that cannot
wait is given ``offer`` (the bus's non-blocking hand-in): market data the engine cannot take
now is dropped, counted in ``dropped``, and reported as a critical ``data_dropped`` event at
most every ``drop_report_s`` and when the feed ends. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Self

from streams import topics
from streams.clock import Clock, LiveClock
from streams.errors import BusClosed, ConfigError, EventError, InvalidTransition
from streams.events import BarReceived, DataDropped, ErrorRaised, Event, TickReceived
from streams.sources.validation import MarketDataValidator

log = logging.getLogger(__name__)

Publish = Callable[[Event], None]
Offer = Callable[[Event], bool]
Sleep = Callable[[float], None]
Speed = float | str | None

STOPPED = "stopped"
CONNECTING = "connecting"
RUNNING = "running"
PAUSED = "paused"
RECONNECTING = "reconnecting"
FINISHED = "finished"
FAILED = "failed"

_ACTIVE = frozenset({CONNECTING, RUNNING, RECONNECTING})
_NS_PER_S = 1_000_000_000


def parse_speed(speed: Speed) -> float | None:
    """None/"max" -> None (no pacing), else a positive float multiplier (1.0 = real time)."""
    if speed is None or (isinstance(speed, str) and speed.strip().lower() == "max"):
        return None
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ConfigError(f"speed must be a number > 0 or 'max', got {speed!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"speed must be a number > 0 or 'max', got {speed!r}")
    return value


class _VirtualTime:
    """Monotonic time that moves only when the injected sleep is called (tests, simulations)."""

    def __init__(self, sleep: Sleep) -> None:
        self._sleep = sleep
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
        self._now += seconds


class FeedBase:
    """Base of the threaded feeds: start/stop/pause/resume, pacing by speed, validate, publish.

    ``publish`` receives valid ticks/bars, ``DataRejected`` events and ``ErrorRaised`` events,
    all from the feed thread. ``clock`` stamps ``ts_init`` and ``last_event_ns`` (the clock
    time of the last valid event, for staleness monitoring). ``sleep`` and ``monotonic``
    replace real waiting: inject ``sleep`` alone and the feed keeps virtual time that advances
    by exactly what it slept, so tests can check pacing without waiting. ``max_sleep_s`` caps
    a single wait so pause, stop and speed changes take effect promptly.
    """

    #: The phase a freshly started feed is in (the websocket feed starts "connecting").
    initial_phase = RUNNING

    def __init__(
        self,
        publish: Publish,
        clock: Clock | None = None,
        *,
        name: str,
        source: str | None = None,
        known_symbols: Iterable[str] | None = None,
        validator: MarketDataValidator | None = None,
        speed: Speed = None,
        sleep: Sleep | None = None,
        monotonic: Callable[[], float] | None = None,
        max_sleep_s: float = 0.25,
        offer: Offer | None = None,
        drop_report_s: float = 1.0,
    ) -> None:
        self.name = name
        self.source = source or name
        for what, value in (("source", self.source), ("name", self.name)):
            try:
                topics.data_rejected(value)
            except EventError:
                raise ConfigError(
                    f"feed {what} must be a simple lowercase word, got {value!r}"
                ) from None
        if validator is not None and known_symbols is not None:
            raise ConfigError("pass known_symbols or a validator, not both")
        if max_sleep_s <= 0:
            raise ConfigError(f"max_sleep_s must be > 0, got {max_sleep_s!r}")
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.validator = validator or MarketDataValidator(known_symbols, self.source)
        self.max_sleep_s = max_sleep_s
        self.published = 0
        #: Market data dropped because the engine could not take it (``offer`` feeds only).
        self.dropped = 0
        self.errors = 0
        self.last_event_ns: int | None = None
        self.last_error: BaseException | None = None
        self._publish_fn = publish
        self._offer_fn = offer
        self._drop_report_s = drop_report_s
        self._drops_pending: dict[str, int] = {}
        self._last_drop_report = 0.0
        self._phase = STOPPED
        self._paused = False
        self._started = False
        self._stop_requested = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._speed = parse_speed(speed)
        self._anchor: tuple[int, float] | None = None
        self._reanchor = False
        self._paced_ts: int | None = None
        if sleep is None:
            self._sleep_fn: Sleep = self._interruptible_sleep
            self._monotonic = monotonic or time.monotonic
        elif monotonic is None:
            virtual = _VirtualTime(sleep)
            self._sleep_fn, self._monotonic = virtual.sleep, virtual.now
        else:
            self._sleep_fn, self._monotonic = sleep, monotonic

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def status(self) -> str:
        """One of stopped, connecting, running, paused, reconnecting, finished, failed."""
        if self._paused and self._phase in _ACTIVE:
            return PAUSED
        return self._phase

    @property
    def alive(self) -> bool:
        """True while the feed thread runs (also when paused or reconnecting)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def speed(self) -> float | None:
        """The pacing multiplier (1.0 = real time), or None for as fast as possible."""
        return self._speed

    def start(self) -> Self:
        """Start the feed thread. A feed starts once; InvalidTransition on a second start."""
        with self._lock:
            if self._started:
                raise InvalidTransition(
                    f"feed {self.name!r} was already started (status {self.status}); "
                    "build a new feed to start again"
                )
            self._started = True
            self._phase = self.initial_phase
            self._thread = threading.Thread(
                target=self._main, name=f"feed-{self.name}", daemon=True
            )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end and wait for it; True once it has ended. Idempotent.

        Safe to call from the feed's own thread (e.g. inside ``publish``): then it only asks.
        """
        self._stop_requested.set()
        self._resumed.set()
        self._on_stop_requested()
        thread = self._thread
        if thread is None:
            return True
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the feed thread ends by itself (data finished); False on timeout."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def pause(self) -> None:
        """Hold the feed before its next event; no-op if already paused."""
        self._require_active("pause")
        self._paused = True
        self._resumed.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`, pacing from now (no burst of held-back events)."""
        self._require_active("resume")
        self._paused = False
        self._resumed.set()

    def set_speed(self, speed: Speed) -> None:
        """Change the pacing speed while running: None/"max", 1.0 real time, N accelerated."""
        value = parse_speed(speed)
        with self._lock:
            self._speed = value
            self._reanchor = True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for subclasses ------------------------------------------------------------------
    def _run(self) -> None:
        """The feed's work, in the feed thread; return when done or when ``_stopping``."""
        raise NotImplementedError

    def _on_stop_requested(self) -> None:
        """Hook: wake anything the thread may block on (called from the stopping thread)."""

    @property
    def _stopping(self) -> bool:
        return self._stop_requested.is_set()

    def _set_phase(self, phase: str) -> None:
        if not self._stopping:
            self._phase = phase

    def _wait_if_paused(self) -> bool:
        """Block while paused (until resumed or stopped); True if it had to wait."""
        if not self._paused:
            return False
        while self._paused and not self._stopping:
            self._resumed.wait()
        return True

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop_requested.wait(seconds)

    def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; with the default sleeper a stop wakes it at once."""
        if seconds > 0 and not self._stopping:
            self._sleep_fn(seconds)

    def _pace(self, ts_ns: int | None) -> bool:
        """Wait until an event with data time ``ts_ns`` is due at the current speed.

        Time is anchored at the first event, and again after a pause or speed change, so the
        schedule does not drift with processing time. ``ts_ns=None`` (an event without a
        usable time) only waits out a pause. False when the feed is stopping.
        """
        if ts_ns is None:
            self._wait_if_paused()
            return not self._stopping
        while True:
            if self._wait_if_paused():
                self._reanchor = True
            if self._stopping:
                return False
            with self._lock:
                speed = self._speed
                if speed is not None and (self._anchor is None or self._reanchor):
                    base = self._paced_ts if self._paced_ts is not None else ts_ns
                    self._anchor = (min(base, ts_ns), self._monotonic())
                    self._reanchor = False
                anchor = self._anchor
            if speed is None or anchor is None:
                break
            due = anchor[1] + (ts_ns - anchor[0]) / _NS_PER_S / speed
            remaining = due - self._monotonic()
            if remaining <= 0:
                break
            self._sleep(min(remaining, self.max_sleep_s))
        self._paced_ts = ts_ns
        return True

    def _emit(self, event: Event) -> Event:
        """Validate ``event`` and hand it in (or its ``DataRejected``); returns what was sent.

        With ``offer``, market data the engine cannot take now is dropped and counted."""
        checked = self.validator.check(event)
        market = checked is event and isinstance(event, TickReceived | BarReceived)
        if market and self._offer_fn is not None:
            if not self._offer_fn(checked):
                self._count_drop(checked)
                return checked
        else:
            self._publish_fn(checked)
        if market:
            self.published += 1
            self.last_event_ns = self.clock.now_ns()
        if self._drops_pending:
            self._report_drops(force=False)
        return checked

    def _count_drop(self, event: Event) -> None:
        self.dropped += 1
        symbol = str(getattr(event, "symbol", ""))
        self._drops_pending[symbol] = self._drops_pending.get(symbol, 0) + 1
        if len(self._drops_pending) == 1 and sum(self._drops_pending.values()) == 1:
            log.warning("feed %s: the engine is behind; dropping market data", self.name)
        self._report_drops(force=False)

    def _report_drops(self, *, force: bool) -> None:
        """Publish the drops counted since the last report (waiting for room: never dropped)."""
        if not self._drops_pending:
            return
        now = self._monotonic()
        if not force and now - self._last_drop_report < self._drop_report_s:
            return
        pending, self._drops_pending = self._drops_pending, {}
        self._last_drop_report = now
        count = sum(pending.values())
        log.error(
            "feed %s: dropped %d market-data events (%d in all)", self.name, count, self.dropped
        )
        self._publish_fn(
            DataDropped(
                source=self.source,
                count=count,
                total=self.dropped,
                by_symbol=pending,
                ts_event=self.clock.now_ns(),
            )
        )

    def _report_error(self, exc: BaseException, message: str) -> None:
        """Log ``exc`` and publish it as ``ErrorRaised``; never raises."""
        self.errors += 1
        self.last_error = exc
        log.error("feed %s: %s: %r", self.name, message, exc, exc_info=exc)
        try:
            self._publish_fn(
                ErrorRaised(
                    component=self.name,
                    message=f"{message}: {exc}",
                    error_type=type(exc).__name__,
                    details={"feed": self.name, "source": self.source, "status": self.status},
                    ts_event=self.clock.now_ns(),
                )
            )
        except Exception:
            log.exception("feed %s: could not publish ErrorRaised", self.name)

    # -- the thread ----------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._run()
            self._report_drops(force=True)
        except BusClosed as exc:
            log.warning("feed %s: bus closed, stopping: %s", self.name, exc)
            self._phase = STOPPED
            return
        except Exception as exc:
            self._report_error(exc, "feed stopped after an unexpected error")
            self._phase = FAILED
            return
        self._phase = STOPPED if self._stopping else FINISHED

    def _require_active(self, action: str) -> None:
        if self._phase not in _ACTIVE or self._stopping:
            raise InvalidTransition(f"cannot {action} feed {self.name!r} in status {self.status!r}")
