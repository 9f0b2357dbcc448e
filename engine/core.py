"""The event-sourced core wired together: journal -> state store -> bus.

:func:`build_core` is the small composition used by the kernel, backtests, notebooks and tests:
a bus whose dispatch hook is the state store, so every published event is committed to the
journal (critical ones durably), folded into state, and only then delivered to subscribers.
:func:`only` narrows a subscriber to one event type (a topic carries several).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from state import MemoryJournal, StateStore
from state.journal import Journal
from streams.bus import EventBus
from streams.clock import Clock, LiveClock
from streams.events import CashAdjusted, ErrorRaised, Event

E = TypeVar("E", bound=Event)


@dataclasses.dataclass
class Core:
    """The journal, the state store and the bus of one engine, wired together."""

    journal: Journal
    store: StateStore
    bus: EventBus
    clock: Clock

    def publish(self, event: Event) -> None:
        """Publish ``event`` through the bus (so it is committed, folded, then delivered)."""
        self.bus.publish(event)

    def stop(self) -> None:
        """Stop the bus after dispatching everything queued."""
        self.bus.stop()


def build_core(
    *,
    journal: Journal | None = None,
    clock: Clock | None = None,
    view_clock: Clock | None = None,
    threaded: bool = False,
    starting_cash: float = 100_000.0,
    owners: Mapping[str, Sequence[str]] | None = None,
    view_interval_s: float = 0.5,
    live_views: bool = True,
    durable_before_visible: bool = True,
    capacity: int = 100_000,
    max_batch: int = 1024,
    initial_state: Any = None,
    on_error: Callable[[BaseException, str, Event | None], None] | None = None,
) -> Core:
    """Wire a journal, a state store and a bus; deposit ``starting_cash`` on a new journal.

    ``threaded=False`` (the default) gives a synchronous bus for backtests, notebooks and
    tests; the kernel asks for a threaded one. ``live_views=False`` keeps the store's param
    views still (backtests: nobody watches them; ``flush_views()`` updates them on demand).
    ``durable_before_visible=False`` lets the bus go on before critical events are committed
    (backtests, whose log is flushed once at the end: there is no live world to protect).
    ``initial_state`` is a restored state to start from (see :func:`persistence.restore`).
    ``view_clock`` times the store's view refreshes and ``updated_at`` (default ``clock``; a
    replay gives the wall clock, since its ``clock`` is the data's).
    """
    journal = journal if journal is not None else MemoryJournal()
    clock = clock if clock is not None else LiveClock()
    bus = EventBus(threaded=threaded, capacity=capacity, max_batch=max_batch)
    store = StateStore(
        journal,
        clock=(view_clock or clock).now_ns,
        owners=owners
        if owners is not None
        else {"engine": [""], "operator": ["risk", "strategies"]},
        initial=initial_state,
        view_interval_s=view_interval_s,
        live_views=live_views,
        durable_before_visible=durable_before_visible,
        publish=bus.publish,
        on_error=on_error or _report_to(bus, clock),
    )
    bus.set_hook(store)
    bus.start()
    if journal.last_seq == 0 and starting_cash:
        bus.publish(
            CashAdjusted(amount=starting_cash, reason="starting cash", ts_event=clock.now_ns())
        )
    return Core(journal=journal, store=store, bus=bus, clock=clock)


def only(event_type: type[E], handler: Callable[[E], None]) -> Callable[[Event], None]:
    """A bus subscriber that passes the events of ``event_type`` to ``handler`` and ignores the
    rest (a topic carries several event types)."""

    def deliver(event: Event) -> None:
        if isinstance(event, event_type):
            handler(event)

    return deliver


def _report_to(bus: EventBus, clock: Clock) -> Callable[[BaseException, str, Event | None], None]:
    def report(exc: BaseException, where: str, event: Event | None) -> None:
        bus.publish(
            ErrorRaised(
                component=f"state:{where}",
                message=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                ts_event=clock.now_ns(),
                causation_id=event.event_id if event is not None else None,
            )
        )

    return report
