"""A read-only replica of one book, for dashboards and notebooks on hosts without the engine.

A :class:`Mirror` restores the book from the shared log (PostgreSQL: snapshot + tail), then
follows the book's committed events live — from NATS JetStream when ``bus.transport`` is
``jetstream`` (a durable consumer that resumes where it stopped), otherwise by polling the log.
Every followed event goes through a local bus and state store exactly as on the node, so the
dashboard, ``/api/events`` and notebook code written against a :class:`~engine.kernel.Kernel`
read a mirror the same way. A mirror never writes: its journal
(:class:`~state.journal.ReplicaJournal`) only accepts events already sequenced by the
owning node, in order, and commands are refused.
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable
from typing import Any, Protocol

from engine.config import SeamlessConfig
from engine.kernel import Kernel, Mode
from persistence.recorder import Recorder
from streams.clock import Clock
from streams.errors import AccessDenied, SeamlessError
from streams.events import ACTIVE, CommandIssued, Event

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


class Mirror(Kernel):
    """One book's state, bus and log on a host that does not run its engine (read-only).

    A :class:`~engine.kernel.Kernel` in ``mirror`` mode: restored from the log, with a bus
    and state store but no trading components. It offers what the dashboard, the SSE
    endpoint and notebooks read of a kernel: ``config``, ``log``, ``bus``, ``store``,
    ``runner.status``, ``host.strategies``, ``health()``; ``command`` raises
    :class:`ReadOnlyMirror`.
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
        super().__init__(config, mode=Mode.MIRROR, clock=clock, journal=log_)
        self._follow_factory = follow
        self._poll_s = poll_interval_s
        self._lock = threading.Lock()  # one delivery at a time (backfill + publish in order)
        self.runner = types.SimpleNamespace(status="mirror", feed=None)  # type: ignore[assignment]
        self.host = types.SimpleNamespace(strategies={})  # type: ignore[assignment]
        self._published = self.restored.seq  # the highest seq handed to the bus
        self._following: Following | None = None
        #: Every book of a shared log (an ``engine.cluster.ClusterView``), when served so.
        self.cluster: Any = None

    @classmethod
    def from_config(cls, config: SeamlessConfig, **kwargs: Any) -> Mirror:
        """A mirror of ``config.storage.stream`` (the same config file as the node's)."""
        return cls(config, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Mirror:
        """Start following the book live (JetStream or log polling)."""
        if self._following is not None:
            return self
        if self._follow_factory is not None:
            self._following = self._follow_factory(self._published, self.deliver)
        else:
            self._following = _LogPoller(self.log, self._published, self.deliver, self._poll_s)
        self._ready = True  # restored and following: /readyz and READY=1
        return self

    def stop(self, how: str = "clean") -> None:
        """Stop following, dispatch what is queued, close the log reader (and the cluster)."""
        self._stopped, self._ready = True, False
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

    def command(self, command: str, actor: str, **args: Any) -> CommandIssued:
        """Refused: a mirror is read-only; commands go to the node that owns the book."""
        raise ReadOnlyMirror(
            f"command {command!r} refused: this dashboard mirrors book "
            f"{self.config.storage.stream!r} read-only; send it to the node that owns the book"
        )

    def set_authorizer(self, authorize: Callable[[str, str], bool] | None) -> None:
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
                "mode": str(self.mode),
                "runner": "mirror",
                "trading": self.store.get_state("trading.state", ACTIVE),
                "book": self.config.storage.stream,
                "run_id": None,
            },
            "bus": {
                "queue_depth": len(self.bus.inbox),
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
