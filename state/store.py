"""``StateStore``: the single source of truth for trading state, and what the dashboard binds to.

Threads. :meth:`StateStore.record`, :meth:`~StateStore.record_batch`,
:meth:`~StateStore.flush_views` and :meth:`~StateStore.restore` run on the engine thread only
(the one writer): they fold events, call subscribers and set ``param`` values, none of which is
safe from two threads. :meth:`~StateStore.update_state` runs on the engine thread when the store
records directly, or on any thread when it was given the bus's ``publish``.
:meth:`~StateStore.get_state`, :meth:`~StateStore.snapshot`, the version getters,
:meth:`~StateStore.subscribe` and ``dispose`` may be called from any thread: the state is one
immutable value behind a single reference that the writer swaps, so a reader gets the old or the
new state, never a mix.

Write path. ``record`` makes the event durable first (``journal.append(event, wait=critical)``),
then folds it, bumps the global and per-path versions, notifies subscribers of real changes and
refreshes the ``param`` views: durable before visible.

Views. Ticks stay out of ``param``: critical events refresh the views at once with one
``param.update``; the fast-moving ``prices`` and ``pnl`` views are refreshed at most every
``view_interval_s`` (by the injected clock) and by :meth:`~StateStore.flush_views`, which the
bus calls when it goes idle.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import param

from state.fold import apply_traced
from state.journal import Journal
from state.model import (
    DOMAIN_SECTIONS,
    EMPTY,
    MISSING,
    FrozenDict,
    State,
    get_path,
    initial_state,
    split_path,
    state_from_dict,
    state_to_dict,
)
from state.subscriptions import (
    Callback,
    Subscription,
    SubscriptionRegistry,
    changed_paths,
    matches_prefix,
)
from streams.errors import AccessDenied, ConfigError, EventError, PersistenceError
from streams.events import ACTIVE, Event, StateChanged, WriteRefused

log = logging.getLogger(__name__)

Clock = Callable[[], int]
ErrorHook = Callable[[BaseException, str, Event | None], None]

#: Views refreshed at the throttled rate; all others are refreshed at event rate.
_FAST_VIEWS = ("prices", "pnl")
#: Views that mirror the top-level section of the same name.
_SECTION_VIEWS = ("positions", "account", "orders", "runner", "prices", "pnl")


class StateStore(param.Parameterized):
    """The trading state: recorded through the journal, folded, versioned and observable.

    ``clock`` returns integer nanoseconds (``updated_at`` and view throttling use it; the
    fold does not). ``owners`` maps each actor to the path prefixes it may write with
    :meth:`update_state` (``*`` matches one segment; ``""`` owns every path). ``publish``,
    when given, is where ``update_state`` sends its events (the bus, which records them on the
    engine thread); otherwise ``update_state`` records directly. ``on_error`` hears about
    every failing subscriber or view watcher as ``(error, where, event)``.

    The ``param`` parameters below are views for Panel: they change only on the engine thread,
    always to new objects (never mutated in place); read-only for everyone else.
    """

    view_version = param.Integer(
        default=0, bounds=(0, None), doc="Global version of the state the views show."
    )
    seq = param.Integer(default=0, bounds=(0, None), doc="Last event seq the views show.")
    last_update_ns = param.Integer(
        default=0, doc="Clock time (ns) of the last change the views show; for age/staleness."
    )
    positions = param.Dict(default={}, doc="{symbol: {qty, avg_price, realized_pnl}}.")
    account = param.Dict(default={}, doc="{cash, starting_cash, commissions, realized_pnl}.")
    orders = param.Dict(default={}, doc="Open orders by order_id.")
    runner = param.Dict(default={}, doc="{component: status}.")
    trading_state = param.String(default=ACTIVE, doc="active, halted or reducing.")
    trading_reason = param.String(default="", doc="Why trading is in its state.")
    values = param.Dict(default={}, doc="Generic sections written by update_state.")
    prices = param.Dict(default={}, doc="{symbol: {last, bid, ask, ts}}; throttled.")
    pnl = param.Dict(default={}, doc="{realized, unrealized, daily, equity, ...}; throttled.")

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
        super().__init__(**params)
        if view_interval_s < 0:
            raise ConfigError(f"view_interval_s has invalid value {view_interval_s!r}: need >= 0")
        self._journal = journal
        self._clock = clock
        self._owners = self._check_owners(owners or {})
        self._publish = publish
        self._on_error = on_error
        self._interval_ns = int(view_interval_s * 1e9)
        self._live_views = live_views
        self._durable_before_visible = durable_before_visible
        #: The error of a storage fault that is holding the engine thread, else None.
        self.storage_fault: str | None = None
        self._subscriptions = SubscriptionRegistry(self._report)
        self.subscriber_errors = 0
        # (state, version): one reference, swapped whole so readers never see a mix.
        self._current: tuple[State, int] = (initial_state(), 0)
        # path -> (version, ns) of its last change: exact changed paths (depth <= 2), and
        # top-level sections bumped by any change inside them.
        self._path_meta: dict[str, tuple[int, int]] = {}
        self._section_meta: dict[str, tuple[int, int]] = {}
        self._base: tuple[int, int] = (0, 0)
        self._last_change_ns = 0
        self._last_fast_ns: int | None = None
        self._published: dict[str, Any] = {}
        self._published_version = -1
        self.restore(initial_state() if initial is None else initial)

    # -- reading (any thread) ---------------------------------------------------------------
    def get_state(self, path: str = "", default: Any = MISSING) -> Any:
        """The immutable value at ``path`` (``""`` = the whole state) of the current state.

        Mappings are :class:`FrozenDict` (mutation raises). Read several fields from one
        ``get_state()`` result to see them consistently. A missing path raises ``KeyError``
        unless ``default`` is given.
        """
        return get_path(self._current[0], path, default)

    def snapshot(self) -> tuple[int, int, dict[str, Any]]:
        """``(seq, version, state_dict)`` of one consistent state; the dict is plain JSON."""
        state, version = self._current
        return state["meta"]["seq"], version, state_to_dict(state)

    @property
    def version(self) -> int:
        """The global version: +1 for every event recorded (exact, unlike ``view_version``)."""
        return self._current[1]

    @property
    def last_seq(self) -> int:
        """The seq of the last event folded into the state."""
        return int(self._current[0]["meta"]["seq"])

    def path_version(self, path: str) -> int:
        """The global version at which the value at ``path`` last changed.

        Tracked two segments deep: ``positions.AAPL.qty`` reports ``positions.AAPL``, and a
        section (``positions``) changes whenever anything inside it does. Before any change,
        the version of the initial/restored state.
        """
        found = self._lookup_path_meta(path)
        return found[0] if found else self._base[0]

    def updated_at(self, path: str) -> int:
        """Clock time (ns) at which the value at ``path`` last changed (as :meth:`path_version`)."""
        found = self._lookup_path_meta(path)
        return found[1] if found else self._base[1]

    def _lookup_path_meta(self, path: str) -> tuple[int, int] | None:
        if not path:
            return (self._current[1], self._last_change_ns)
        head, _, rest = path.partition(".")
        if not rest:
            # A section changes when it or any child changes.
            found = self._section_meta.get(head)
            return found if found is not None else self._path_meta.get(head)
        # A deeper path changes when its two-segment path or its whole section was replaced.
        candidates = [
            self._path_meta.get(head),
            self._path_meta.get(f"{head}.{rest.partition('.')[0]}"),
        ]
        found_any = [c for c in candidates if c is not None]
        return max(found_any) if found_any else None

    # -- subscriptions (any thread) ---------------------------------------------------------
    def subscribe(self, path_pattern: str, callback: Callback) -> Subscription:
        """Call ``callback(path, new_value, event)`` whenever a value at a matching path changes.

        ``*`` matches one segment (``positions.*``, ``*.AAPL``); ``""`` or ``*`` alone watch
        the top-level sections. Only real changes are reported, at the pattern's depth;
        ``new_value`` is None when the path no longer exists (an order that closed). Callbacks
        run on the engine thread, synchronously in ``record``: hand work to your own thread
        (e.g. ``doc.add_next_tick_callback``) instead of doing it there. A callback that
        raises is isolated and reported to ``on_error``. Returns the disposable.
        """
        return self._subscriptions.add(path_pattern, callback)

    @property
    def subscription_count(self) -> int:
        """How many subscriptions are live (to check that sessions dispose of theirs)."""
        return len(self._subscriptions)

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

    def idle(self) -> None:
        """The bus has nothing queued: refresh the throttled views if their interval is due.

        The threaded bus calls this at least every 0.1 s while idle, so a throttled view is
        never more than ``view_interval_s`` + 0.1 s behind the state."""
        if not self._live_views:
            return
        now = self._clock()
        last = self._last_fast_ns
        if last is None or now - last >= self._interval_ns:
            self._refresh_views(now, fast=True)

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
        now = self._clock()
        version = seq if version is None else version
        self._current = (state, version)
        self._path_meta = {}
        self._section_meta = {}
        self._base = (version, now)
        self._last_change_ns = now
        self._published = {}
        self._published_version = -1
        self._refresh_views(now, fast=True)

    def flush_views(self) -> None:
        """Bring every view, including prices and P&L, up to the current state (bus idle)."""
        self._refresh_views(self._clock(), fast=True)

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

    def _fold(self, event: Event, now: int) -> None:
        old, version = self._current
        if event.seq <= old["meta"]["seq"]:
            raise PersistenceError(
                f"journal assigned seq {event.seq} but the state already covers seq "
                f"{old['meta']['seq']}: journal and state are out of step"
            )
        new, touched = apply_traced(old, event)
        version += 1
        changed = changed_paths(old, new, touched)
        self._current = (new, version)
        self._last_change_ns = now
        if not changed:
            return
        stamp = (version, now)
        for path in changed:
            self._path_meta[path] = stamp
            self._section_meta[path.partition(".")[0]] = stamp
        self._subscriptions.notify(old, new, changed, event)

    def _report(self, exc: BaseException, where: str, event: Event | None) -> None:
        self.subscriber_errors += 1
        log.warning("state store: %s failed: %r", where, exc)
        if self._on_error is not None:
            try:
                self._on_error(exc, where, event)
            except Exception:
                log.exception("state store: on_error hook failed")

    def _after_fold(self, now: int, *, critical: bool) -> None:
        if not self._live_views:
            return
        last = self._last_fast_ns
        if last is None or now - last >= self._interval_ns:
            self._refresh_views(now, fast=True)
        elif critical:
            self._refresh_views(now, fast=False)

    def _refresh_views(self, now: int, *, fast: bool) -> None:
        """Publish changed sections to the params in one ``param.update`` (engine thread)."""
        state, version = self._current
        if fast:
            self._last_fast_ns = now
        if version == self._published_version and fast:
            return
        published = self._published
        changes: dict[str, Any] = {}
        for name in _SECTION_VIEWS:
            if not fast and name in _FAST_VIEWS:
                continue
            section = state.get(name)
            if section is not published.get(name):
                published[name] = section
                # Validated here because param.update is not transactional.
                changes[name] = section if isinstance(section, dict) else EMPTY
        trading = state.get("trading")
        if trading is not published.get("trading"):
            published["trading"] = trading
            trading = trading if isinstance(trading, Mapping) else EMPTY
            changes["trading_state"] = str(trading.get("state", ""))
            changes["trading_reason"] = str(trading.get("reason", ""))
        generic = FrozenDict({k: v for k, v in state.items() if k not in DOMAIN_SECTIONS})
        if generic != published.get("values"):
            published["values"] = generic
            changes["values"] = generic
        if version != self._published_version:
            changes["view_version"] = max(version, 0)
            changes["seq"] = int(state["meta"]["seq"])
            changes["last_update_ns"] = int(self._last_change_ns)
        if fast:
            self._published_version = version
        if not changes:
            return
        try:
            self.param.update(**changes)
        except Exception as exc:
            self._report(exc, "param views", None)
