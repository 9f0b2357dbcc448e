"""The trading-state and runner folds: active/halted/reducing, and each component's status."""

from __future__ import annotations

from typing import Any

from state.model import FrozenDict, State, assoc
from streams.events import (
    HALTED,
    REDUCING,
    DailyLossBreached,
    RunnerStatusChanged,
    TradingStateChanged,
)


def apply_trading_state_changed(state: State, event: TradingStateChanged) -> dict[str, Any]:
    """Trading takes the carried state; who decided and why are kept next to it."""
    return {
        "trading": FrozenDict(
            state=event.state, reason=event.reason, actor=event.actor, ts=event.ts_event
        )
    }


def breach_state(action: str) -> str:
    """The trading state after a daily-loss breach: reducing if ``action`` says so, else halted."""
    # "reduce", "reducing", "reduce_only" all mean the same to an operator.
    return REDUCING if "reduc" in action.lower() else HALTED


def apply_daily_loss_breached(state: State, event: DailyLossBreached) -> dict[str, Any]:
    """A daily-loss breach halts trading (or makes it reduce-only when ``action`` says so)."""
    reason = (
        f"daily loss breached: daily P&L {event.daily_pnl:g} below limit {event.limit:g}"
        f" ({event.action})"
    )
    return {
        "trading": FrozenDict(
            state=breach_state(event.action), reason=reason, actor="risk", ts=event.ts_event
        )
    }


def apply_runner_status(state: State, event: RunnerStatusChanged) -> dict[str, Any]:
    """Set ``runner[component]`` to the new status."""
    return {"runner": assoc(state["runner"], event.component, event.status)}
