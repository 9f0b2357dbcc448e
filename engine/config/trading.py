"""The trading sections: the paper broker, the pre-trade risk limits and the P&L session.

These are the ``broker``, ``risk`` and ``pnl`` sections of the configuration, with what their
validation needs (:data:`BREACH_ACTIONS`, :func:`parse_hhmm`). The components they configure
live in :mod:`engine.broker`, :mod:`engine.risk` and :mod:`engine.pnl` and import them from
:mod:`engine.config`.
"""

from __future__ import annotations

import dataclasses
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.config.schema import setting
from streams.errors import ConfigError

#: What the daily-loss breaker does to trading: ``halt`` everything or only allow ``reduce``.
BREACH_ACTIONS = ("halt", "reduce")


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """Which broker (kind), and the paper broker's costs, account file and fill rules."""

    kind: str = setting("paper", help="paper or a venue adapter's (a seamless.brokers entry point)")
    options: dict[str, Any] = setting(
        factory=dict, help="settings of a plugin broker kind (its own keys, checked by it)"
    )
    slippage_bps: float = setting(
        0.0, min=0.0, max=1_000.0, help="price moved against the trader, in bps"
    )
    commission_per_unit: float = setting(0.0, min=0.0, help="commission per unit traded")
    commission_bps: float = setting(0.0, min=0.0, max=1_000.0, help="commission in bps of notional")
    commission_min: float = setting(0.0, min=0.0, help="minimum commission per fill")
    account_path: str = setting(
        "data/runtime/paper_broker.json",
        help="the broker's own account file; '' keeps it in memory",
    )
    fill_on_known_quote: bool = setting(
        True, help="check a new order against the last quote at once (else next tick)"
    )
    max_volume_fraction: float = setting(
        0.0,
        min=0.0,
        max=1.0,
        help="largest share of a bar's volume one order fills per bar; the rest waits for "
        "the next bars (0 = no cap; bars without volume are not capped)",
    )
    max_fills_kept: int = setting(
        1_000, min=1, max=10_000_000, help="recent fills kept in the file"
    )

    def __post_init__(self) -> None:
        from engine import plugins

        problem = plugins.not_installed(plugins.BROKERS, self.kind, "broker kind")
        if problem is not None:
            raise ConfigError(f"broker.kind: {problem}")


def _no_limits() -> dict[str, float]:
    return {}


@dataclasses.dataclass(frozen=True)
class RiskConfig:
    """Pre-trade limits and the daily-loss breaker; 0 switches a limit off."""

    max_position: float = setting(1_000.0, min=0.0, help="largest |position| per symbol, in units")
    position_limits: dict[str, float] = setting(
        factory=_no_limits, help="symbol -> max |position|, overriding"
    )
    max_order_notional: float = setting(250_000.0, min=0.0, help="largest qty * price of one order")
    max_orders_per_second: int = setting(
        20, min=0, max=100_000, help="orders sent to the broker per second"
    )
    require_price: bool = setting(True, help="refuse a market order while no price is known")
    daily_loss_limit: float = setting(5_000.0, min=0.0, help="daily loss that trips the breaker")
    breach_action: str = setting(
        "halt", choices=BREACH_ACTIONS, help="trading state after a breach"
    )
    flatten_on_breach: bool = setting(False, help="close every position when the breaker trips")


def parse_hhmm(value: str) -> time:
    """``"HH:MM"`` as a time of day; ValueError naming the value otherwise."""
    try:
        hours, minutes = value.split(":")
        parsed = time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValueError(f"session_start {value!r} is not a time of day as HH:MM") from None
    return parsed


@dataclasses.dataclass(frozen=True)
class PnlConfig:
    """The P&L tracker: the trading session and how often tick-driven figures go out."""

    session_start: str = setting("00:00", help="daily P&L restarts at this time of day (HH:MM)")
    session_timezone: str = setting(
        "UTC", help="IANA time zone of session_start, e.g. America/New_York"
    )
    publish_interval_s: float = setting(
        1.0, min=0.0, max=3_600.0, help="least clock time between tick-driven updates"
    )

    def __post_init__(self) -> None:
        parse_hhmm(self.session_start)
        try:
            ZoneInfo(self.session_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"session_timezone {self.session_timezone!r} is not a known time zone"
            ) from None
