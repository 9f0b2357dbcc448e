"""StrategyHost: routing by symbol, isolation of a failing strategy, pause, parameter changes,
and loading strategy classes by short name or dotted path."""

from __future__ import annotations

from typing import Any

import param
import pytest

from engine.strategies import SmaCrossover, ZScoreReversion
from engine.strategy import Strategy
from engine.strategy_host import (
    DISABLED,
    RUNNING,
    STOPPED,
    StrategyHost,
    apply_params,
    build_strategy,
    resolve_strategy_class,
)
from streams.errors import ConfigError
from streams.events import BUY, BarReceived, ErrorRaised, OrderSubmitted, TickReceived
from tests.factories import TradingRig, trading_rig


class Recorder(Strategy):
    """Records every callback; loadable as tests.engine.test_strategy_host.Recorder."""

    threshold = param.Number(default=1.0, bounds=(0, 10), doc="a bounded parameter")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bars: list[BarReceived] = []
        self.ticks: list[TickReceived] = []
        self.fills: list[Any] = []
        self.stopped = 0

    def on_bar(self, bar: BarReceived) -> None:
        self.bars.append(bar)

    def on_tick(self, tick: TickReceived) -> None:
        self.ticks.append(tick)

    def on_fill(self, fill: Any) -> None:
        self.fills.append(fill)

    def on_stop(self) -> None:
        self.stopped += 1


class Exploding(Recorder):
    """Raises on its second bar."""

    def on_bar(self, bar: BarReceived) -> None:
        super().on_bar(bar)
        if len(self.bars) == 2:
            raise ZeroDivisionError("boom in on_bar")


class NotAStrategy:
    """A class that is not a Strategy."""


def hosted(*strategies: Strategy) -> tuple[TradingRig, StrategyHost]:
    """A fresh trading rig, and a started host of ``strategies`` on its bus."""
    rig = trading_rig()
    host = StrategyHost(rig.core.publish, rig.store, rig.clock, list(strategies))
    host.attach(rig.core.bus)
    host.start()
    return rig, host


# -- routing ---------------------------------------------------------------------------------------
def test_each_strategy_gets_only_its_own_symbols_bars_and_ticks() -> None:
    apple = Recorder(name="apple", symbols=["AAPL"])
    micro = Recorder(name="micro", symbols=["MSFT"])
    rig, _ = hosted(apple, micro)

    rig.bar("AAPL", open=100)
    rig.bar("MSFT", open=400)
    rig.bar("IBM", open=150)
    rig.quote("MSFT", bid=399.9, ask=400.1)

    assert [b.symbol for b in apple.bars] == ["AAPL"]
    assert apple.ticks == []
    assert [b.symbol for b in micro.bars] == ["MSFT"]
    assert [t.symbol for t in micro.ticks] == ["MSFT"]


def test_fills_go_only_to_the_strategy_that_sent_the_order() -> None:
    apple = Recorder(name="apple", symbols=["AAPL"])
    other = Recorder(name="other", symbols=["AAPL"])
    rig, host = hosted(apple, other)
    rig.bar("AAPL", open=100)

    order_id = host.contexts["apple"].submit_order("AAPL", BUY, 3)
    assert [o["order_id"] for o in host.contexts["apple"].open_orders("AAPL")] == [order_id]
    rig.bar("AAPL", open=101)

    assert [f.order_id for f in apple.fills] == [order_id]
    assert other.fills == []
    assert host.contexts["apple"].open_orders() == []  # filled: no longer in flight
    assert host.contexts["apple"].position("AAPL") == 3.0


def test_a_rejected_order_is_no_longer_in_flight() -> None:
    apple = Recorder(name="apple", symbols=["AAPL"])
    rig, host = hosted(apple)
    rig.risk.halt("operator", "test halt")

    host.contexts["apple"].submit_order("AAPL", BUY, 3)

    assert host.contexts["apple"].open_orders() == []


def test_submit_order_refuses_an_unknown_side() -> None:
    _, host = hosted(Recorder(name="apple", symbols=["AAPL"]))

    with pytest.raises(ValueError, match="order side must be one of"):
        host.contexts["apple"].submit_order("AAPL", "hold", 3)


# -- isolation -------------------------------------------------------------------------------------
def test_a_strategy_that_raises_is_disabled_and_reported_and_the_others_go_on() -> None:
    boom = Exploding(name="boom", symbols=["AAPL"])
    calm = Recorder(name="calm", symbols=["AAPL"])
    rig, host = hosted(boom, calm)

    for price in (100, 101, 102, 103):
        rig.bar("AAPL", open=price)

    assert host.status == {"boom": DISABLED, "calm": RUNNING}
    assert len(boom.bars) == 2  # nothing delivered after the failure
    assert len(calm.bars) == 4
    errors = rig.events(ErrorRaised)
    assert len(errors) == 1
    assert errors[0].component == "strategy:boom"
    assert "'boom'" in errors[0].message and "ZeroDivisionError" in errors[0].message
    assert errors[0].details == {"strategy": "boom", "action": "disabled"}
    # the engine goes on: the calm strategy still trades through the broker
    host.contexts["calm"].submit_order("AAPL", BUY, 1)
    rig.bar("AAPL", open=104)
    assert rig.position() == 1.0


def test_a_strategy_that_raises_in_on_start_never_runs() -> None:
    class BadStart(Recorder):
        def on_start(self, ctx: Any) -> None:
            raise RuntimeError("cannot warm up")

    bad = BadStart(name="bad", symbols=["AAPL"])
    rig, host = hosted(bad)

    rig.bar("AAPL", open=100)

    assert host.status["bad"] == DISABLED
    assert bad.bars == []
    assert "cannot warm up" in rig.events(ErrorRaised)[0].message


