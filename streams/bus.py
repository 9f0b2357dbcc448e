"""The event bus: Rx Subjects per topic pattern, fed by one dispatcher that alone calls on_next.

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

Stages. A subscription belongs to a :class:`Stage` (``REACT`` unless said otherwise). The
subscribers of a later stage see an event only after every event published by an earlier
stage's subscribers has been delivered in full. This is how one market event is handled in
phases (docs/architecture.md, "Causal order"): the data clock moves to its time (``CLOCK``),
the broker matches working orders against it (``MATCH``) and the fills, orders, positions and
cash are committed and folded; P&L marks to it (``MARK``); only then do strategies and
everyone else see it (``REACT``).

Before subscribers see a batch, an optional :class:`DispatchHook` (the state store, wired by
the kernel) commits it to the journal and then applies each event to state: durable before
visible. Subscribers are isolated: one that raises is counted and reported as an
``error_raised`` event; every other subscriber still receives every event.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from streams import topics
from streams.errors import BusClosed
from streams.events import ErrorRaised, Event
from streams.inbox import Inbox

log = logging.getLogger(__name__)

Callback = Callable[[Event], None]


class Stage(enum.IntEnum):
    """When a subscriber sees an event, relative to the others (see the module doc)."""

    #: The data clock moves to a market event's time (replays and backtests).
    CLOCK = 0
    #: The broker matches working orders against a market event's prices.
    MATCH = 1
    #: P&L marks positions to a market event (and the daily-loss breaker reacts).
    MARK = 2
    #: Strategies, risk, views and everyone else: the default.
    REACT = 3


def _ignore(event: Event) -> None:
    """What a disposed handler calls: nothing (a fan-out may still hold its snapshot)."""


class _Handler:
    """One callback subscription; ``dispose`` turns its callback into a no-op at once."""

    __slots__ = ("callback", "label")

    def __init__(self, label: str, callback: Callback) -> None:
        self.label = label
        self.callback = callback


class _TopicSubject(Subject[Event]):
    """The Subject behind one topic pattern (and stage).

    Only the dispatcher thread calls ``on_next`` (see the module doc), so it skips the lock
    round trips of ``Subject.on_next`` and iterates snapshots, which other threads may replace
    under the bus's lock. Callback subscribers (:meth:`EventBus.subscribe`) are kept as plain
    ``(label, callback)`` handlers and called directly, each isolated; Rx observers
    (:meth:`EventBus.observe`) are the Subject's own observers."""

    def __init__(self, on_failure: Callable[[str, Event, Exception], None]) -> None:
        super().__init__()
        self.handlers: tuple[_Handler, ...] = ()
        self._on_failure = on_failure

    def on_next(self, value: Event) -> None:
        for handler in self.handlers:
            try:
                handler.callback(value)
            except Exception as exc:  # isolation is the point: report, never propagate
                self._on_failure(handler.label, value, exc)
        if self.observers:
            for observer in tuple(self.observers):
                observer.on_next(value)


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


