"""Builds the market-data feed the config asks for (see ``FeedConfig``).

Every kind, built-in or not, is a :class:`FeedKind` named by a ``seamless.feeds`` entry point
(:mod:`engine.plugins`). Replay kinds (``sample``, ``csv``, ``parquet``) are parsed once
(:func:`replay_table`) and drive the engine on the data's clock; every start replays from
where the engine stopped (``resume_after_ns``). Live kinds (``synthetic``, ``websocket``) run
on the wall clock. A replay or the synthetic generator waits when the engine falls behind
(back-pressure); a websocket feed cannot, so it is given the bus's ``offer`` and drops, counts
and reports what the engine could not take.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, runtime_checkable

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

Publish = Callable[[Event], None]
Offer = Callable[[Event], bool]


@runtime_checkable
class FeedKind(Protocol):
    """What a ``seamless.feeds`` entry point names: one feed kind (``feed.kind`` in config)."""

    @property
    def replay(self) -> bool:
        """True for recorded data driven on the data's clock (``seamless run`` then replays,
        and backtests can use it); False for a live feed on the wall clock."""
        ...

    def load(self, config: FeedConfig) -> ReplayTable | None:
        """The recorded data of a replay kind, parsed and checked once (None for a live kind);
        ConfigError naming the key and value when it cannot be read."""
        ...

    def build(
        self,
        config: FeedConfig,
        publish: Publish,
        clock: Clock,
        *,
        offer: Offer | None = None,
        table: ReplayTable | None = None,
        resume_after_ns: int | None = None,
    ) -> FeedBase | None:
        """A new, unstarted feed publishing into ``publish`` (None: no feed). ``clock`` is the
        wall clock, ``offer`` the bus's non-blocking hand-in for feeds that cannot wait,
        ``table`` what :meth:`load` returned, ``resume_after_ns`` where a replay resumes."""
        ...


def _symbols(config: FeedConfig) -> list[str]:
    return [s.upper() for s in config.symbols]


@dataclasses.dataclass(frozen=True)
class RecordedFeed:
    """The built-in replay kinds: ``sample`` (bokeh-sampledata daily bars), ``csv``, ``parquet``."""

    kind: str
    replay: bool = True

    def load(self, config: FeedConfig) -> ReplayTable | None:
        symbols = _symbols(config)
        if self.kind == "sample":
            return load_replay_table(load_sample_universe(symbols), kind="bars", interval_s=86_400)
        if not config.path:
            raise ConfigError(f"feed.path: a {self.kind} feed needs a file path, got ''")
        try:
            return load_replay_table(
                config.path, kind="bars", symbol=symbols[0] if len(symbols) == 1 else None
            )
        except ConfigError as exc:
            raise ConfigError(f"feed.path {config.path!r}: {exc}") from exc

    def build(
        self,
        config: FeedConfig,
        publish: Publish,
        clock: Clock,
        *,
        offer: Offer | None = None,
        table: ReplayTable | None = None,
        resume_after_ns: int | None = None,
    ) -> FeedBase | None:
        data = table if table is not None else self.load(config)
        assert data is not None
        return ReplayFeed(
            publish,
            clock,
            data,
            speed=config.speed or None,
            loop=config.loop,
            source=self.kind,
            known_symbols=_symbols(config),
            resume_after_ns=resume_after_ns,
        )


@dataclasses.dataclass(frozen=True)
class LiveFeed:
    """The built-in live kinds: ``synthetic`` (seeded random ticks), ``websocket``, ``none``."""

    kind: str
    replay: bool = False

    def load(self, config: FeedConfig) -> ReplayTable | None:
        return None

    def build(
        self,
        config: FeedConfig,
        publish: Publish,
        clock: Clock,
        *,
        offer: Offer | None = None,
        table: ReplayTable | None = None,
        resume_after_ns: int | None = None,
    ) -> FeedBase | None:
        symbols = _symbols(config)
        if self.kind == "synthetic":
            return SyntheticFeed(
                publish, clock, symbols, seed=config.seed, rate=config.rate, known_symbols=symbols
            )
        if self.kind == "websocket":
            if not config.url:
                raise ConfigError("feed.url: a websocket feed needs a ws:// or wss:// URL, got ''")
            return WebSocketFeed(publish, clock, config.url, known_symbols=symbols, offer=offer)
        return None


#: The built-in kinds, each declared as a ``seamless.feeds`` entry point in pyproject.toml.
SAMPLE = RecordedFeed("sample")
CSV = RecordedFeed("csv")
PARQUET = RecordedFeed("parquet")
SYNTHETIC = LiveFeed("synthetic")
WEBSOCKET = LiveFeed("websocket")
NONE = LiveFeed("none")


def feed_kind(kind: str) -> FeedKind:
    """The installed feed kind named ``kind``; PluginError naming the entry point, its
    distribution and the cause if it is unknown, fails to import or is not a FeedKind."""
    from engine import plugins

    found: FeedKind = plugins.load(plugins.FEEDS, kind)
    return found


def is_replay(config: FeedConfig) -> bool:
    """True if ``config``'s feed replays recorded data on the data's own clock."""
    return bool(feed_kind(config.kind).replay)


def replay_table(config: FeedConfig) -> ReplayTable | None:
    """The data of a replay feed, parsed and checked once; None for a live kind.

    ConfigError names the key and the value when the file or a column is missing."""
    return feed_kind(config.kind).load(config)


def build_feed(
    config: FeedConfig,
    publish: Publish,
    clock: Clock,
    *,
    offer: Offer | None = None,
    table: ReplayTable | None = None,
    resume_after_ns: int | None = None,
) -> FeedBase | None:
    """The feed for ``config`` publishing into ``publish``, or None for ``kind: none``.

    ``clock`` is the wall clock (it stamps ``ts_init`` and the feed's staleness); ``table`` is
    the replay data from :func:`replay_table` (parsed here if not given)."""
    return feed_kind(config.kind).build(
        config, publish, clock, offer=offer, table=table, resume_after_ns=resume_after_ns
    )
