"""A read-only replica of one book, for dashboards and notebooks on hosts without the engine.

A :class:`Mirror` restores the book from the shared log (PostgreSQL: snapshot + tail), then
follows the book's committed events live — from NATS JetStream when ``bus.transport`` is
``jetstream`` (a durable consumer that resumes where it stopped), otherwise by polling the log.
Every followed event goes through a local bus and state store exactly as on the node, so the
dashboard, ``/api/events`` and notebook code written against a :class:`~engine.kernel.Kernel`
read a mirror the same way. A mirror never writes: its journal (:class:`ReplicaJournal`) only
accepts events already sequenced by the owning node, in order, and commands are refused.
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable
from typing import Any, Protocol

from engine.config import SeamlessConfig
from engine.core import build_core
from engine.recorders import open_recorder
from persistence import restore
from persistence.recorder import Recorder
from streams.clock import Clock, LiveClock
from streams.errors import AccessDenied, SeamlessError
from streams.events import ACTIVE, Event

log = logging.getLogger(__name__)


class ReadOnlyMirror(AccessDenied):
    """A command was sent to a mirror: commands go to the node that owns the book."""


class Following(Protocol):
    """A running live source of a book's committed events; ``close`` stops it."""

    def close(self) -> None:
        """Stop following (idempotent)."""
        ...


#: Starts following from after ``seq``, calling ``deliver`` for each committed event.
FollowFactory = Callable[[int, Callable[[Event], None]], Following]


class ReplicaJournal:
    """A journal that takes events already sequenced elsewhere, in order, without writing.

    ``append`` keeps an event whose seq is exactly ``last_seq + 1``; an older seq (a duplicate
    from a redelivery) or a local event without seq returns None, so it is neither folded nor
    delivered. A newer seq means events were missed: the mirror backfills them from the log
    first, so reaching here with a gap is a bug and raises.
    """

    def __init__(self, last_seq: int) -> None:
        self._seq = last_seq
        self.dropped = 0

    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        if event.seq <= self._seq:
            self.dropped += 1
            if event.seq == 0:
                log.warning("mirror: local %s not shown (a mirror records nothing)", event.type)
            return None
        if event.seq != self._seq + 1:
            raise SeamlessError(f"mirror: got seq {event.seq} after {self._seq} (a gap)")
        self._seq = event.seq
        return event

    def wait_durable(self, seq: int) -> None:
        return None

    def flush(self) -> int:
        return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq


