"""``StateStore``: the single source of truth for trading state, and what the dashboard binds to.

Write path. ``record`` makes the event durable first (``journal.append(event, wait=critical)``),
then folds it, bumps the global and per-path versions, notifies subscribers of real changes and
refreshes the ``param`` views: durable before visible. What is shown after the fold (versions,
subscriptions, the ``param`` views) and the reading API live in the base class,
:class:`~state.read_model.ReadModel`.

Threads. :meth:`StateStore.record`, :meth:`~StateStore.record_batch`,
:meth:`~StateStore.commit`, :meth:`~StateStore.apply` and :meth:`~StateStore.restore` run on the
engine thread only (the one writer). :meth:`~StateStore.update_state` runs on the engine thread
when the store records directly, or on any thread when it was given the bus's ``publish``.
Reading (``get_state``, ``snapshot``, versions, ``subscribe``) is safe from any thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from state.journal import Journal
from state.model import (
    DOMAIN_SECTIONS,
    FrozenDict,
    State,
    initial_state,
    split_path,
    state_from_dict,
)
from state.read_model import Clock, ErrorHook, ReadModel
from state.subscriptions import matches_prefix
from streams.errors import AccessDenied, ConfigError, EventError, PersistenceError
from streams.events import Event, StateChanged, WriteRefused

log = logging.getLogger(__name__)


class StateStore(ReadModel):
    """The trading state: recorded through the journal, folded, versioned and observable.

    ``clock`` returns integer nanoseconds (``updated_at`` and view throttling use it; the
    fold does not). ``owners`` maps each actor to the path prefixes it may write with
    :meth:`update_state` (``*`` matches one segment; ``""`` owns every path). ``publish``,
    when given, is where ``update_state`` sends its events (the bus, which records them on the
    engine thread); otherwise ``update_state`` records directly. ``on_error`` hears about
    every failing subscriber or view watcher as ``(error, where, event)``.

    The ``param`` parameters (declared on :class:`~state.read_model.ReadModel`) are views for
    Panel: they change only on the engine thread, always to new objects (never mutated in
    place); read-only for everyone else.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        clock: Clock,
        owners: Mapping[str, Sequence[str]] | None = None,
        initial: State | Mapping[str, Any] | None = None,
        view_interval_s: float = 0.5,
        live_views: bool = True,
        durable_before_visible: bool = True,
        publish: Callable[[Event], Any] | None = None,
        on_error: ErrorHook | None = None,
        **params: Any,
    ) -> None:
        super().__init__(
            clock=clock,
            view_interval_s=view_interval_s,
            live_views=live_views,
            on_error=on_error,
            **params,
        )
        self._journal = journal
        self._owners = self._check_owners(owners or {})
        self._publish = publish
        self._durable_before_visible = durable_before_visible
        #: The error of a storage fault that is holding the engine thread, else None.
        self.storage_fault: str | None = None
        self.restore(initial_state() if initial is None else initial)

    # -- writing (engine thread) ------------------------------------------------------------
    def record(self, event: Event) -> Event | None:
        """Make ``event`` durable, fold it, notify and refresh views; the stored event or None.

        A critical event is committed before this returns or anyone sees it. None means the
        journal already had this ``event_id``: nothing is applied. If the journal raises, the
        error propagates and nothing is applied. Engine thread only.
        """
        stored = self._journal.append(event, wait=event.critical)
        if stored is None:
            return None
        now = self._clock()
        self._fold(stored, now)
        self._after_fold(now, critical=stored.critical)
        return stored

    def record_batch(self, events: Iterable[Event]) -> list[Event]:
        """Record many events with one commit wait (group commit); the stored ones, in order.

        All are appended without waiting, then the highest critical seq is waited for once;
        only then are they folded and published, in order (durable before visible).
        Duplicates are dropped. Engine thread only.
        """
        stored: list[Event] = []
        critical_seq = 0
        for event in events:
            kept = self._journal.append(event, wait=False)
            if kept is None:
                continue
            stored.append(kept)
            if kept.critical:
                critical_seq = max(critical_seq, kept.seq)
        if critical_seq:
            self._journal.wait_durable(critical_seq)
        if not stored:
            return stored
        now = self._clock()
        for kept in stored:
            self._fold(kept, now)
        self._after_fold(now, critical=critical_seq > 0)
        return stored

    # -- the bus's dispatch hook (engine thread) ---------------------------------------------
    def commit(self, events: Sequence[Event]) -> list[Event]:
        """Append ``events`` to the journal and wait once for the last critical one (group
        commit); returns them with seqs, duplicates dropped. Nothing is folded yet: the bus
        calls :meth:`apply` for each just before its subscribers see it."""
        stored: list[Event] = []
        critical_seq = 0
        append = self._journal.append
        for event in events:
            try:
                kept = append(event, wait=False)
            except EventError as exc:
                # One event that cannot be stored (NaN, an unserialisable value) is dropped and
                # reported; it must not take the rest of the batch with it (no seq is used).
                log.error("state store: event %s not stored: %s", event.type, exc)
                if self._on_error is not None:
                    self._on_error(exc, "commit", event)
                continue
            if kept is None:
                continue
            stored.append(kept)
            if kept.critical:
                critical_seq = kept.seq
        if critical_seq and self._durable_before_visible:
            self._wait_durable(critical_seq)
        return stored

    def _wait_durable(self, seq: int) -> None:
        """Block the engine thread until ``seq`` is durable, however long the storage fails.

        Nothing is folded or published meanwhile, so trading halts by itself; the journal
        retries its writes, and when one succeeds the engine resumes where it stopped. Only a
        closed journal ends the wait (with the PersistenceError)."""
        delay = 0.02
        while True:
            try:
                self._journal.wait_durable(seq)
            except PersistenceError as exc:
                if not getattr(self._journal, "is_open", True):
                    raise
                if self.storage_fault is None:
                    self.storage_fault = str(exc)
                    log.error(
                        "state store: storage fault, trading held until writes succeed: %s", exc
                    )
                    if self._on_error is not None:
                        self._on_error(exc, "storage", None)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if self.storage_fault is not None:
                log.warning("state store: storage recovered; resuming")
                self.storage_fault = None
            return

    def apply(self, event: Event) -> None:
        """Fold one committed event, notify path subscribers and refresh views as due."""
        now = self._clock()
        self._fold(event, now)
        self._after_fold(now, critical=event.critical)

    def update_state(
        self,
        path: str,
        value: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        actor: str,
    ) -> Event:
        """Set the value at a generic ``path`` as ``actor``, through the event path.

        The actor must own a prefix of ``path`` and the path must lie outside the domain
        sections (positions, account, ...), which change only through their own events;
        otherwise a ``WriteRefused`` event is recorded and ``AccessDenied`` raised. ``value``
        must be JSON-serialisable. Returns the ``StateChanged`` event: as recorded (with its
        seq) when recording directly, as handed to ``publish`` otherwise.
        """
        segments = split_path(path)
        if not segments or any(not seg or seg == "*" for seg in segments):
            raise EventError(f"state path {path!r} is invalid: expected dotted names like 'a.b'")
        owned = tuple(self._owners.get(actor, ()))
        reason = ""
        if segments[0] in DOMAIN_SECTIONS:
            reason = (
                f"actor {actor!r} may not write {path!r}: section {segments[0]!r} changes only "
                f"through its own events"
            )
        elif not any(matches_prefix(split_path(p), segments) for p in owned):
            reason = f"actor {actor!r} may not write {path!r}: it owns only {list(owned)}"
        if reason:
            self._emit(WriteRefused(path=path, actor=actor, reason=reason, ts_event=self._clock()))
            raise AccessDenied(reason)
        try:
            json.dumps(value, allow_nan=False)
            json.dumps(dict(metadata or {}), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EventError(
                f"state path {path!r}: value {value!r} is not JSON-serialisable ({exc})"
            ) from exc
        event = StateChanged(
            path=path,
            value=value,
            actor=actor,
            metadata=dict(metadata or {}),
            ts_event=self._clock(),
        )
        return self._emit(event)

    def _emit(self, event: Event) -> Event:
        if self._publish is not None:
            self._publish(event)
            return event
        stored = self.record(event)
        return stored if stored is not None else event

    def restore(self, state: State | Mapping[str, Any], version: int | None = None) -> None:
        """Load a restored state (startup): it replaces the current one without notifying.

        A plain dict is validated with ``state_from_dict`` (migrate it first if older).
        ``version`` defaults to the state's ``meta.seq``. Refuses a state ahead of the
        journal, whose next seq would then collide with events already in the state.
        Engine thread only.
        """
        if not isinstance(state, FrozenDict):
            state = state_from_dict(state)
        seq = int(state["meta"]["seq"])
        if self._journal.last_seq < seq:
            raise PersistenceError(
                f"restored state covers seq {seq} but the journal's last seq is "
                f"{self._journal.last_seq}: they are out of step"
            )
        self._reset(state, seq if version is None else version, self._clock())

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _check_owners(owners: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
        checked: dict[str, tuple[str, ...]] = {}
        for actor, prefixes in owners.items():
            if isinstance(prefixes, str) or not all(isinstance(p, str) for p in prefixes):
                raise ConfigError(
                    f"owners[{actor!r}] has invalid value {prefixes!r}: "
                    "expected a list of path prefixes"
                )
            checked[actor] = tuple(prefixes)
        return checked
