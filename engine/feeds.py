"""Builds the market-data feed the config asks for (see ``FeedConfig``).

Replay kinds (``sample``, ``csv``, ``parquet``) are parsed once (:func:`replay_table`) and
drive the engine on the data's clock; every start replays from where the engine stopped
(``resume_after_ns``). Live kinds (``synthetic``, ``websocket``) run on the wall clock. A
replay or the synthetic generator waits when the engine falls behind (back-pressure); a
websocket feed cannot, so it is given the bus's ``offer`` and drops, counts and reports what
the engine could not take.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.config import FeedConfig
from streams.clock import Clock
from streams.errors import ConfigError
from streams.events import Event
from streams.sources import (
    FeedBase,
    ReplayFeed,
    ReplayTable,
    SyntheticFeed,
    WebSocketFeed,
    load_replay_table,
    load_sample_universe,
)

#: Feed kinds that replay recorded data on the data's own clock.
REPLAY_KINDS = ("sample", "csv", "parquet")


def replay_table(config: FeedConfig) -> ReplayTable | None:
    """The data of a replay feed, parsed and checked once; None for a live kind.

    ConfigError names the key and the value when the file or a column is missing."""
    symbols = [s.upper() for s in config.symbols]
    if config.kind == "sample":
        return load_replay_table(load_sample_universe(symbols), kind="bars", interval_s=86_400)
    if config.kind in ("csv", "parquet"):
        if not config.path:
            raise ConfigError(f"feed.path: a {config.kind} feed needs a file path, got ''")
        try:
            return load_replay_table(
                config.path, kind="bars", symbol=symbols[0] if len(symbols) == 1 else None
            )
        except ConfigError as exc:
            raise ConfigError(f"feed.path {config.path!r}: {exc}") from exc
    return None


def build_feed(
    config: FeedConfig,
    publish: Callable[[Event], None],
    clock: Clock,
    *,
    offer: Callable[[Event], bool] | None = None,
    table: ReplayTable | None = None,
    resume_after_ns: int | None = None,
) -> FeedBase | None:
    """The feed for ``config`` publishing into ``publish``, or None for ``kind: none``.

    ``clock`` is the wall clock (it stamps ``ts_init`` and the feed's staleness); ``table`` is
    the replay data from :func:`replay_table` (parsed here if not given)."""
    symbols = [s.upper() for s in config.symbols]
    speed = config.speed or None
    if config.kind == "none":
        return None
    if config.kind in REPLAY_KINDS:
        data = table if table is not None else replay_table(config)
        assert data is not None
        return ReplayFeed(
            publish,
            clock,
            data,
            speed=speed,
            loop=config.loop,
            source=config.kind,
            known_symbols=symbols,
            resume_after_ns=resume_after_ns,
        )
    if config.kind == "synthetic":
        return SyntheticFeed(
            publish, clock, symbols, seed=config.seed, rate=config.rate, known_symbols=symbols
        )
    if config.kind == "websocket":
        if not config.url:
            raise ConfigError("feed.url: a websocket feed needs a ws:// or wss:// URL, got ''")
        return WebSocketFeed(publish, clock, config.url, known_symbols=symbols, offer=offer)
    raise ConfigError(f"feed.kind: unknown kind {config.kind!r}")
