"""Builds the live market-data feed the config asks for (see ``FeedConfig``)."""

from __future__ import annotations

from collections.abc import Callable

from engine.config import FeedConfig
from streams.clock import Clock
from streams.errors import ConfigError
from streams.events import Event
from streams.sources import FeedBase, ReplayFeed, SyntheticFeed, WebSocketFeed, load_sample_universe


def build_feed(
    config: FeedConfig, publish: Callable[[Event], None], clock: Clock
) -> FeedBase | None:
    """The feed for ``config`` publishing into ``publish``, or None for ``kind: none``."""
    symbols = [s.upper() for s in config.symbols]
    speed = config.speed or None
    if config.kind == "none":
        return None
    if config.kind == "sample":
        data = load_sample_universe(symbols)
        return ReplayFeed(
            publish,
            clock,
            data,
            kind="bars",
            speed=speed,
            loop=config.loop,
            interval_s=86_400,
            source="sample",
            known_symbols=symbols,
        )
    if config.kind in ("csv", "parquet"):
        if not config.path:
            raise ConfigError(f"feed.path: a {config.kind} feed needs a file path, got ''")
        return ReplayFeed(
            publish,
            clock,
            config.path,
            kind="bars",
            speed=speed,
            loop=config.loop,
            source=config.kind,
            known_symbols=symbols,
            symbol=symbols[0] if len(symbols) == 1 else None,
        )
    if config.kind == "synthetic":
        return SyntheticFeed(
            publish, clock, symbols, seed=config.seed, rate=config.rate, known_symbols=symbols
        )
    if config.kind == "websocket":
        if not config.url:
            raise ConfigError("feed.url: a websocket feed needs a ws:// or wss:// URL, got ''")
        return WebSocketFeed(publish, clock, config.url, known_symbols=symbols)
    raise ConfigError(f"feed.kind: unknown kind {config.kind!r}")