class _LogPoller:
    """Follows a book by reading its log every ``interval_s`` (when no JetStream is set up)."""

    def __init__(
        self, log_: Recorder, after: int, deliver: Callable[[Event], None], interval_s: float
    ) -> None:
        self._log = log_
        self._after = after
        self._deliver = deliver
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seamless-mirror-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                for event in self._log.read(since_seq=self._after, limit=5_000):
                    self._deliver(event)
                    self._after = event.seq
            except SeamlessError as exc:
                log.warning("mirror: cannot read the log yet: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Mirror:
    """One book's state, bus and log on a host that does not run its engine (read-only).

    Offers the parts of :class:`~engine.kernel.Kernel` that the dashboard, the SSE endpoint
    and notebooks read: ``config``, ``log``, ``bus``, ``store``, ``runner.status``,
    ``host.strategies``, ``health()``; ``command`` raises :class:`ReadOnlyMirror`.
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        log_: Recorder | None = None,
        follow: FollowFactory | None = None,
        clock: Clock | None = None,
        poll_interval_s: float = 0.2,
    ) -> None:
        self.config = config
        self.clock = clock or LiveClock()
        self.log: Recorder = log_ if log_ is not None else open_recorder(config.storage)
        self._follow_factory = follow
        self._poll_s = poll_interval_s
        self._lock = threading.Lock()  # one delivery at a time (backfill + publish in order)
        restored = restore(self.log)
        self.journal = ReplicaJournal(restored.seq)
        self.core = build_core(
            journal=self.journal,
            clock=self.clock,
            threaded=True,
            starting_cash=0.0,
            owners={"engine": [""]},
            view_interval_s=config.state.view_interval_s,
            capacity=config.bus.capacity,
            max_batch=config.bus.max_batch,
            initial_state=restored.state,
        )
        self.bus = self.core.bus
        self.store = self.core.store
        self.runner = types.SimpleNamespace(status="mirror")
        self.host = types.SimpleNamespace(strategies={})
        self.run_id: str | None = None
        self._published = restored.seq  # the highest seq handed to the bus
        self._following: Following | None = None
        #: Every book of a shared log (an ``engine.cluster.ClusterView``), when served so.
        self.cluster: Any = None

    @classmethod
    def from_config(cls, config: SeamlessConfig, **kwargs: Any) -> Mirror:
        """A mirror of ``config.storage.stream`` (the same config file as the node's)."""
        return cls(config, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start following the book live (JetStream or log polling)."""
        if self._following is not None:
            return
        if self._follow_factory is not None:
            self._following = self._follow_factory(self._published, self.deliver)
        else:
            self._following = _LogPoller(self.log, self._published, self.deliver, self._poll_s)

    def stop(self) -> None:
        """Stop following, dispatch what is queued, close the log reader (and the cluster)."""
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.close(keep=self)
        if self._following is not None:
            self._following.close()
            self._following = None
        self.bus.stop()
        self.log.close()

    def deliver(self, event: Event) -> None:
        """Hand one committed event of the book to the local bus, in seq order, exactly once.

        Called by the live source (any thread). A redelivered event is dropped; a gap (the
        source skipped events, e.g. JetStream lost them) is filled from the log first."""
        with self._lock:
            if event.seq <= self._published:
                return
            if event.seq > self._published + 1:
                for missed in self.log.read(since_seq=self._published, until_seq=event.seq - 1):
                    self._publish(missed)
            if event.seq == self._published + 1:
                self._publish(event)

    def _publish(self, event: Event) -> None:
        self.bus.publish(event)
        self._published = event.seq

    # -- what the dashboard asks of an engine ------------------------------------------------
    @property
    def published_seq(self) -> int:
        """The highest seq of the book handed to the local bus."""
        return self._published

    def command(self, command: str, actor: str, **args: Any) -> None:
        """Refused: a mirror is read-only; commands go to the node that owns the book."""
        raise ReadOnlyMirror(
            f"command {command!r} refused: this dashboard mirrors book "
            f"{self.config.storage.stream!r} read-only; send it to the node that owns the book"
        )

    def set_authorizer(self, authorize: Callable[[str, str], bool]) -> None:
        """Accepted for the dashboard's wiring; a mirror authorizes no command anyway."""

    def authorize(self, actor: str, command: str) -> bool:
        """No command is authorized on a mirror."""
        return False

    def health(self) -> dict[str, Any]:
        """Health in the kernel's shape, with the mirror's lag behind the log."""
        seq, version, _ = self.store.snapshot()
        return {
            "engine": {
                "name": self.config.engine.name,
                "runner": "mirror",
                "trading": self.store.get_state("trading.state", ACTIVE),
                "book": self.config.storage.stream,
                "run_id": None,
            },
            "bus": {
                "queue_depth": len(self.bus._inbox),
                "subscribers": self.bus.subscriber_count(),
            },
            "event_log": {
                "healthy": self.log.healthy,
                "last_error": self.log.last_error,
                "last_seq": self.log.last_seq,
                "mirrored_seq": self._published,
            },
            "state": {"seq": seq, "version": version},
        }


def start_mirror(config: SeamlessConfig) -> Mirror:
    """A started mirror of ``config.storage.stream``: live from JetStream when
    ``bus.transport`` is ``jetstream`` (resuming by sequence after a disconnect), else by
    polling the log. Used by ``seamless serve --mirror`` and notebooks."""
    follow: FollowFactory | None = None
    if config.bus.transport == "jetstream":
        from engine.jetstream import follow_book

        def follow(after: int, deliver: Callable[[Event], None]) -> Following:
            return follow_book(config, after, deliver)

    mirror = Mirror.from_config(config, follow=follow)
    mirror.start()
    return mirror