def test_stop_calls_on_stop_of_running_strategies_only() -> None:
    boom = Exploding(name="boom", symbols=["AAPL"])
    calm = Recorder(name="calm", symbols=["AAPL"])
    rig, host = hosted(boom, calm)
    rig.bar("AAPL", open=100)
    rig.bar("AAPL", open=100)

    host.stop()

    assert (boom.stopped, calm.stopped) == (0, 1)
    assert host.status == {"boom": DISABLED, "calm": STOPPED}


# -- pause -----------------------------------------------------------------------------------------
def test_while_paused_strategies_see_no_data() -> None:
    apple = Recorder(name="apple", symbols=["AAPL"])
    rig, host = hosted(apple)

    host.paused = True
    rig.bar("AAPL", open=100)
    rig.quote("AAPL")
    host.paused = False
    rig.bar("AAPL", open=101)

    assert [b.open for b in apple.bars] == [101]
    assert apple.ticks == []


# -- parameters ------------------------------------------------------------------------------------
def test_set_params_applies_valid_values() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=3, slow=10, qty=5)
    _, host = hosted(sma)

    host.set_params("sma", {"fast": 4, "qty": 7.5})

    assert (sma.fast, sma.slow, sma.qty) == (4, 10, 7.5)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"fast": 4, "qty": -1}, "'qty'"),
        ({"qty": 2, "fast": "quick"}, "'fast'"),
        ({"fast": 0}, "'fast'"),
        ({"fast": 4, "colour": "red"}, "'colour'"),
    ],
)
def test_set_params_with_one_bad_value_changes_nothing_and_names_it(
    params: dict[str, Any], named: str
) -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=3, slow=10, qty=5)
    _, host = hosted(sma)

    with pytest.raises(ConfigError, match=named) as raised:
        host.set_params("sma", params)

    assert "strategy 'sma'" in str(raised.value)
    assert (sma.fast, sma.slow, sma.qty) == (3, 10, 5)


def test_set_params_refuses_values_that_break_the_strategys_own_rule() -> None:
    sma = SmaCrossover(name="sma", symbols=["AAPL"], fast=3, slow=10, qty=5)
    _, host = hosted(sma)

    with pytest.raises(ConfigError, match=r"fast \(12\) must be smaller than slow \(10\)"):
        host.set_params("sma", {"fast": 12})

    assert (sma.fast, sma.slow) == (3, 10)


def test_set_params_for_an_unknown_strategy_names_the_known_ones() -> None:
    _, host = hosted(Recorder(name="apple", symbols=["AAPL"]))

    with pytest.raises(ConfigError, match=r"no strategy named 'pear' \(have \['apple'\]\)"):
        host.set_params("pear", {"threshold": 2})


def test_apply_params_may_not_change_name_or_symbols() -> None:
    rec = Recorder(name="apple", symbols=["AAPL"])

    with pytest.raises(ConfigError, match="unknown parameter 'symbols'"):
        apply_params(rec, {"symbols": ["MSFT"]}, where="strategy 'apple'")

    assert rec.symbols == ["AAPL"]


def test_duplicate_strategy_names_are_refused() -> None:
    rig = trading_rig()

    with pytest.raises(ConfigError, match="duplicate strategy name 'twin'"):
        StrategyHost(
            rig.core.publish, rig.store, rig.clock, [Recorder(name="twin"), Recorder(name="twin")]
        )


# -- loading ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("sma_crossover", SmaCrossover),
        ("sma", SmaCrossover),
        ("zscore", ZScoreReversion),
        ("engine.strategies.zscore.ZScoreReversion", ZScoreReversion),
        ("tests.engine.test_strategy_host.Recorder", Recorder),
    ],
)
def test_strategy_classes_resolve_from_short_names_and_dotted_paths(
    spec: str, cls: type[Strategy]
) -> None:
    assert resolve_strategy_class(spec) is cls


def test_build_strategy_gives_name_symbols_and_params() -> None:
    strategy = build_strategy(
        "tests.engine.test_strategy_host.Recorder", "rec", ["AAPL", "MSFT"], {"threshold": 2.5}
    )

    assert isinstance(strategy, Recorder)
    assert (strategy.name, strategy.symbols, strategy.threshold) == ("rec", ["AAPL", "MSFT"], 2.5)
    assert strategy.parameters() == {"symbols": ["AAPL", "MSFT"], "threshold": 2.5}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", r"'nonsense' is neither an installed strategy \(sma, .*\) nor a path"),
        ("no_such_pkg.mod.Cls", r"cannot import module 'no_such_pkg.mod'"),
        (
            "engine.strategies.sma_crossover.Nope",
            r"'Nope' in 'engine.strategies.sma_crossover' is "
            r"not a Strategy class",
        ),
        ("tests.engine.test_strategy_host.NotAStrategy", r"'NotAStrategy' .* not a Strategy"),
    ],
)
def test_unknown_strategy_classes_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_strategy(spec, "x", ["AAPL"], {})


def test_an_unknown_parameter_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"strategy 'x': unknown parameter 'fats' \(known: "
        r"fast, qty, slow\)",
    ):
        build_strategy("sma_crossover", "x", ["AAPL"], {"fats": 3})


def test_a_strategy_disabled_mid_run_leaves_no_orders_in_the_log() -> None:
    boom = Exploding(name="boom", symbols=["AAPL"])
    rig, _ = hosted(boom)

    for price in (100, 101, 102):
        rig.bar("AAPL", open=price)

    assert rig.events(OrderSubmitted) == []
