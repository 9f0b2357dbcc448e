"""The state store's read model: the folded state, its versions, and everyone who watches it.

:class:`ReadModel` is the base of :class:`~state.store.StateStore`: it holds the current state,
folds committed events into it, and shows the result to readers, path subscribers and the
``param`` views; the store adds the journal and the write API in front of it.

Threads. :meth:`~ReadModel.get_state`, :meth:`~ReadModel.snapshot`, the version getters,
:meth:`~ReadModel.subscribe` and ``dispose`` may be called from any thread: the state is one
immutable value behind a single reference that the writer swaps, so a reader gets the old or the
new state, never a mix. Folding, :meth:`~ReadModel.idle` and :meth:`~ReadModel.flush_views` run
on the engine thread only (the one writer): they call subscribers and set ``param`` values,
none of which is safe from two threads.

Views. Ticks stay out of ``param``: critical events refresh the views at once with one
``param.update``; the fast-moving ``prices`` and ``pnl`` views are refreshed at most every
``view_interval_s`` (by the injected clock) and by :meth:`~ReadModel.flush_views`, which the
bus calls when it goes idle. :func:`view_changes` turns one view into an Rx Observable, so a
dashboard composes it with the time operators of :mod:`streams.operators` (throttle, sample,
debounce) instead of subscribing to the raw bus. Each such subscription installs its own
``param`` watcher and removes it when disposed, so a session that closes leaves no watcher on
the shared store; values are emitted on the engine thread: hand them to your own loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import param
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from state.fold import apply_traced
from state.model import (
    DOMAIN_SECTIONS,
    EMPTY,
    MISSING,
    FrozenDict,
    State,
    get_path,
    initial_state,
    state_to_dict,
)
from state.subscriptions import Callback, Subscription, SubscriptionRegistry, changed_paths
from streams.errors import ConfigError, PersistenceError
from streams.events import ACTIVE, Event

log = logging.getLogger(__name__)

Clock = Callable[[], int]
ErrorHook = Callable[[BaseException, str, Event | None], None]

#: Views refreshed at the throttled rate; all others are refreshed at event rate.
_FAST_VIEWS = ("prices", "pnl")
#: Views that mirror the top-level section of the same name.
_SECTION_VIEWS = ("positions", "account", "orders", "runner", "prices", "pnl")


class ReadModel(param.Parameterized):
    """The current state, folded from committed events, versioned and observable.

    ``clock`` returns integer nanoseconds (``updated_at`` and view throttling use it; the fold
    does not). ``on_error`` hears about every failing subscriber or view watcher as
    ``(error, where, event)``. The ``param`` parameters below are views for Panel: they change
    only on the engine thread, always to new objects (never mutated in place); read-only for
    everyone else.
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
        *,
        clock: Clock,
        view_interval_s: float,
        live_views: bool,
        on_error: ErrorHook | None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        if view_interval_s < 0:
            raise ConfigError(f"view_interval_s has invalid value {view_interval_s!r}: need >= 0")
        self._clock = clock
        self._on_error = on_error
        self._interval_ns = int(view_interval_s * 1e9)
        self._live_views = live_views
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

    # -- the views (engine thread) ----------------------------------------------------------
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

    def flush_views(self) -> None:
        """Bring every view, including prices and P&L, up to the current state (bus idle)."""
        self._refresh_views(self._clock(), fast=True)

    # -- internals (engine thread) ----------------------------------------------------------
    def _reset(self, state: State, version: int, now: int) -> None:
        """Show ``state`` at ``version`` as if nothing had changed before (a restore)."""
        self._current = (state, version)
        self._path_meta = {}
        self._section_meta = {}
        self._base = (version, now)
        self._last_change_ns = now
        self._published = {}
        self._published_version = -1
        self._refresh_views(now, fast=True)

    def _fold(self, event: Event, now: int) -> None:
        """Fold one committed event, stamp the paths it changed and notify their subscribers."""
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


def view_changes(
    store: param.Parameterized, name: str, *, initial: bool = False
) -> Observable[Any]:
    """The new values of the store's ``param`` view ``name``, one per change.

    ``initial`` emits the current value first, at subscription. A view the store does not
    declare is refused at once (ValueError naming it and the views there are)."""
    if name not in store.param:
        views = sorted(n for n in store.param if n != "name")
        raise ValueError(f"state store has no view {name!r} (views: {', '.join(views)})")

    def subscribe(
        observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        def changed(event: param.parameterized.Event) -> None:
            observer.on_next(event.new)

        watcher = store.param.watch(changed, [name])
        if initial:
            observer.on_next(getattr(store, name))
        return Disposable(lambda: store.param.unwatch(watcher))

    return Observable(subscribe)


def watcher_count(store: param.Parameterized) -> int:
    """How many ``param`` watchers the store has (to check that sessions remove theirs)."""
    return sum(
        len(watchers)
        for per_name in store.param.watchers.values()
        for watchers in per_name.values()
    )
