"""A websocket market-data client: JSON messages in, validated ticks out, reconnecting forever.

Message format of the default mapper (:class:`TickMessageMapper`), one JSON text or binary
(UTF-8) frame holding either one object or an array of objects::

    {"symbol": "AAPL", "bid": 187.1, "ask": 187.2, "last": 187.15, "size": 100,
     "ts": 1700000000000000000}

* ``symbol`` (string, required); ``bid``, ``ask``, ``last`` (number, numeric string or null;
  at least one present); ``size`` (number, default 0);
* ``ts``: integer nanoseconds since the epoch, or an ISO-8601 string (no zone = UTC); when
  absent, the feed's clock time on receipt. Other keys are ignored.

A custom ``mapper`` receives the decoded JSON value and returns an event, an iterable of
events (``DataRejected`` allowed) or None to ignore the message (e.g. a heartbeat). It may
raise :class:`~streams.sources.validation.FieldRejected` to name a bad field; any other
exception makes the message a ``DataRejected`` too. Nothing a server sends stops the feed.

The client runs an asyncio loop in the feed thread. When the connection fails or drops it
waits ``backoff_delay`` (exponential with jitter, reset after each successful connect) and
tries again, until :meth:`WebSocketFeed.stop`. While paused it stays connected and drops
messages (``skipped_while_paused`` counts them): a live feed cannot be held at the source.
When the engine falls behind, the feed (built with ``offer``) drops market data it cannot hand
in and reports it (see :class:`~streams.sources.feed.FeedBase`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random as _random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from streams.clock import Clock, datetime_to_ns
from streams.errors import BusClosed, ConfigError
from streams.events import DataRejected, Event, TickReceived
from streams.sources.feed import CONNECTING, RECONNECTING, RUNNING, FeedBase, Offer, Publish
from streams.sources.validation import (
    BAD_TIMESTAMP,
    MALFORMED,
    NOT_A_NUMBER,
    FieldRejected,
    MarketDataValidator,
    check_symbol_topic,
)

log = logging.getLogger(__name__)

Mapper = Callable[[Any], Event | Iterable[Event] | None]

# Integer timestamps below this are not plausible ns since the epoch (it is 1970-01-12 in ns,
# but 2001 in ms and year 33658 in s), so they are rejected instead of misread.
_MIN_TS_NS = 10**15


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    factor: float = 2.0,
    jitter: float = 0.1,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based): exponential, capped, jittered.

    ``initial * factor**(attempt-1)`` capped at ``maximum``, then spread by ``±jitter``
    (a fraction) using ``random()`` in [0, 1); never above ``maximum`` nor below 0.
    """
    exponent = min(max(attempt - 1, 0), 64)
    base = min(maximum, initial * factor**exponent)
    spread = base * jitter
    return max(0.0, min(maximum, base - spread + 2.0 * spread * random()))


class TickMessageMapper:
    """The default mapper: JSON objects in the documented format to ``TickReceived``.

    A bad object in an array becomes a ``DataRejected`` for that object only.
    """

    def __init__(self, source: str, clock: Clock) -> None:
        self.source = source
        self.clock = clock

    def __call__(self, message: Any) -> list[Event]:
        items = message if isinstance(message, list) else [message]
        return [self._one(item) for item in items]

    def _one(self, item: Any) -> Event:
        now = self.clock.now_ns()
        symbol = item.get("symbol") if isinstance(item, Mapping) else None
        try:
            if not isinstance(item, Mapping):
                raise FieldRejected("message", item, MALFORMED, "expected a JSON object")
            symbol = check_symbol_topic(item.get("symbol"))
            ts = self._timestamp(item.get("ts"), now)
            return TickReceived(
                symbol=symbol,
                bid=_number(item, "bid"),
                ask=_number(item, "ask"),
                last=_number(item, "last"),
                size=_number(item, "size") or 0.0,
                source=self.source,
                ts_event=ts,
                ts_init=now,
            )
        except FieldRejected as exc:
            return exc.event(self.source, symbol if isinstance(symbol, str) else "", now, now)

    @staticmethod
    def _timestamp(value: Any, now: int) -> int:
        if value is None:
            return now
        if isinstance(value, bool):
            raise FieldRejected("ts", value, BAD_TIMESTAMP, "ts must be ns since epoch or ISO-8601")
        if isinstance(value, int | float):
            if not math.isfinite(value) or value < _MIN_TS_NS:
                raise FieldRejected(
                    "ts", value, BAD_TIMESTAMP, "ts must be integer nanoseconds since the epoch"
                )
            return int(value)
        if isinstance(value, str):
            try:
                return datetime_to_ns(datetime.fromisoformat(value))
            except ValueError:
                pass
        raise FieldRejected("ts", value, BAD_TIMESTAMP, "ts must be ns since epoch or ISO-8601")


