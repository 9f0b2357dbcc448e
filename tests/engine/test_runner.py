"""LiveStrategyRunner: operator commands as audited events, rights, the lifecycle, the risk halt
and heartbeats. Everything but the heartbeat thread runs on a synchronous core in virtual time."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from engine.config import RiskConfig
from engine.runner import FAULTED, HALTED, PAUSED, RUNNING, STOPPED, LiveStrategyRunner
from engine.strategy_host import StrategyHost
from state import MemoryJournal
from streams.clock import ManualClock
from streams.events import (
    ACTIVE,
    BUY,
    SELL,
    CommandIssued,
    CommandRefused,
    DailyLossBreached,
    ErrorRaised,
    Heartbeat,
    OrderSubmitted,
    RunnerStatusChanged,
)
from tests.engine.test_strategy_host import Recorder
from tests.factories import T0, TradingRig, trading_rig, trading_state

OPERATORS = {"ops"}


class RecordingFeed:
    """A feed that only records being started and stopped."""

    def __init__(self) -> None:
        self.started = 0
        self.stopped = 0

    def start(self) -> RecordingFeed:
        self.started += 1
        return self

    def stop(self) -> bool:
        self.stopped += 1
        return True


class Setup:
    """A trading rig with a host (one recording strategy on AAPL) and a runner attached."""

    def __init__(self, *, risk_config: RiskConfig | None = None, feed_error: bool = False) -> None:
        self.rig: TradingRig = trading_rig(risk_config=risk_config)
        self.strategy = Recorder(name="rec", symbols=["AAPL"])
        self.host = StrategyHost(
            self.rig.core.publish, self.rig.store, self.rig.clock, [self.strategy]
        )
        self.host.attach(self.rig.core.bus)
        self.feeds: list[RecordingFeed] = []

        def make_feed() -> RecordingFeed:
            if feed_error:
                raise OSError("feed socket refused")
            self.feeds.append(RecordingFeed())
            return self.feeds[-1]

        self.runner = LiveStrategyRunner(
            publish=self.rig.core.publish,
            clock=self.rig.clock,
            host=self.host,
            risk=self.rig.risk,
            feed_factory=make_feed,
            authorize=lambda actor, command: actor in OPERATORS,
            heartbeat_interval_s=0,
            trading_state=lambda: str(self.rig.store.get_state("trading.state", ACTIVE)),
        )
        self.subscriptions = self.runner.attach(self.rig.core.bus)

    def command(self, command: str, actor: str = "ops", **args: Any) -> CommandIssued:
        return self.runner.command(command, actor, **args)

    def refusals(self) -> list[CommandRefused]:
        return self.rig.events(CommandRefused)

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.previous, e.status) for e in self.rig.events(RunnerStatusChanged)]


def running() -> Setup:
    setup = Setup()
    setup.command("start")
    return setup


# -- commands and the lifecycle --------------------------------------------------------------------
def test_start_is_a_command_event_carrying_the_actor_and_moves_to_running() -> None:
    setup = Setup()

    issued = setup.command("start")

    commands = setup.rig.events(CommandIssued)
    assert [(c.command, c.actor) for c in commands] == [("start", "ops")]
    assert setup.runner.status == RUNNING
    assert setup.statuses() == [(STOPPED, "starting"), ("starting", RUNNING)]
    changes = setup.rig.events(RunnerStatusChanged)
    assert all(c.causation_id == issued.event_id for c in changes)
    assert changes[-1].reason == "start by ops"
    assert setup.host.status["rec"] == "running"
    assert setup.feeds[0].started == 1


def test_pause_stops_data_to_strategies_and_resume_restores_it() -> None:
    setup = running()
    setup.rig.bar(open=100)

    setup.command("pause")
    setup.rig.bar(open=101)
    assert setup.runner.status == PAUSED
    setup.command("resume")
    setup.rig.bar(open=102)

    assert setup.runner.status == RUNNING
    assert [b.open for b in setup.strategy.bars] == [100, 102]


def test_stop_stops_the_feed_and_the_strategies() -> None:
    setup = running()

    setup.command("stop")

    assert setup.runner.status == STOPPED
    assert setup.feeds[0].stopped == 1
    assert setup.strategy.stopped == 1
    assert setup.statuses()[-2:] == [(RUNNING, "stopping"), ("stopping", STOPPED)]


def test_each_start_gets_a_new_feed() -> None:
    setup = running()
    setup.command("stop")

    setup.command("start")

    assert len(setup.feeds) == 2
    assert setup.runner.status == RUNNING


@pytest.mark.parametrize("command", ["start", "pause", "stop", "flatten", "reset"])
def test_an_actor_without_the_right_is_refused_and_nothing_changes(command: str) -> None:
    setup = running() if command != "start" else Setup()
    before = (setup.runner.status, setup.statuses())

    issued = setup.command(command, actor="intern")

    refused = setup.refusals()
    assert len(refused) == 1
    assert (refused[0].command, refused[0].actor) == (command, "intern")
    assert refused[0].reason == f"actor 'intern' may not '{command}'"
    assert refused[0].causation_id == issued.event_id
    assert (setup.runner.status, setup.statuses()) == before
    # both the attempt and the refusal are in the journal, for the audit
    kinds = [type(e) for e in setup.rig.journal.events[-2:]]
    assert kinds == [CommandIssued, CommandRefused]


@pytest.mark.parametrize(
    ("prepare", "command", "reason"),
    [
        ([], "pause", "cannot 'pause' while 'stopped'"),
        ([], "resume", "cannot 'resume' while 'stopped'"),
        ([], "stop", "cannot 'stop' while 'stopped'"),
        (["start"], "start", "cannot 'start' while 'running'"),
        (["start"], "resume", "cannot 'resume' while 'running'"),
        (["start", "pause"], "pause", "cannot 'pause' while 'paused'"),
        (["start"], "reset", "cannot 'reset' while 'running' (nothing is halted)"),
    ],
)
def test_an_invalid_transition_is_refused_with_the_reason(
    prepare: list[str], command: str, reason: str
) -> None:
    setup = Setup()
    for step in prepare:
        setup.command(step)
    status = setup.runner.status

    setup.command(command)

    refused = setup.refusals()
    assert [r.command for r in refused] == [command]
    assert reason in refused[0].reason
    assert setup.runner.status == status


def test_an_unknown_command_is_refused() -> None:
    setup = running()

    setup.command("explode")

    assert "unknown command 'explode'" in setup.refusals()[0].reason
    assert setup.runner.status == RUNNING


def test_flatten_closes_every_position_through_risk() -> None:
    setup = running()
    setup.rig.bar(open=100)
    setup.rig.order(BUY, 10)
    setup.rig.bar(open=101)
    assert setup.rig.position() == 10.0

    setup.command("flatten", reason="end of day")
    setup.rig.bar(open=102)

    closing = [o for o in setup.rig.events(OrderSubmitted) if o.side == SELL]
    assert [(o.qty, o.symbol) for o in closing] == [(10.0, "AAPL")]
    assert setup.rig.position() == 0.0
    assert setup.runner.status == RUNNING


def test_set_params_command_applies_or_is_refused_naming_the_parameter() -> None:
    setup = running()

    setup.command("set_params", strategy="rec", params={"threshold": 3.0})
    setup.command("set_params", strategy="rec", params={"threshold": 99.0})

    assert setup.strategy.threshold == 3.0
    refused = setup.refusals()
    assert len(refused) == 1 and "'threshold'" in refused[0].reason


def test_a_feed_that_fails_to_start_faults_the_runner_and_reset_recovers() -> None:
    setup = Setup(feed_error=True)

    setup.command("start")

    assert setup.runner.status == FAULTED
    errors = setup.rig.events(ErrorRaised)
    assert errors[-1].component == "runner" and "feed socket refused" in errors[-1].message
    setup.command("reset")
    assert setup.runner.status == STOPPED


# -- halts from risk -------------------------------------------------------------------------------
def test_a_halt_from_risk_halts_the_runner_and_only_an_operator_reset_resumes() -> None:
    setup = running()

    setup.rig.core.publish(trading_state("halted", reason="daily loss", actor="risk"))
    assert setup.runner.status == HALTED
    setup.command("resume")
    setup.command("start")
    setup.command("reset", actor="intern")
    assert setup.runner.status == HALTED
    setup.command("reset")

    assert setup.runner.status == RUNNING
    assert setup.rig.store.get_state("trading.state") == ACTIVE
    assert [r.command for r in setup.refusals()] == ["resume", "start", "reset"]
    assert setup.statuses()[-2:] == [(RUNNING, HALTED), (HALTED, RUNNING)]


def test_the_daily_loss_breach_halts_the_runner_and_strategies_stop_trading() -> None:
    limits = RiskConfig(
        max_position=0.0,
        max_order_notional=0.0,
        max_orders_per_second=0,
        daily_loss_limit=100.0,
        flatten_on_breach=False,
    )
    setup = Setup(risk_config=limits)
    setup.command("start")
    setup.rig.bar(open=100)
    setup.rig.order(BUY, 10)
    setup.rig.bar(open=100)

    for price in (95, 90, 85):  # 10 units lose 150 > 100
        setup.rig.bar(open=price)

    assert len(setup.rig.events(DailyLossBreached)) == 1
    assert setup.runner.status == HALTED
    order_id = setup.host.contexts["rec"].submit_order("AAPL", BUY, 1)
    assert setup.rig.position() == 10.0
    assert order_id not in [o["order_id"] for o in setup.host.contexts["rec"].open_orders()]
    setup.command("reset")
    assert setup.runner.status == RUNNING


def test_a_halt_while_stopped_halts_the_runner_and_start_is_refused() -> None:
    setup = Setup()

    setup.rig.risk.halt("engine", "reconciliation failed")
    setup.command("start")

    assert setup.runner.status == HALTED
    assert setup.statuses() == [(STOPPED, HALTED)]
    assert "cannot 'start' while 'halted'" in setup.refusals()[0].reason


def test_starting_on_a_restored_halted_trading_state_lands_in_halted() -> None:
    setup = Setup()
    for sub in setup.subscriptions:  # the halt happened before this runner existed
        sub.dispose()
    setup.rig.risk.halt("engine", "daily loss in the previous run")
    setup.runner.attach(setup.rig.core.bus)

    setup.command("start")

    assert setup.runner.status == HALTED
    assert setup.rig.events(RunnerStatusChanged)[-1].reason == "trading is halted (restored)"


# -- heartbeats (real time, own thread) ------------------------------------------------------------
def test_the_heartbeat_thread_publishes_numbered_beats_until_stopped() -> None:
    from engine.core import build_core

    journal = MemoryJournal()
    core = build_core(journal=journal, clock=ManualClock(T0), threaded=True)
    seen = threading.Event()
    beats: list[Heartbeat] = []

    def on_beat(event: Any) -> None:
        if isinstance(event, Heartbeat):
            beats.append(event)
            if len(beats) >= 3:
                seen.set()

    core.bus.subscribe("system.runner", on_beat)
    host = StrategyHost(core.publish, core.store, core.clock, [])
    rig_risk = trading_rig().risk
    runner = LiveStrategyRunner(
        publish=core.publish, clock=core.clock, host=host, risk=rig_risk, heartbeat_interval_s=0.02
    )
    try:
        runner.start_heartbeats()
        assert seen.wait(5), "no three heartbeats within 5 s"
    finally:
        runner.stop_heartbeats()
    core.bus.join(5)
    count = len([e for e in journal.events if isinstance(e, Heartbeat)])
    time.sleep(0.1)
    core.bus.join(5)
    core.stop()

    assert [b.count for b in beats[:3]] == [1, 2, 3]
    assert all(b.component == "runner" and b.topic == "system.runner" for b in beats)
    assert len([e for e in journal.events if isinstance(e, Heartbeat)]) == count  # stopped
