"""The bus's dispatcher: the one thread that commits, applies and delivers events, in causal order.

Threading model. ``Subject.on_next`` is not thread-safe, so exactly one thread dispatches:

* threaded mode (live): ``publish`` from any thread puts the event into a bounded
  :class:`~streams.inbox.Inbox`; one dispatcher thread takes batches and dispatches them;
* synchronous mode (backtests, tests, notebooks): ``publish`` dispatches in the caller's
  thread before it returns.

Causal order. Each event handed in from outside (the inbox, or a synchronous ``publish``) is
dispatched *to completion* before the next one: the events its subscribers publish, and the
events those publish in turn, are all committed and delivered first. Within that, follow-up
events are queued and dispatched round by round (breadth first), so the order in which events
are applied is the order in which they were committed (``seq``), and a replay of the log
rebuilds the same state.

Stages (:class:`~streams.bus.Stage`). The subscribers of a later stage see an event only after
every event published by an earlier stage's subscribers has been delivered in full.

Before subscribers see a batch, an optional :class:`DispatchHook` (the state store, wired by
the kernel) commits it to the journal and then applies each event to state: durable before
visible.

:class:`Dispatcher` is the base of :class:`~streams.bus.EventBus`, which adds publishing and
the subscription tables; the split is by responsibility only (no extra call per event).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

from reactivex.subject import Subject

from streams.events import Event
from streams.inbox import Inbox

log = logging.getLogger("streams.bus")  # the bus's one logger, whichever module logs

#: The Subjects an event of one topic is delivered to: one tuple per stage, in stage order.
Route = tuple[tuple[Subject[Event], ...], ...]


class DispatchHook(Protocol):
    """What the dispatcher runs around fan-out (implemented by the state store)."""

    def commit(self, events: Sequence[Event]) -> list[Event]:
        """Make ``events`` durable as needed; return them with ``seq`` set, duplicates removed."""
        ...

    def apply(self, event: Event) -> None:
        """Fold one committed event into state, just before subscribers see it."""
        ...

    def idle(self) -> None:
        """Called when the dispatcher has nothing left to do (flush throttled views)."""
        ...


@dataclass
class BusStats:
    """Counters for health pages and benchmarks (read them from any thread)."""

    published: int = 0
    dispatched: int = 0
    duplicates: int = 0
    subscriber_errors: dict[str, int] = field(default_factory=dict)
    hook_errors: int = 0
    #: Events dispatched per topic (``/metrics`` rates); copy with ``dict(...)`` to read.
    by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def errors_total(self) -> int:
        """All subscriber failures counted so far."""
        return sum(self.subscriber_errors.values())


class Dispatcher:
    """The dispatch side of the bus: its thread, its lifecycle and the dispatch rounds.

    A subclass supplies :meth:`_route` (which Subjects see a topic) and keeps ``_routes``, the
    topic -> :data:`Route` cache read here once per event.
    """

    def __init__(
        self, *, threaded: bool, capacity: int, max_batch: int, hook: DispatchHook | None, name: str
    ) -> None:
        self.name = name
        self.threaded = threaded
        self.stats = BusStats()
        self._hook = hook
        self._max_batch = max_batch
        self._inbox = Inbox(capacity)
        # topic -> the Subjects to deliver to (copy-on-write, see EventBus._acquire)
        self._routes: dict[str, Route] = {}
        self._local: deque[Event] = deque()
        self._dispatcher_id: int | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._closed = False
        self._round_started = 0.0  # time.monotonic() when the running round began; 0 = idle
        self._after_round: list[Callable[[], None]] = []  # run when the current round ends

    # -- lifecycle -----------------------------------------------------------------------
    def set_hook(self, hook: DispatchHook | None) -> None:
        """Install the commit/apply hook; do this before the first publish."""
        self._hook = hook

    def start(self) -> Self:
        """Start the dispatcher thread (threaded mode); a no-op in synchronous mode."""
        if self.threaded and self._thread is None:
            self._running = True
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-dispatch", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Dispatch what is queued, then stop; later publishes raise
        :class:`~streams.errors.BusClosed`."""
        if self._closed:
            return
        if self.threaded and self._thread is not None:
            self.join(timeout)
            self._running = False
            self._closed = True
            self._inbox.close()
            self._thread.join(timeout)
            self._thread = None
        self._closed = True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far has been dispatched; False on timeout."""
        if not self.threaded:
            return True
        if self.on_dispatch_thread:
            raise RuntimeError("join() called from the dispatcher thread would deadlock")
        return self._inbox.join(timeout)

    @property
    def inbox(self) -> Inbox:
        """The inbox, for monitors (depth, high water, back-pressure counts); do not take."""
        return self._inbox

    @property
    def on_dispatch_thread(self) -> bool:
        """True when called from inside dispatch (the engine thread in threaded mode)."""
        return self._dispatcher_id == threading.get_ident()

    @property
    def dispatcher_alive(self) -> bool:
        """False when the dispatcher thread died while the bus runs; True in synchronous mode,
        before ``start`` and after ``stop``. For liveness probes."""
        return self._thread is None or self._thread.is_alive()

    @property
    def dispatch_busy_s(self) -> float:
        """How long the dispatch round now running has taken (0.0 when idle), for watchdogs:
        one engine thread means a blocking subscriber holds every other one."""
        started = self._round_started
        return time.monotonic() - started if started else 0.0

    def after_round(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the dispatch thread once the round now being dispatched has
        ended, i.e. after the events its subscribers publish in turn (a fill's position and
        P&L updates) have been committed and delivered too. Dispatch thread only.

        For consumers that batch their own output per round (a dashboard session sends one
        update for a trade instead of one per event). A callback that raises is logged.
        """
        if not self.on_dispatch_thread:
            raise RuntimeError("after_round() may only be called from the dispatch thread")
        self._after_round.append(callback)

    # -- dispatch ------------------------------------------------------------------------
    def _route(self, topic: str) -> Route:
        """The Subjects that see ``topic``, per stage; computed and cached on a miss."""
        raise NotImplementedError

    def _run(self) -> None:
        self._dispatcher_id = threading.get_ident()
        inbox = self._inbox
        while self._running or len(inbox):
            batch = inbox.take(self._max_batch, timeout=0.1)
            if batch:
                self._round_started = time.monotonic()
                try:
                    self._dispatch_round(batch)
                except Exception:  # the dispatcher must survive anything a batch does
                    self._local.clear()
                    log.exception("bus %s: a dispatch round failed; not delivered", self.name)
                finally:
                    self._round_started = 0.0
                    inbox.task_done(len(batch))
            if not len(inbox):
                self._call_idle()

    def _dispatch_round(self, batch: list[Event]) -> None:
        """Dispatch each event handed in from outside to completion, one after the other."""
        try:
            for event in batch:
                self._dispatch_batch([event])
                if self._local:
                    self._drain()
        finally:
            if self._after_round:
                self._run_after_round()
        if not self.threaded:
            self._call_idle()  # the threaded dispatcher calls it when its inbox runs dry

    def _drain(self) -> None:
        """Dispatch the follow-up events queued so far, and theirs, until none is left."""
        local = self._local
        while local:
            batch = list(local)
            local.clear()
            self._dispatch_batch(batch)

    def _run_after_round(self) -> None:
        callbacks, self._after_round = self._after_round, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("bus %s: an after-round callback failed", self.name)

    def _dispatch_batch(self, batch: list[Event]) -> None:
        hook = self._hook
        if hook is not None:
            try:
                committed = hook.commit(batch)
            except Exception:
                self.stats.hook_errors += 1
                log.exception("bus %s: commit failed for %d events", self.name, len(batch))
                raise
            self.stats.duplicates += len(batch) - len(committed)
            batch = committed
        stats = self.stats
        by_topic = stats.by_topic
        for event in batch:
            if hook is not None:
                hook.apply(event)
            by_topic[event.topic] = by_topic.get(event.topic, 0) + 1
            stages = self._routes.get(event.topic)
            if stages is None:
                stages = self._route(event.topic)
            if len(stages) == 1:
                for subject in stages[0]:
                    subject.on_next(event)
            elif stages:
                self._deliver_in_stages(event, stages)
            stats.dispatched += 1

    def _deliver_in_stages(self, event: Event, stages: Route) -> None:
        last = len(stages) - 1
        for index, subjects in enumerate(stages):
            for subject in subjects:
                subject.on_next(event)
            if index < last and self._local:
                self._drain()  # what this stage caused is delivered before the next stage

    def _call_idle(self) -> None:
        hook = self._hook
        if hook is not None:
            try:
                hook.idle()
            except Exception:
                self.stats.hook_errors += 1
                log.exception("bus %s: idle hook failed", self.name)
