"""Remote consumers: committed events from JetStream, handed to a callback or a local bus.

A dashboard server on another host, or a notebook, follows one or more books through a
*durable* JetStream consumer. With ``bus=`` the events are published into an ordinary local
:class:`~streams.bus.EventBus`, so code subscribed to that bus (views, notebook cells) does
not change when the transport does.

Delivery is in stream order, without loss or duplicates, across disconnects:

- A continuous pull: one outstanding pull request of ``batch_size`` messages (expiring after
  ``expires_s``) is renewed as it is used up, so an event is handed on the moment it arrives.
- Acks use AckAll on the last handed-on message (when the local queue is empty or every
  ``ack_every`` messages): the durable consumer's ack floor is where a restarted consumer
  resumes.
- Messages pushed while the connection was down are lost in transit, and AckAll would ack
  over them. So after a reconnect, or when the consumer sequence skips (a message went
  missing), the consumer is rebuilt to start at the stream sequence after the last event
  handed on ("resume by sequence"), instead of waiting ``ack_wait`` for redelivery out of
  order. A durable consumer found with unacked deliveries is rebuilt the same way.
- Each source's events carry their log seq (``Seamless-Seq``); one at or below the last seq
  handed on for that source is dropped and counted (a defensive second line: the relay never
  stores an event twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from engine.jetstream.client import NATS_ERRORS, NatsClient
from engine.jetstream.pull import PullEnded, PullSession
from engine.jetstream.wire import SOURCE_HEADER, decode, header_seq, token
from engine.jetstream.wire import subject_prefix as wire_subject_prefix
from streams.bus import EventBus
from streams.errors import SeamlessError, TransportError
from streams.events import Event

if TYPE_CHECKING:
    from engine.config import SeamlessConfig

log = logging.getLogger(__name__)

_RETRYABLE: tuple[type[BaseException], ...] = (SeamlessError, *NATS_ERRORS)


class RemoteEventSource:
    """Follows ``filter_subject`` in stream ``stream_name`` through durable ``durable_name``.

    Each event goes to ``on_event`` (called on the NATS thread: keep it quick) and/or is
    published into ``bus``. ``positions`` (source -> last seq already seen) lets a restarted
    process that kept its own state skip what it has. ``resume_after`` (a log seq; for a
    filter on one source) starts the durable consumer just after that event, wherever the
    durable was: a mirror restored from the log up to that seq continues from there.
    """

    def __init__(
        self,
        nats_url: str,
        durable_name: str,
        *,
        stream_name: str = "SEAMLESS",
        filter_subject: str = "seamless.>",
        on_event: Callable[[Event], None] | None = None,
        bus: EventBus | None = None,
        batch_size: int = 512,
        expires_s: float = 2.0,
        ack_every: int = 256,
        ack_wait_s: float = 30.0,
        positions: dict[str, int] | None = None,
        resume_after: int | None = None,
    ) -> None:
        if on_event is None and bus is None:
            raise TransportError("RemoteEventSource needs on_event or bus (got neither)")
        if not durable_name or any(c in durable_name for c in " .*>"):
            raise TransportError(f"durable_name has invalid value {durable_name!r}")
        self.durable_name = durable_name
        self.stream_name = stream_name
        self.filter_subject = filter_subject
        self._on_event = on_event
        self._bus = bus
        self._batch = batch_size
        self._expires = expires_s
        self._ack_every = ack_every
        self._ack_wait = ack_wait_s
        self._client = NatsClient(nats_url, name=f"remote-{durable_name}")
        self._future: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._positions: dict[str, int] = dict(positions or {})
        self._resume_after = resume_after
        self._last_stream_seq = 0  # stream seq of the last event handed on
        self._cseq = 0  # consumer seq of the last delivery seen in this binding
        self._counts = dict.fromkeys(
            ("received", "delivered", "duplicates", "rejected", "callback_errors", "resyncs"), 0
        )
        self._last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> RemoteEventSource:
        """Start consuming in the background (connects, and reconnects, by itself)."""
        if self._future is None:
            self._future = self._client.submit(self._consume())
        return self

    def stop(self) -> None:
        """Stop consuming and close the connection; the durable consumer stays on the server."""
        future, self._future = self._future, None
        if future is not None:
            try:
                self._client.call(self._halt(), timeout=5.0)
            except TransportError as exc:
                log.warning("remote consumer %s: stop: %s", self.durable_name, exc)
        self._client.close()

    close = stop

    # -- state ---------------------------------------------------------------------------------
    @property
    def positions(self) -> dict[str, int]:
        """Source (book) -> last seq handed on."""
        with self._lock:
            return dict(self._positions)

    def wait_for_seq(self, source: str, seq: int, timeout: float) -> bool:
        """Wait until the event with ``seq`` of ``source`` has been handed on; True if so."""
        deadline = time.monotonic() + timeout
        while self.positions.get(source, 0) < seq:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stats(self) -> dict[str, Any]:
        """Counters for health pages and tests."""
        return {
            **self._counts,
            "durable": self.durable_name,
            "connected": self._client.connected,
            "last_stream_seq": self._last_stream_seq,
            "positions": self.positions,
            "last_error": self._last_error or self._client.problem,
        }

    # -- on the NATS loop ----------------------------------------------------------------------
    async def _halt(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _consume(self) -> None:
        self._task = asyncio.current_task()
        backoff = 0.05
        while True:
            try:
                nc, js = await self._client.connection()
                await self._bind(js)
                await self._pull(nc)
            except PullEnded as exc:
                self._counts["resyncs"] += 1
                log.info("remote consumer %s: %s; resuming by sequence", self.durable_name, exc)
                backoff = 0.05
            except _RETRYABLE as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("remote consumer %s: %s", self.durable_name, self._last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _bind(self, js: JetStreamContext) -> None:
        """Use the durable consumer if it is exactly where we are, else rebuild it there."""
        located = None
        if self._resume_after is not None:
            located = await self._locate(js, self._resume_after)
        try:
            info = await js.consumer_info(self.stream_name, self.durable_name)
        except NotFoundError:
            info = None
        if info is not None:
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            start = max(floor, self._last_stream_seq) if located is None else located
            delivered = info.delivered.stream_seq if info.delivered else 0
            if (
                info.config.filter_subject == self.filter_subject
                and delivered == start
                and not info.num_ack_pending
            ):
                self._cseq = info.delivered.consumer_seq if info.delivered else 0
                self._last_stream_seq = start
                return
            await js.delete_consumer(self.stream_name, self.durable_name)
        else:
            start = self._last_stream_seq if located is None else located
        await js.add_consumer(
            self.stream_name,
            ConsumerConfig(
                durable_name=self.durable_name,
                filter_subject=self.filter_subject,
                ack_policy=AckPolicy.ALL,
                ack_wait=self._ack_wait,
                max_ack_pending=max(self._batch * 4, 1024),
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
                opt_start_seq=start + 1 if start else None,
            ),
        )
        self._cseq = 0
        self._last_stream_seq = start

    async def _locate(self, js: JetStreamContext, after: int) -> int:
        """The stream seq just before the first message of our filter with log seq > ``after``.

        A binary search over ``next_by_subj`` lookups (a source's log seqs grow with the stream
        seq), so a few dozen requests instead of reading the stream from its start."""
        stream = self.stream_name
        state = (await js.stream_info(stream)).state
        lo, hi = max(state.first_seq, 1), state.last_seq + 1

        async def first_from(seq: int) -> tuple[int, int] | None:  # (stream seq, log seq)
            try:
                msg = await js.get_msg(
                    self.stream_name, seq, subject=self.filter_subject, next=True
                )
            except NotFoundError:
                return None
            return msg.seq or seq, header_seq(msg.headers) or 0

        while lo < hi:
            mid = (lo + hi) // 2
            found = await first_from(mid)
            if found is None or found[1] > after:
                hi = mid
            else:
                lo = found[0] + 1
        found = await first_from(lo) if lo <= state.last_seq else None
        start = state.last_seq if found is None or found[1] <= after else found[0] - 1
        self._resume_after = None
        return start

    async def _pull(self, nc: Client) -> None:
        """Hand on what the consumer delivers until the delivery goes out of step."""
        disconnects = self._client.disconnects

        def still_ok() -> str | None:
            return "the connection was lost" if self._client.disconnects != disconnects else None

        session = PullSession(
            nc,
            self.stream_name,
            self.durable_name,
            batch=self._batch,
            expires_s=self._expires,
            ack_every=self._ack_every,
        )
        await session.run(self._handle, still_ok)

    def _handle(self, msg: Msg) -> None:
        """Check the delivery is next in line, then hand its event on (once)."""
        meta = msg.metadata
        if meta.sequence.consumer != self._cseq + 1:
            raise PullEnded(f"consumer seq {meta.sequence.consumer} after {self._cseq}")
        self._cseq = meta.sequence.consumer
        self._last_stream_seq = meta.sequence.stream
        self._counts["received"] += 1
        headers = msg.headers or {}
        source = headers.get(SOURCE_HEADER, "")
        seq = header_seq(headers)
        with self._lock:
            if seq is not None and seq <= self._positions.get(source, 0):
                self._counts["duplicates"] += 1
                return
        try:
            event = decode(msg.data)
        except SeamlessError as exc:
            self._counts["rejected"] += 1
            log.error("remote consumer %s: dropped %s: %s", self.durable_name, msg.subject, exc)
            return
        self._deliver(event)
        with self._lock:
            self._positions[source] = event.seq if seq is None else seq
        self._counts["delivered"] += 1

    def _deliver(self, event: Event) -> None:
        if self._bus is not None:
            self._bus.publish(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a failing callback is isolated, like a bus subscriber
                self._counts["callback_errors"] += 1
                log.exception("remote consumer %s: on_event failed", self.durable_name)


def follow_book(
    config: SeamlessConfig,
    after: int,
    deliver: Callable[[Event], None],
    *,
    subject_prefix: str = "seamless",
) -> RemoteEventSource:
    """Follow ``config.storage.stream``'s committed events after log seq ``after`` (a mirror).

    The durable consumer is named after the book and ``cluster.node_id`` (else the host name),
    so each mirror has its own position: give mirrors on one host distinct node ids.
    """
    source = config.storage.stream
    node = config.cluster.node_id or socket.gethostname()
    return RemoteEventSource(
        config.bus.nats_url,
        f"mirror_{token(source)}_{token(node)}",
        stream_name=config.bus.jetstream_stream,
        filter_subject=wire_subject_prefix(subject_prefix, source) + ".>",
        on_event=deliver,
        positions={source: after},
        resume_after=after,
    ).start()
