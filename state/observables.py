"""The state store's ``param`` views as Rx observables: how view consumers read the store.

:class:`~state.store.StateStore` publishes its read model as ``param`` parameters (``pnl``,
``prices``, ``runner``, ``positions``, ...), refreshed by the engine thread in batches:
critical sections at event rate, prices and P&L at most every ``view_interval_s``.
:func:`view_changes` turns one of them into an Observable, so a dashboard composes it with the
time operators of :mod:`streams.operators` (throttle, sample, debounce) instead of
subscribing to the raw bus.

Each subscription installs its own ``param`` watcher and removes it when disposed, so a
session that closes leaves no watcher on the shared store. Values are emitted on the thread
that changed the view (the engine thread); hand them to your own loop.
"""

from __future__ import annotations

from typing import Any

import param
from reactivex import Observable, abc
from reactivex.disposable import Disposable


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
