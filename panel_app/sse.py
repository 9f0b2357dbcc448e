"""``GET /api/events``: Server-Sent Events of bus events, fanned out by one hub per server.

Every SSE client of one topic pattern shares one bus subscription (:class:`SseHub`). On the
engine thread that subscription only appends the event to a bounded buffer and, once per
flush, wakes the server's loop. On the loop, at most every ``access.sse_flush_interval_s``,
the hub encodes the buffered events once and writes the same bytes to every live client of
the pattern: one write per client per interval, whatever the number of events or clients.
(Before, every client had its own bus subscription, lock, mailbox and coroutine: with 50
clients the engine thread handed each event over 50 times; docs/reliability.md, "Load".)

A client that resumes with ``Last-Event-ID`` joins the hub first (so nothing falls between
replay and live), replays newer events from the log, then goes live: the events that arrived
meanwhile are sent without the ones the replay already sent. A client whose socket does not
drain while ``access.sse_queue_size`` events pile up behind it is sent ``event: overflow`` and
disconnected (it reconnects with its last id and catches up from the log); the engine thread
never waits for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from panel_app.facade import EventBus
from panel_app.push_support import once_per_event
from streams.errors import SeamlessError
from streams.events import Event

log = logging.getLogger(__name__)

REPLAY_PAGE = 1_000
#: Least number of events a pattern's buffer holds between two flushes. It only fills when the
#: server's loop stalls (slow clients are caught by their own ``sse_queue_size``); when it
#: does, every client of the pattern reconnects and catches up from the log.
FEED_BUFFER_MIN = 100_000
#: How long an overflowed client's last write may block before its connection is closed.
FORCE_CLOSE_AFTER_S = 5.0
#: The kernel's send buffer of an SSE connection. Bounded (Linux otherwise lets it grow to
#: ``tcp_wmem``'s 4 MiB, ~16,000 events), so a client that stops reading shows as one whose
#: writes do not drain within about 500 events, and is then caught by ``sse_queue_size``.
#: Still ~2.5 MB/s at 50 ms round trips, far above the full feed's ~150 kB/s.
SEND_BUFFER_BYTES = 64 * 1024


class SseClient:
    """One ``/api/events`` connection as the hub sees it (loop thread only).

    While ``live`` is False (the handler replays the log) delivered events are buffered, at
    most ``capacity`` of them; past that ``overflowed`` is set and the handler reads the log
    again. Once live, each delivery is written to the connection at once.
    """

    def __init__(self, handler: tornado.web.RequestHandler, capacity: int) -> None:
        self.handler = handler
        _bound_send_buffer(handler)
        self.capacity = capacity
        self.live = False
        self.closed = False
        self.overflowed = False
        self.last_sent = 0
        self.last_write = 0.0
        self.wake = asyncio.Event()
        self._pending: list[Event] = []
        self._flushing: Any = None  # the Future of the last flush, until it completes
        self._backlog = 0  # events written since the last completed flush

    def deliver(self, events: list[Event], chunk: bytes, min_seq: int, now: float) -> None:
        """Hub: ``events`` (encoded together as ``chunk``) for this client."""
        if self.closed or self.overflowed:
            return
        if not self.live:
            self._pending.extend(events)
            if len(self._pending) > self.capacity:
                self._pending.clear()
                self.overflowed = True
            return
        if self.last_sent and min_seq and min_seq <= self.last_sent:
            self._write_events(events, now)  # rare: overlaps what was sent already
        else:
            self._write(chunk, len(events), now, max(self.last_sent, _max_seq(events)))

    def go_live(self, last_sent: int, now: float) -> None:
        """Handler: the replay sent everything up to ``last_sent``; send the rest and go live."""
        self.last_sent = last_sent
        self.live = True
        pending, self._pending = self._pending, []
        if pending:
            self._write_events(pending, now)

    def reset(self) -> None:
        """Handler: forget an overflow while replaying (the log is read again)."""
        self._pending.clear()
        self.overflowed = False

    def close(self) -> None:
        """The connection is gone: stop writing and wake the handler."""
        self.closed = True
        self.wake.set()

    def _write_events(self, events: list[Event], now: float) -> None:
        fresh = [e for e in events if not (e.seq and e.seq <= self.last_sent)]
        if fresh:
            chunk = "".join(frame(e) for e in fresh).encode()
            self._write(chunk, len(fresh), now, max(self.last_sent, _max_seq(fresh)))

    def _write(self, chunk: bytes, n: int, now: float, last_sent: int) -> None:
        if self._flushing is not None and not self._flushing.done():
            self._backlog += n
            if self._backlog > self.capacity:
                self._overflow()
                return
        else:
            self._backlog = n
        try:
            self.handler.write(chunk)
            self._flushing = self.handler.flush()
        except (StreamClosedError, RuntimeError):  # closed, or finished already
            self.close()
            return
        self._flushing.add_done_callback(self._flushed)
        self.last_sent = last_sent
        self.last_write = now

    def _flushed(self, future: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            self.close()

    def _overflow(self) -> None:
        log.warning(
            "sse client %s fell behind; disconnecting",
            getattr(self.handler.request, "remote_ip", "?"),
        )
        self.overflowed = True
        self.wake.set()


class _PatternFeed:
    """The hub's share of one topic pattern: one bus subscription, its clients, a buffer."""

    def __init__(
        self, hub: SseHub, bus: EventBus, pattern: str, loop: IOLoop, capacity: int
    ) -> None:
        self.hub, self.bus, self.pattern, self.loop = hub, bus, pattern, loop
        self.capacity = capacity
        self.clients: list[SseClient] = []
        self._lock = threading.Lock()
        self._events: deque[Event] = deque()
        self._signalled = False
        self._overflowed = False
        self._timer: Any = None
        self._last_flush = 0.0
        self.subscription = bus.subscribe(pattern, self._put, name=f"sse:{pattern}")

    def _put(self, event: Event) -> None:
        """Engine thread: buffer ``event``; wake the loop once per flush."""
        with self._lock:
            if self._overflowed:
                return
            if len(self._events) >= self.capacity:
                self._overflowed = True  # the loop is stalled: every client catches up
                self._events.clear()
            else:
                self._events.append(event)
            if self._signalled:
                return
            self._signalled = True
        self.loop.add_callback(self._woken)

    def _woken(self) -> None:
        if self._timer is not None:
            return
        delay = self._last_flush + self.hub.flush_interval_s - self.loop.time()
        if delay > 0:
            self._timer = self.loop.call_later(delay, self.flush)
        else:
            self.flush()

    def flush(self) -> None:
        """Loop: write what arrived since the last flush to every client of the pattern."""
        self._timer = None
        with self._lock:
            events = list(self._events)
            self._events.clear()
            overflowed, self._overflowed = self._overflowed, False
            self._signalled = False
        now = self._last_flush = self.loop.time()
        if overflowed:
            for client in list(self.clients):
                client.overflowed = True
                client.wake.set()
        if not events:
            return
        # Every client receives the same event objects: encode them once for all.
        chunk = "".join(
            once_per_event(e, "sse-frame", functools.partial(frame, e)) for e in events
        ).encode()
        seqs = [e.seq for e in events if e.seq]
        min_seq = min(seqs) if seqs else 0
        for client in list(self.clients):
            try:
                client.deliver(events, chunk, min_seq, now)
            except Exception:  # one broken client must not stop the others
                log.exception("sse: delivery to a client failed")
                client.close()


