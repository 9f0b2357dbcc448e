"""The event bus: Rx Subjects per topic pattern, fed by one dispatcher that alone calls on_next.

:class:`EventBus` is what components hold: ``publish``/``offer`` from any thread, ``subscribe``
callbacks or ``observe`` Observables on topic patterns. How and in which order events are then
delivered (the dispatcher thread, causal order, the commit hook) is :mod:`streams.dispatch`.

Stages. A subscription belongs to a :class:`Stage` (``REACT`` unless said otherwise). The
subscribers of a later stage see an event only after every event published by an earlier
stage's subscribers has been delivered in full. This is how one market event is handled in
phases (docs/architecture.md, "Causal order"): the data clock moves to its time (``CLOCK``),
the broker matches working orders against it (``MATCH``) and the fills, orders, positions and
cash are committed and folded; P&L marks to it (``MARK``); only then do strategies and
everyone else see it (``REACT``).

Subscribers are isolated: one that raises is counted and reported as an ``error_raised``
event; every other subscriber still receives every event.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from streams import topics
from streams.dispatch import Dispatcher, DispatchHook, Route
from streams.errors import BusClosed
from streams.events import ErrorRaised, Event

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


class EventBus(Dispatcher):
    """Publish/subscribe over topic patterns, with Rx observables for composition.

    ``subscribe(pattern, callback)`` and ``observe(pattern)`` take patterns with ``*`` (one
    segment) and a trailing ``>`` (the rest), e.g. ``fills.*`` or ``data.>``. Lifecycle
    (``start``/``stop``/``join``) and delivery come from :class:`~streams.dispatch.Dispatcher`;
    this class adds publishing, the subscription tables and the topic routes.
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
        super().__init__(
            threaded=threaded, capacity=capacity, max_batch=max_batch, hook=hook, name=name
        )
        # (pattern, stage) -> its Subject and live subscription count
        self._subjects: dict[tuple[str, Stage], _TopicSubject] = {}
        self._counts: dict[tuple[str, Stage], int] = {}
        self._lock = threading.RLock()  # guards subscription tables, not dispatch
        self._sync_lock = threading.RLock()

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

    # -- subscription tables ------------------------------------------------------------
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

    def _route(self, topic: str) -> Route:
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
