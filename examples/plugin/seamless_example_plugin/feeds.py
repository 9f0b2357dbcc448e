"""``steps``: a replay feed kind of daily bars whose closes are given in the config::

feed: {kind: steps, symbols: [AAPL], options: {closes: [10, 11, 12], start: "2024-01-02"}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd

from engine import (
    Clock,
    ConfigError,
    Event,
    FeedBase,
    FeedConfig,
    FeedKind,
    ReplayFeed,
    ReplayTable,
    load_replay_table,
)


@dataclasses.dataclass(frozen=True)
class StepsFeed:
    """Daily bars from ``feed.options.closes`` (high/low one above/below the close)."""

    replay: bool = True

    def load(self, config: FeedConfig) -> ReplayTable:
        """The bars, checked: ConfigError names the option and the bad value."""
        closes = config.options.get("closes")
        if not isinstance(closes, list) or not closes:
            raise ConfigError(f"feed.options.closes: expected a list of prices, got {closes!r}")
        if len(config.symbols) != 1:
            raise ConfigError(f"feed.symbols: a steps feed has one symbol, got {config.symbols}")
        prices = [float(c) for c in closes]
        frame = pd.DataFrame(
            {
                "timestamp": pd.date_range(
                    config.options.get("start", "2024-01-02"), periods=len(prices), freq="1D"
                ),
                "open": prices,
                "high": [p + 1 for p in prices],
                "low": [p - 1 for p in prices],
                "close": prices,
            }
        )
        return load_replay_table(frame, kind="bars", symbol=config.symbols[0].upper())

    def build(
        self,
        config: FeedConfig,
        publish: Callable[[Event], None],
        clock: Clock,
        *,
        offer: Callable[[Event], bool] | None = None,
        table: ReplayTable | None = None,
        resume_after_ns: int | None = None,
    ) -> FeedBase | None:
        """A replay of the bars on the data's clock, resuming after ``resume_after_ns``."""
        return ReplayFeed(
            publish,
            clock,
            table if table is not None else self.load(config),
            speed=config.speed or None,
            loop=config.loop,
            source="steps",
            known_symbols=[s.upper() for s in config.symbols],
            resume_after_ns=resume_after_ns,
        )


#: What the ``steps`` entry point names: an instance, not the class (mypy checks the protocol).
STEPS: FeedKind = StepsFeed()
