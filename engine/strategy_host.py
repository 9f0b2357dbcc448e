"""Runs strategies on the engine thread: routes their data, gives them a context, isolates them.

Each strategy gets market data for its own symbols and the fills of its own orders. A strategy
that raises is disabled (its subscriptions disposed) and reported as an ``error_raised`` event;
the engine and the other strategies go on. While the host is paused, strategies see no data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactivex import abc

from engine.strategy import Strategy
from streams import topics
from streams.bus import EventBus
from streams.clock import Clock
from streams.errors import ConfigError
from streams.events import (
    SIDES,
    BarReceived,
    ErrorRaised,
    Event,
    OrderCancelled,
    OrderRejected,
    OrderSubmitted,
    SignalDetected,
    TickReceived,
    TradeExecuted,
)

Publish = Callable[[Event], None]

RUNNING = "running"
DISABLED = "disabled"
STOPPED = "stopped"


class HostedContext:
    """The :class:`~engine.strategy.StrategyContext` a hosted strategy receives."""

    def __init__(self, strategy: Strategy, publish: Publish, store: Any, clock: Clock) -> None:
        self._strategy = strategy
        self._name = str(strategy.name)
        self._publish = publish
        self._store = store
        self._clock = clock
        self._count = 0
        self.inflight: dict[str, dict[str, Any]] = {}

    @property
    def clock(self) -> Clock:
        return self._clock

    def position(self, symbol: str) -> float:
        pos = self._store.get_state(f"positions.{symbol}", None)
        return float(pos["qty"]) if pos else 0.0

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.inflight.values() if symbol is None or o["symbol"] == symbol]

    def submit_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        order_type: str = "market",
        limit_price: float | None = None,
        stop_price: float | None = None,
        reason: str = "",
    ) -> str:
        if side not in SIDES:
            raise ValueError(f"order side must be one of {SIDES}, got {side!r}")
        self._count += 1
        now = self._clock.now_ns()
        # Deterministic (a replay and a backtest of the same data give the same ids) and unique
        # across restarts: the clock never goes back, and a restarted replay resumes after the
        # last market time it handled.
        order_id = f"{self._name}-{now}-{self._count}"
        order = OrderSubmitted(
            order_id=order_id,
            strategy=self._name,
            symbol=symbol,
            side=side,
            qty=float(qty),
            order_type=order_type,
            limit_price=limit_price,
            stop_price=stop_price,
            actor=f"strategy:{self._name}",
            ts_event=now,
            correlation_id=order_id,
        )
        self.inflight[order_id] = {"order_id": order_id, "symbol": symbol, "side": side, "qty": qty}
        self._publish(order)
        return order_id

    def cancel_order(self, order_id: str, reason: str = "") -> None:
        order = self.inflight.get(order_id)
        if order is None:
            return
        self._publish(
            OrderCancelled(
                order_id=order_id,
                strategy=self._name,
                symbol=order["symbol"],
                reason=reason or "cancelled by strategy",
                ts_event=self._clock.now_ns(),
                correlation_id=order_id,
            )
        )

    def signal(self, symbol: str, side: str, *, strength: float = 1.0, reason: str = "") -> None:
        self._publish(
            SignalDetected(
                strategy=self._name,
                symbol=symbol,
                side=side,
                strength=strength,
                reason=reason,
                ts_event=self._clock.now_ns(),
            )
        )

    def order_done(self, order_id: str) -> None:
        """Forget an order that was filled, rejected or cancelled."""
        self.inflight.pop(order_id, None)


class StrategyHost:
    """Owns the running strategies: wiring, start/stop, pause, isolation and status."""

    def __init__(
        self, publish: Publish, store: Any, clock: Clock, strategies: Sequence[Strategy]
    ) -> None:
        names = [str(s.name) for s in strategies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"strategies: duplicate strategy name {duplicates[0]!r}")
        self._publish = publish
        self._store = store
        self._clock = clock
        self.strategies: dict[str, Strategy] = {str(s.name): s for s in strategies}
        self.contexts = {
            n: HostedContext(s, publish, store, clock) for n, s in self.strategies.items()
        }
        self.status = {n: STOPPED for n in self.strategies}
        self.paused = False
        self._subs: dict[str, list[abc.DisposableBase]] = {}

    def attach(self, bus: EventBus) -> list[abc.DisposableBase]:
        """Subscribe every strategy to its symbols' bars and ticks and to its own orders/fills."""
        out: list[abc.DisposableBase] = []
        for name, strategy in self.strategies.items():
            subs = self._subs.setdefault(name, [])
            for symbol in strategy.symbols:
                subs.append(
                    bus.subscribe(topics.bars(symbol), self._market(name), name=f"strategy:{name}")
                )
                subs.append(
                    bus.subscribe(topics.ticks(symbol), self._market(name), name=f"strategy:{name}")
                )
            subs.append(
                bus.subscribe(topics.orders(name), self._orders(name), name=f"strategy:{name}")
            )
            subs.append(
                bus.subscribe(topics.fills(name), self._fills(name), name=f"strategy:{name}")
            )
            out.extend(subs)
        return out

    def start(self) -> None:
        """Call ``on_start`` of every strategy not disabled (engine thread)."""
        for name, strategy in self.strategies.items():
            if self.status[name] == DISABLED:
                continue
            if self._call(name, strategy.on_start, self.contexts[name]):
                self.status[name] = RUNNING

    def stop(self) -> None:
        """Call ``on_stop`` of every running strategy (engine thread)."""
        for name, strategy in self.strategies.items():
            if self.status[name] == RUNNING and self._call(name, strategy.on_stop):
                self.status[name] = STOPPED

    def set_params(self, name: str, params: Mapping[str, Any]) -> None:
        """Change a strategy's parameters (validated; ConfigError names the bad one)."""
        strategy = self.strategies.get(name)
        if strategy is None:
            raise ConfigError(f"no strategy named {name!r} (have {sorted(self.strategies)})")
        apply_params(strategy, params, where=f"strategy {name!r}")

    # -- routing ---------------------------------------------------------------------------
    def _market(self, name: str) -> Callable[[Event], None]:
        strategy = self.strategies[name]

        def deliver(event: Event) -> None:
            if self.paused or self.status[name] != RUNNING:
                return
            if isinstance(event, BarReceived):
                self._call(name, strategy.on_bar, event)
            elif isinstance(event, TickReceived):
                self._call(name, strategy.on_tick, event)

        return deliver

    def _orders(self, name: str) -> Callable[[Event], None]:
        ctx = self.contexts[name]

        def deliver(event: Event) -> None:
            if isinstance(event, OrderRejected | OrderCancelled):
                ctx.order_done(event.order_id)

        return deliver

    def _fills(self, name: str) -> Callable[[Event], None]:
        strategy = self.strategies[name]
        ctx = self.contexts[name]

        def deliver(event: Event) -> None:
            if not isinstance(event, TradeExecuted):
                return
            if event.leaves_qty <= 0:
                ctx.order_done(event.order_id)
            if self.status[name] == RUNNING:
                self._call(name, strategy.on_fill, event)

        return deliver

    def _call(self, name: str, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:  # isolation: the strategy fails, the engine does not
            self._disable(name, exc)
            return False

    def _disable(self, name: str, exc: Exception) -> None:
        self.status[name] = DISABLED
        for sub in self._subs.pop(name, []):
            sub.dispose()
        self._publish(
            ErrorRaised(
                component=f"strategy:{name}",
                message=f"strategy {name!r} raised {type(exc).__name__}: {exc}; it is disabled",
                error_type=type(exc).__name__,
                details={"strategy": name, "action": "disabled"},
                ts_event=self._clock.now_ns(),
            )
        )


def resolve_strategy_class(spec: str) -> type[Strategy]:
    """The strategy class for an installed name (a ``seamless.strategies`` entry point, e.g.
    ``sma_crossover``) or a path (``package.module.Class`` or ``package.module:Class``).

    PluginError names the entry point, its distribution and the cause when an installed
    strategy fails to load; ConfigError otherwise names the spec and what was expected."""
    from engine import plugins

    if spec in plugins.names(plugins.STRATEGIES):
        found: type[Strategy] = plugins.load(plugins.STRATEGIES, spec)
        return found
    module_name, sep, class_name = spec.partition(":")
    if not sep:
        module_name, _, class_name = spec.rpartition(".")
    if not module_name or not class_name:
        installed = ", ".join(plugins.names(plugins.STRATEGIES)) or "none"
        raise ConfigError(
            f"strategy {spec!r} is neither an installed strategy ({installed}) "
            "nor a path like 'package.module.Class' or 'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"strategy {spec!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise ConfigError(
            f"strategy {spec!r}: {class_name!r} in {module_name!r} is not a Strategy class"
        )
    return cls


def build_strategy(
    spec: str, name: str, symbols: Sequence[str], params: Mapping[str, Any]
) -> Strategy:
    """Instantiate a strategy with validated parameters; ConfigError names any bad one."""
    cls = resolve_strategy_class(spec)
    known = set(cls.param) - {"name", "symbols"}
    unknown = sorted(set(params) - known)
    if unknown:
        choices = ", ".join(sorted(known))
        raise ConfigError(f"strategy {name!r}: unknown parameter {unknown[0]!r} (known: {choices})")
    try:
        return cls(name=name, symbols=list(symbols), **dict(params))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def apply_params(strategy: Strategy, params: Mapping[str, Any], *, where: str) -> None:
    """Validate every value first (param's update is not transactional), then set them together."""
    check_params(strategy, params, where=where)
    strategy.param.update(**dict(params))


def check_params(strategy: Strategy, params: Mapping[str, Any], *, where: str) -> None:
    """ConfigError naming the parameter and value if ``params`` may not be applied to
    ``strategy`` (each value, then the rules across them); changes nothing."""
    known = set(strategy.param) - {"name", "symbols"}
    for key, value in params.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown parameter {key!r} (known: {', '.join(sorted(known))})"
            )
        try:
            strategy.param[key]._validate(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{where}: parameter {key!r} has invalid value {value!r}: {exc}"
            ) from exc
    # Rules across parameters (SMA: fast < slow) live in the strategy's constructor: build a
    # throw-away instance with the merged values so they are checked before anything changes.
    merged = {k: v for k, v in strategy.parameters().items() if k != "symbols"} | dict(params)
    try:
        type(strategy)(name=str(strategy.name), symbols=list(strategy.symbols), **merged)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


__all__ = [
    "DISABLED",
    "RUNNING",
    "STOPPED",
    "HostedContext",
    "StrategyHost",
    "apply_params",
    "build_strategy",
    "check_params",
    "resolve_strategy_class",
]