def _number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise FieldRejected(name, value, NOT_A_NUMBER, f"{name} must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FieldRejected(name, value, NOT_A_NUMBER, f"{name} must be a number") from None


class WebSocketFeed(FeedBase):
    """Streams ticks from a websocket server in its own thread, reconnecting with backoff.

    ``subscribe`` messages (strings, or objects sent as JSON) are sent after every connect.
    ``connect_options`` go to ``websockets.connect`` (e.g. ``additional_headers``).
    Counters: ``connects`` (successful), ``reconnects`` (attempts after a failure or drop),
    ``messages``, ``skipped_while_paused``, ``dropped`` (the engine was behind);
    ``last_backoff_s`` is the latest wait.
    """

    initial_phase = CONNECTING

    def __init__(
        self,
        publish: Publish,
        clock: Clock | None,
        url: str,
        *,
        mapper: Mapper | None = None,
        subscribe: Sequence[str | Mapping[str, Any]] = (),
        source: str = "websocket",
        name: str | None = None,
        known_symbols: Iterable[str] | None = None,
        validator: MarketDataValidator | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        backoff_factor: float = 2.0,
        jitter: float = 0.1,
        random: Callable[[], float] = _random.random,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        connect_options: Mapping[str, Any] | None = None,
        offer: Offer | None = None,
    ) -> None:
        super().__init__(
            publish,
            clock,
            name=name or source,
            source=source,
            known_symbols=known_symbols,
            validator=validator,
            offer=offer,
        )
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"websocket url must start with ws:// or wss://, got {url!r}")
        if not 0 < backoff_initial <= backoff_max or backoff_factor < 1 or not 0 <= jitter <= 1:
            raise ConfigError(
                "backoff needs 0 < initial <= max, factor >= 1 and 0 <= jitter <= 1; got "
                f"initial={backoff_initial!r}, max={backoff_max!r}, "
                f"factor={backoff_factor!r}, jitter={jitter!r}"
            )
        self.url = url
        self.mapper: Mapper = mapper or TickMessageMapper(self.source, self.clock)
        self.subscribe_messages = [m if isinstance(m, str) else json.dumps(m) for m in subscribe]
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.jitter = jitter
        self._random = random
        self._connect_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            **(connect_options or {}),
        }
        self.connects = 0
        self.reconnects = 0
        self.messages = 0
        self.skipped_while_paused = 0
        self.last_backoff_s: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # -- thread side ---------------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # stop() cancelled the main task
            asyncio.run(self._session_loop())

    def _on_stop_requested(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop has nothing left to cancel
                loop.call_soon_threadsafe(task.cancel)

    async def _session_loop(self) -> None:
        import websockets
        from websockets.exceptions import WebSocketException

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        attempt = 0
        while not self._stopping:
            try:
                async with websockets.connect(self.url, **self._connect_options) as connection:
                    self.connects += 1
                    attempt = 0
                    self._set_phase(RUNNING)
                    log.info("feed %s: connected to %s", self.name, self.url)
                    for outgoing in self.subscribe_messages:
                        await connection.send(outgoing)
                    async for message in connection:
                        self._handle(message)
                log.warning("feed %s: server closed the connection", self.name)
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.last_error = exc
                log.warning("feed %s: connection to %s failed: %r", self.name, self.url, exc)
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except BusClosed:
                raise  # nowhere left to publish: FeedBase stops the feed
            except Exception as exc:
                self._report_error(exc, "websocket session failed; reconnecting")
            if self._stopping:
                return
            attempt += 1
            self.reconnects += 1
            self._set_phase(RECONNECTING)
            delay = backoff_delay(
                attempt,
                initial=self.backoff_initial,
                maximum=self.backoff_max,
                factor=self.backoff_factor,
                jitter=self.jitter,
                random=self._random,
            )
            self.last_backoff_s = delay
            await asyncio.sleep(delay)

    def _handle(self, message: str | bytes) -> None:
        """Decode, map, validate and publish one message; anything bad becomes DataRejected."""
        self.messages += 1
        if self._paused:
            self.skipped_while_paused += 1
            return
        now = self.clock.now_ns()
        try:
            text: str = message.decode("utf-8") if isinstance(message, bytes) else message
            decoded = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            shown = message if isinstance(message, str) else repr(message)
            self._emit(self._malformed(shown, f"not valid JSON: {exc}", now))
            return
        try:
            produced = self.mapper(decoded)
        except FieldRejected as exc:
            self._emit(exc.event(self.source, _symbol_of(decoded), now, now))
            return
        except Exception as exc:
            self._emit(self._malformed(text, f"mapper failed: {type(exc).__name__}: {exc}", now))
            return
        if produced is None:
            return
        events = [produced] if isinstance(produced, Event) else list(produced)
        for event in events:
            if isinstance(event, Event):
                self._emit(event)
            else:
                self._emit(self._malformed(text, f"mapper returned {type(event).__name__}", now))

    def _malformed(self, value: str, detail: str, now: int) -> DataRejected:
        return FieldRejected("message", value, MALFORMED, detail).event(self.source, "", now, now)


def _symbol_of(decoded: Any) -> str:
    symbol = decoded.get("symbol") if isinstance(decoded, Mapping) else None
    return symbol if isinstance(symbol, str) else ""
