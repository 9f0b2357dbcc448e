"""The outbox relay: committed events of one book's log, copied to JetStream in seq order.

The event log is the outbox. The engine commits events to it as always (durable before
visible) and never waits for NATS; this relay, in its own thread, reads what is *committed*
(``recorder.read_df(position, until_seq=recorder.committed_seq)``), publishes each event to
``<prefix>.<source>.<topic>`` and moves its position only once JetStream has acknowledged
the whole batch. So NATS being slow or down never stops trading or logging: the relay falls
behind (``lag``), retries with backoff, and catches up when NATS is back.

Exactly-once in the stream, from at-least-once publishing:

- The relay keeps no position file. At start, and after any NATS failure, it asks JetStream
  for the last message stored under ``<prefix>.<source>.>`` and resumes after its
  ``Seamless-Seq`` header. A relay killed mid-batch therefore resumes exactly where the
  stream ends, and a JetStream store that lost its tail (or was wiped) heals itself: the relay
  re-sends from the log what the stream no longer has.
- Each message carries ``Nats-Msg-Id = event_id``; the batch in flight at a failure may be
  sent twice, and JetStream drops the second copy (counted as ``duplicates``) as long as it
  comes within the stream's duplicate window.

Durability of the stream (see ``ensure_stream``): **file storage, one replica, the server's
default flushing** (nats-server 2.9, Debian's, writes each message to the OS at once and
fsyncs its files periodically; it has no per-message fsync option). File storage means the
stream and the durable consumers' positions survive a nats-server restart or crash, which is
what lets remote consumers resume by sequence. A per-message fsync (or three replicas) would
buy nothing here, because the stream is derived data: the event log (fsync on every commit)
is the truth, and the resume rule above re-sends whatever an OS crash took from the stream's
tail. The duplicate window (2 minutes, NATS' default) only has to cover the batch in flight
at a failure, re-sent within seconds of reconnecting; a longer window costs server memory
(one id per message within it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from engine.jetstream import wire
from engine.jetstream.client import NATS_ERRORS, NatsClient
from engine.jetstream.publisher import BatchPublisher
from engine.jetstream.wire import WireMessage, encode_rows, header_seq
from persistence.codec import EVENT_COLUMNS
from persistence.recorder import Recorder
from streams.errors import PersistenceError, SeamlessError, TransportError

if TYPE_CHECKING:
    from engine.config import SeamlessConfig

log = logging.getLogger(__name__)

_NO_MESSAGE = 10037  # JetStream API error code: no message found for that subject


class OutboxRelay:
    """Relays the committed events of ``recorder`` to JetStream stream ``stream_name``.

    ``source`` names the book (``storage.stream``); its events go to
    ``<subject_prefix>.<source>.<topic>``. ``start()`` runs the relay in a daemon thread,
    ``stop()`` drains (up to ``drain_timeout_s``) and stops it; ``stats()`` is for /api/health.
    """

    def __init__(
        self,
        recorder: Recorder,
        nats_url: str,
        *,
        stream_name: str = "SEAMLESS",
        subject_prefix: str = "seamless",
        source: str = "default",
        batch_size: int = 500,
        poll_interval_s: float = 0.002,
        ack_timeout_s: float = 5.0,
        max_backoff_s: float = 2.0,
        duplicate_window_s: float = 120.0,
    ) -> None:
        if batch_size < 1:
            raise TransportError(f"relay batch_size must be >= 1, got {batch_size!r}")
        if not stream_name or any(c in stream_name for c in " .*>"):
            raise TransportError(f"bus.jetstream_stream has invalid value {stream_name!r}")
        if any(wire.token(part) != part for part in subject_prefix.split(".")):
            raise TransportError(f"relay subject_prefix has invalid value {subject_prefix!r}")
        self.recorder = recorder
        self.stream_name = stream_name
        self.prefix = subject_prefix
        self.source = source
        self.subjects = wire.subject_prefix(subject_prefix, source) + ".>"
        self._batch = batch_size
        self._poll = poll_interval_s
        self._ack_timeout = ack_timeout_s
        self._max_backoff = max_backoff_s
        self._dup_window = duplicate_window_s
        self._client = NatsClient(nats_url, name=f"relay-{source}")
        self._publisher = BatchPublisher()  # used on the client's loop only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position: int | None = None  # last seq JetStream holds; None = ask JetStream
        self._last_relayed = 0
        self._relayed = 0
        self._duplicates = 0
        self._failures = 0
        self._resyncs = 0
        self._last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> OutboxRelay:
        """Start relaying in a daemon thread (it connects, and retries, by itself)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"outbox-relay-{self.source}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Relay what is committed (waiting up to ``drain_timeout_s``), then stop."""
        if self._thread is not None and drain_timeout_s > 0:
            self.wait_caught_up(drain_timeout_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._ack_timeout + 5.0)
            self._thread = None
        self._client.close()

    def wait_caught_up(self, timeout: float, seq: int | None = None) -> bool:
        """Wait until everything committed (or up to ``seq``) is in JetStream; True if so."""
        deadline = time.monotonic() + timeout
        while True:
            target = self._committed() if seq is None else seq
            if self._position is not None and self._last_relayed >= target:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def resend_from(self, seq: int) -> None:
        """Re-publish every committed event after ``seq`` (JetStream drops the duplicates)."""
        self._position = max(0, seq)

    # -- state ---------------------------------------------------------------------------------
    @property
    def last_relayed_seq(self) -> int:
        """The highest seq JetStream is known to hold for this source."""
        return self._last_relayed

    def _committed(self) -> int:
        try:
            return int(self.recorder.committed_seq)
        except SeamlessError:
            return self._last_relayed

    def stats(self) -> dict[str, Any]:
        """Relay counters for the health endpoint and benchmarks."""
        committed = self._committed()
        return {
            "transport": "jetstream",
            "stream": self.stream_name,
            "source": self.source,
            "connected": self._client.connected,
            "running": self._thread is not None and self._thread.is_alive(),
            "relayed": self._relayed,
            "duplicates": self._duplicates,
            "last_relayed_seq": self._last_relayed,
            "committed_seq": committed,
            "lag": max(0, committed - self._last_relayed),
            "failures": self._failures,
            "resyncs": self._resyncs,
            "last_error": self._last_error or self._client.problem,
        }

    # -- the relay thread ------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                moved = self._step()
            except SeamlessError as exc:  # NATS down, log failing, an unencodable event
                self._failures += 1
                self._last_error = str(exc)
                if isinstance(exc, TransportError):
                    self._position = None  # uncertain: ask JetStream where it ends
                log.warning("outbox relay %s: %s (retry in %.2fs)", self.source, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.05
            if not moved:
                self._stop.wait(self._poll)

    def _step(self) -> bool:
        """Relay one batch; False when there was nothing to relay."""
        if self._position is None:
            self._position = self._client.call(self._resync(), timeout=self._ack_timeout + 5)
            self._last_relayed = self._position
            self._resyncs += 1
        position = self._position
        committed = self.recorder.committed_seq
        if committed <= position:
            if committed < position and self._last_error is None:
                self._last_error = f"JetStream holds seq {position} beyond committed {committed}"
                log.error("outbox relay %s: %s", self.source, self._last_error)
            return False
        rows = self.recorder.read_df(position, until_seq=committed, limit=self._batch)
        if rows.empty:
            return False
        columns = {name: rows[name].tolist() for name in EVENT_COLUMNS}
        messages = encode_rows(columns, self.prefix, self.source)
        if messages[0].seq != position + 1:
            raise PersistenceError(
                f"event log returned seq {messages[0].seq} after {position} (expected no gap)"
            )
        duplicates = self._client.call(self._publish(messages), timeout=self._ack_timeout + 1)
        self._duplicates += duplicates
        self._relayed += len(messages) - duplicates
        last = messages[-1].seq
        if self._position == position:  # not moved by resend_from meanwhile
            self._position = last
        self._last_relayed = max(self._last_relayed, last)
        self._last_error = None
        return True

    # -- on the NATS loop ----------------------------------------------------------------------
    async def _resync(self) -> int:
        """Make sure the stream exists; the last seq it holds for this source (0 if none)."""
        nc, js = await self._client.connection()
        if not nc.is_connected:
            raise TransportError(f"NATS {self._client.url} is not connected (reconnecting)")
        await ensure_stream(js, self.stream_name, self.prefix, self._dup_window)
        try:
            msg = await js.get_last_msg(self.stream_name, self.subjects)
        except NotFoundError as exc:
            if exc.err_code == _NO_MESSAGE:
                return 0
            raise TransportError(f"JetStream stream {self.stream_name!r}: {exc}") from exc
        except NATS_ERRORS as exc:
            raise TransportError(f"JetStream stream {self.stream_name!r}: {exc}") from exc
        seq = header_seq(msg.headers)
        if seq is None:
            raise TransportError(
                f"last message on {self.subjects!r} in {self.stream_name!r} has no Seamless-Seq"
            )
        return seq

    async def _publish(self, messages: list[WireMessage]) -> int:
        """Publish ``messages`` in order and wait for every ack; how many were duplicates."""
        nc, _ = await self._client.connection()
        if not nc.is_connected:
            raise TransportError(f"NATS {self._client.url} is not connected (reconnecting)")
        try:
            return await self._publisher.publish(nc, messages, self._ack_timeout)
        except NATS_ERRORS as exc:
            raise TransportError(f"JetStream publish to {self.stream_name!r}: {exc!r}") from exc


async def ensure_stream(js: Any, name: str, prefix: str, duplicate_window_s: float) -> None:
    """Create stream ``name`` over ``<prefix>.>`` with file storage unless it exists.

    An existing stream is kept as it is (an operator may have tuned it), but it must capture
    ``<prefix>.>``, else events would go nowhere: TransportError naming both.
    """
    wanted = f"{prefix}.>"
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=[wanted],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            num_replicas=1,
            duplicate_window=duplicate_window_s,
            description="Seamless committed events, relayed from each book's event log",
        )
        try:
            await js.add_stream(config)
        except NATS_ERRORS as exc:
            raise TransportError(f"cannot create JetStream stream {name!r}: {exc}") from exc
        return
    except NATS_ERRORS as exc:
        raise TransportError(f"JetStream stream {name!r}: {exc}") from exc
    subjects = info.config.subjects or []
    if wanted not in subjects and ">" not in subjects:
        raise TransportError(
            f"JetStream stream {name!r} captures {subjects!r}, not {wanted!r} "
            "(bus.jetstream_stream names a stream of something else?)"
        )


def start_relay(config: SeamlessConfig, recorder: Recorder) -> OutboxRelay:
    """The relay the kernel starts for ``bus.transport: jetstream`` (already started)."""
    return OutboxRelay(
        recorder,
        config.bus.nats_url,
        stream_name=config.bus.jetstream_stream,
        source=config.storage.stream,
    ).start()
