"""The dashboard's throttled tier in virtual time: the state store's ``param`` views, bridged
into Rx observables and composed with throttle and sample, exactly as sessions subscribe them.

Events go through a real synchronous core (journal, fold, ``param`` views refreshed at once),
published by actions on a ``TestScheduler``; every timer of the pipeline runs on that scheduler.
"""

from __future__ import annotations

from typing import Any

from reactivex.testing import TestScheduler

from engine.config import DashboardConfig
from engine.core import Core, build_core
from panel_app.services import build_streams
from state.read_model import view_changes, watcher_count
from streams.clock import NS_PER_S, ManualClock
from streams.events import PnlUpdated, RunnerStatusChanged, TickReceived
from tests.streams.operators._support import nexts, run

T0 = 1_704_205_800 * NS_PER_S
CONFIG = DashboardConfig(pnl_throttle_s=5.0, runner_throttle_s=10.0, market_sample_s=1.0)


def core() -> Core:
    # view_interval_s=0: every fold refreshes the views, so the pipeline's timing is all Rx's.
    return build_core(clock=ManualClock(T0), view_interval_s=0.0, starting_cash=0.0)


def at(scheduler: TestScheduler, time: float, action: Any) -> None:
    scheduler.schedule_absolute(time, lambda *_: action())


def pnl(equity: float, second: int) -> PnlUpdated:
    return PnlUpdated(
        realized=0.0,
        unrealized=0.0,
        daily=0.0,
        equity=equity,
        drawdown=0.0,
        max_drawdown=0.0,
        session_start=T0,
        ts_event=T0 + second * NS_PER_S,
    )


def test_pnl_is_the_store_view_throttled_with_the_data_time_it_is_as_of() -> None:
    scheduler, engine = TestScheduler(), core()
    streams = build_streams(engine.store, engine.bus, CONFIG, scheduler)
    for time, equity in ((201, 1.0), (202, 2.0), (203, 3.0), (210, 4.0)):
        at(scheduler, time, lambda e=equity, t=time: engine.publish(pnl(e, t)))

    emitted = nexts(run(scheduler, lambda: streams.pnl))

    # leading at 201; 3.0 trails at the end of [201, 206) and opens [206, 211); 4.0 trails
    assert [(time, view["equity"], as_of) for time, (view, as_of) in emitted] == [
        (201.0, 1.0, T0 + 201 * NS_PER_S),
        (206.0, 3.0, T0 + 203 * NS_PER_S),
        (211.0, 4.0, T0 + 210 * NS_PER_S),
    ]


def test_market_data_is_the_prices_view_sampled_on_a_steady_beat() -> None:
    scheduler, engine = TestScheduler(), core()
    streams = build_streams(engine.store, engine.bus, CONFIG, scheduler)
    for time, last in ((200.2, 10.0), (200.5, 11.0), (201.5, 12.0)):
        tick = TickReceived(symbol="AAPL", last=last, ts_event=T0 + int(time * NS_PER_S))
        at(scheduler, time, lambda t=tick: engine.publish(t))

    emitted = nexts(run(scheduler, lambda: streams.market, disposed=205.0))

    # one sample a second on the grid from the subscription; none when nothing new came
    assert [(time, prices["AAPL"]["last"]) for time, prices in emitted] == [
        (201.0, 11.0),
        (202.0, 12.0),
    ]


def test_runner_status_is_the_runner_view_throttled() -> None:
    scheduler, engine = TestScheduler(), core()
    streams = build_streams(engine.store, engine.bus, CONFIG, scheduler)
    for time, (previous, status) in (
        (201, ("stopped", "starting")),
        (202, ("starting", "running")),
        (205, ("running", "paused")),
    ):
        change = RunnerStatusChanged(
            component="runner", status=status, previous=previous, ts_event=T0 + time
        )
        at(scheduler, time, lambda c=change: engine.publish(c))

    emitted = nexts(run(scheduler, lambda: streams.runner))

    assert [(time, view["runner"]) for time, view in emitted] == [
        (201.0, "starting"),
        (211.0, "paused"),
    ]


def test_each_subscription_has_its_own_watcher_removed_when_it_ends() -> None:
    engine = core()
    streams = build_streams(engine.store, engine.bus, CONFIG, TestScheduler())
    before = watcher_count(engine.store)

    sessions = [
        [stream.subscribe(lambda _v: None) for stream in (streams.pnl, streams.market)]
        for _ in range(3)
    ]
    during = watcher_count(engine.store)
    for subscriptions in sessions:
        for subscription in subscriptions:
            subscription.dispose()

    assert during == before + 6
    assert watcher_count(engine.store) == before


def test_an_unknown_view_is_refused_naming_it() -> None:
    try:
        view_changes(core().store, "pnl_typo")
    except ValueError as exc:
        assert "pnl_typo" in str(exc) and "pnl" in str(exc)
    else:
        raise AssertionError("an unknown view was accepted")