class EventBus:
    """Publish/subscribe over topic patterns, with Rx observables for composition.

    ``subscribe(pattern, callback)`` and ``observe(pattern)`` take patterns with ``*`` (one
    segment) and a trailing ``>`` (the rest), e.g. ``fills.*`` or ``data.>``.
    """

    def __init__(
        self,
        *,
        threaded: bool = True,
        capacity: int = 100_000,
        max_batch: int = 1024,
        hook: DispatchHook | None = None,
        name: str = "bus",
    ) -> None:
        self.name = name
        self.threaded = threaded
        self.stats = BusStats()
        self._hook = hook
        self._max_batch = max_batch
        self._inbox = Inbox(capacity)
        # (pattern, stage) -> its Subject and live subscription count
        self._subjects: dict[tuple[str, Stage], _TopicSubject] = {}
        self._counts: dict[tuple[str, Stage], int] = {}
        # topic -> the Subjects to deliver to, one tuple per stage in stage order
        self._routes: dict[str, tuple[tuple[Subject[Event], ...], ...]] = {}
        self._lock = threading.RLock()  # guards subscription tables, not dispatch
        self._local: deque[Event] = deque()
        self._dispatcher_id: int | None = None
        self._dispatching = False
        self._thread: threading.Thread | None = None
        self._running = False
        self._closed = False
        self._sync_lock = threading.RLock()
        self._round_started = 0.0  # time.monotonic() when the running round began; 0 = idle
        self._after_round: list[Callable[[], None]] = []  # run when the current round ends

    # -- lifecycle -----------------------------------------------------------------------
    def set_hook(self, hook: DispatchHook | None) -> None:
        """Install the commit/apply hook; do this before the first publish."""
        self._hook = hook

    def start(self) -> EventBus:
        """Start the dispatcher thread (threaded mode); a no-op in synchronous mode."""
        if self.threaded and self._thread is None:
            self._running = True
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-dispatch", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Dispatch what is queued, then stop; later publishes raise :class:`BusClosed`."""
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

    def __enter__(self) -> EventBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    # -- publishing ----------------------------------------------------------------------
    def offer(self, event: Event) -> bool:
        """Hand ``event`` to the bus if that needs no wait; False (nothing published) when the
        inbox is full. For live feeds that cannot wait: they count and report what was refused
        (see :mod:`streams.inbox`). Safe from any thread."""
        if self.threaded and self._dispatcher_id != threading.get_ident():
            if self._closed:
                raise BusClosed(f"bus {self.name!r} is stopped; cannot publish {event.type}")
            if self._thread is None:
                raise BusClosed(f"bus {self.name!r} is not started; call start() first")
            try:
                accepted = self._inbox.offer(event)
            except RuntimeError:
                raise BusClosed(f"bus {self.name!r} is stopped") from None
            if accepted:
                self.stats.published += 1
            return accepted
        self.publish(event)
        return True

    def publish(self, event: Event) -> None:
        """Hand ``event`` to the bus. Safe from any thread; blocks while the inbox is full
        (back-pressure, see :mod:`streams.inbox`)."""
        if self._closed:
            raise BusClosed(f"bus {self.name!r} is stopped; cannot publish {event.type}")
        self.stats.published += 1
        if self._dispatcher_id == threading.get_ident():
            self._local.append(event)
            return
        if self.threaded:
            if self._thread is None:
                raise BusClosed(f"bus {self.name!r} is not started; call start() first")
            try:
                self._inbox.put(event)
            except RuntimeError:
                raise BusClosed(f"bus {self.name!r} is stopped") from None
            return
        with self._sync_lock:
            self._dispatcher_id = threading.get_ident()
            try:
                self._dispatch_round([event])
            finally:
                self._dispatcher_id = None

    def join(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far has been dispatched; False on timeout."""
        if not self.threaded:
            return True
        if self.on_dispatch_thread:
            raise RuntimeError("join() called from the dispatcher thread would deadlock")
        return self._inbox.join(timeout)

    # -- subscribing ---------------------------------------------------------------------
    def subscribe(
        self,
        pattern: str,
        callback: Callback,
        *,
        name: str | None = None,
        stage: Stage = Stage.REACT,
    ) -> abc.DisposableBase:
        """Call ``callback(event)`` for every event on a topic matching ``pattern``.

        ``stage`` says when, relative to other subscribers (see :class:`Stage`): everything
        the subscribers of an earlier stage publish is delivered in full before a later
        stage sees the event. Returns a disposable; ``dispose()`` stops delivery. A callback
        that raises is isolated.
        """
        label: str = name or getattr(callback, "__qualname__", None) or repr(callback)
        key = (pattern, Stage(stage))
        handler = _Handler(label, callback)
        with self._lock:
            subject = self._acquire(key)
            subject.handlers = (*subject.handlers, handler)

        def remove() -> None:
            with self._lock:
                if handler.callback is _ignore:
                    return  # already released: dispose() is idempotent
                handler.callback = _ignore  # a fan-out now running skips it too
                subject.handlers = tuple(h for h in subject.handlers if h is not handler)
                self._release(key, None)

        return Disposable(remove)

    def observe(self, pattern: str, *, name: str | None = None) -> Observable[Event]:
        """An Observable of the events matching ``pattern``, for Rx composition.

        Each subscriber's ``on_next`` is isolated like a callback subscriber's.
        """
        label = name or f"observer:{pattern}"

        def subscribe(
            observer: abc.ObserverBase[Event], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(event: Event) -> None:
                try:
                    observer.on_next(event)
                except Exception as exc:
                    self._subscriber_failed(label, event, exc)

            key = (pattern, Stage.REACT)
            with self._lock:
                subject = self._acquire(key)
                inner = subject.subscribe(
                    on_next=on_next, on_error=observer.on_error, on_completed=observer.on_completed
                )
            return Disposable(lambda: self._release(key, inner))

        return reactivex.create(subscribe)

    def subscriber_count(self, pattern: str | None = None) -> int:
        """How many live subscriptions there are (for one pattern, or in all)."""
        with self._lock:
            if pattern is not None:
                return sum(n for (p, _), n in self._counts.items() if p == pattern)
            return sum(self._counts.values())

    # -- internals -----------------------------------------------------------------------
    def _acquire(self, key: tuple[str, Stage]) -> _TopicSubject:
        """The Subject of ``key``, made if new, with one more subscription counted (lock held)."""
        topics.validate_pattern(key[0])
        subject = self._subjects.get(key)
        if subject is None:
            subject = _TopicSubject(self._subscriber_failed)
            self._subjects[key] = subject
            self._routes = {}  # copy-on-write: the dispatcher keeps reading the old dict
        self._counts[key] = self._counts.get(key, 0) + 1
        return subject

    def _release(self, key: tuple[str, Stage], inner: abc.DisposableBase | None) -> None:
        with self._lock:
            if self._counts.get(key, 0) <= 0:
                return  # already released: dispose() is idempotent
            if inner is not None:
                inner.dispose()
            self._counts[key] -= 1
            if self._counts[key] == 0:
                del self._counts[key]
                del self._subjects[key]
                self._routes = {}

    def _route(self, topic: str) -> tuple[tuple[Subject[Event], ...], ...]:
        routes = self._routes
        found = routes.get(topic)
        if found is None:
            with self._lock:
                by_stage: dict[Stage, list[Subject[Event]]] = {}
                for (pattern, stage), subject in self._subjects.items():
                    if topics.matches(pattern, topic):
                        by_stage.setdefault(stage, []).append(subject)
                found = tuple(tuple(by_stage[stage]) for stage in sorted(by_stage))
                if self._routes is routes:
                    routes[topic] = found
        return found

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

    def _deliver_in_stages(
        self, event: Event, stages: tuple[tuple[Subject[Event], ...], ...]
    ) -> None:
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

    def _subscriber_failed(self, label: str, event: Event, exc: Exception) -> None:
        errors = self.stats.subscriber_errors
        errors[label] = errors.get(label, 0) + 1
        log.warning("subscriber %s failed on %s: %r", label, event.type, exc)
        if isinstance(event, ErrorRaised) and event.component.startswith("subscriber:"):
            return  # a failure while handling a failure report: count it, do not loop
        details: dict[str, Any] = {
            "event_type": event.type,
            "topic": event.topic,
            "event_id": event.event_id,
        }
        self.publish(
            ErrorRaised(
                component=f"subscriber:{label}",
                message=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                details=details,
                ts_event=event.ts_event,
                causation_id=event.event_id,
            )
        )