class SseHub:
    """Fans bus events out to the SSE clients of one server (see the module docstring).

    ``flush_interval_s``: a client is written to at most this often; ``capacity``
    (``access.sse_queue_size``): events buffered per client while it replays the log or while
    its socket does not drain (each pattern's buffer holds at least ``FEED_BUFFER_MIN``).
    Loop thread only, except the bus callbacks (engine thread), which only buffer.
    """

    def __init__(self, flush_interval_s: float, capacity: int) -> None:
        self.flush_interval_s = flush_interval_s
        self.capacity = capacity
        self._feeds: dict[tuple[int, str], _PatternFeed] = {}

    def join(self, bus: EventBus, pattern: str, handler: tornado.web.RequestHandler) -> SseClient:
        """A new client of ``pattern`` on ``bus``; subscribed before this returns."""
        key = (id(bus), pattern)
        feed = self._feeds.get(key)
        if feed is None or feed.bus is not bus:
            feed = _PatternFeed(
                self, bus, pattern, IOLoop.current(), max(self.capacity, FEED_BUFFER_MIN)
            )
            self._feeds[key] = feed
        client = SseClient(handler, self.capacity)
        feed.clients.append(client)
        return client

    def leave(self, bus: EventBus, pattern: str, client: SseClient) -> None:
        """``client`` is done; the pattern's bus subscription goes with its last client."""
        client.close()
        feed = self._feeds.get((id(bus), pattern))
        if feed is None:
            return
        if client in feed.clients:
            feed.clients.remove(client)
        if not feed.clients:
            del self._feeds[(id(bus), pattern)]
            feed.subscription.dispose()

    def client_count(self) -> int:
        """Clients connected now (for tests and benchmarks)."""
        return sum(len(f.clients) for f in self._feeds.values())


def frame(event: Event) -> str:
    """One SSE frame of ``event``: ``id:`` is its seq (none for an event without one)."""
    data = dumps(event.to_dict())
    return f"id: {event.seq}\ndata: {data}\n\n" if event.seq else f"data: {data}\n\n"


def dumps(data: Any) -> str:
    """Compact JSON; non-finite floats become null (JSON has no NaN), other values that are
    not JSON become their ``str``."""
    try:  # the common case, with an encoder built once (json.dumps builds one per call)
        return _STRICT(data)
    except (TypeError, ValueError):
        return json.dumps(_finite(data), default=str, separators=(",", ":"))


_STRICT = json.JSONEncoder(allow_nan=False, separators=(",", ":"), check_circular=False).encode


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _bound_send_buffer(handler: tornado.web.RequestHandler) -> None:
    stream = getattr(handler.request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


def _max_seq(events: list[Event]) -> int:
    return max((e.seq for e in events), default=0)


async def replay(
    handler: tornado.web.RequestHandler,
    log_reader: Callable[..., list[Event]],
    pattern: str,
    last_id: int,
    is_closed: Callable[[], bool],
) -> int:
    """Write the logged events matching ``pattern`` with seq > ``last_id``, page by page (the
    reads run off the loop); returns the last seq written."""
    last_sent = last_id
    loop = IOLoop.current()
    while not is_closed():
        try:
            page = await loop.run_in_executor(
                None,
                lambda since=last_sent: log_reader(
                    since_seq=since, topic=pattern, limit=REPLAY_PAGE
                ),
            )
        except SeamlessError:
            log.exception("sse: replay from the event log failed")
            handler.write('event: error\ndata: {"error": "event log unavailable"}\n\n')
            await handler.flush()
            raise StreamClosedError() from None
        for event in page:
            handler.write(frame(event))
            last_sent = event.seq
        await handler.flush()
        if len(page) < REPLAY_PAGE:
            break
    return last_sent
