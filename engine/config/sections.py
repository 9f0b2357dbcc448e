"""The engine's own sections: identity, storage, bus, state, feed, strategies and runner.

Each section is a frozen dataclass whose fields carry :func:`~engine.config.schema.meta`
(range, choices, help); :class:`~engine.config.loading.SeamlessConfig` holds one of each, and
:func:`~engine.config.schema.build` validates a parsed YAML mapping against them. The defaults
here are the embedded defaults that ``config/config.yaml`` restates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.config.schema import meta
from streams.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The built-in feed kinds; ``feed.kind`` accepts any installed ``seamless.feeds`` entry point.
FEED_KINDS = ("sample", "csv", "parquet", "synthetic", "websocket", "none")


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Identity and logging of this engine instance, and its process's interpreter settings
    (applied by ``seamless run`` and ``seamless serve``: :mod:`engine.process_tuning`)."""

    name: str = dataclasses.field(default="seamless-paper", metadata=meta(help="instance name"))
    log_level: str = dataclasses.field(
        default="INFO", metadata=meta(choices=LOG_LEVELS, help="log level (env SEAMLESS_LOG_LEVEL)")
    )
    gil_switch_interval_ms: float = dataclasses.field(
        default=1.0,
        metadata=meta(
            min=0.1,
            max=100.0,
            help="seamless run/serve: how long a busy thread keeps Python's GIL from one that"
            " waits (CPython's default 5 ms delays every commit of the event log)",
        ),
    )
    gc_full_every: int = dataclasses.field(
        default=100,
        metadata=meta(
            min=1,
            max=100_000,
            help="seamless run/serve: middle-generation collections between two full ones"
            " (CPython's default 10; a full pass stops every thread for ~150 ms)",
        ),
    )
    gc_freeze_after_start: bool = dataclasses.field(
        default=True,
        metadata=meta(
            help="seamless run/serve: keep the objects start-up built out of full collections"
        ),
    )


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """The event log and snapshots: DuckDB (embedded default) or PostgreSQL (scale-out)."""

    backend: str = dataclasses.field(
        default="duckdb",
        metadata=meta(
            choices=("duckdb", "postgres"),
            help="event-log backend: duckdb = one local file, postgres = shared by several nodes",
        ),
    )
    db_path: str = dataclasses.field(
        default="data/runtime/seamless.duckdb",
        metadata=meta(help="DuckDB file, relative to the working directory (env SEAMLESS_DB_PATH)"),
    )
    snapshot_interval_s: float = dataclasses.field(
        default=300.0, metadata=meta(min=1.0, max=86_400.0, help="seconds between snapshots")
    )
    snapshot_every_events: int = dataclasses.field(
        default=5_000,
        metadata=meta(
            min=0,
            max=10_000_000,
            help="also snapshot after this many events (bounds the replay of a restart or a "
            "time-travel step; 0 = by time only)",
        ),
    )
    batch_size: int = dataclasses.field(
        default=5_000, metadata=meta(min=1, max=1_000_000, help="non-critical events per write")
    )
    flush_interval_s: float = dataclasses.field(
        default=0.05,
        metadata=meta(min=0.001, max=60.0, help="longest wait before a batch is written"),
    )
    memory_limit: str = dataclasses.field(
        default="512MB",
        metadata=meta(
            help="DuckDB memory_limit, e.g. '512MB' ('' = DuckDB's default, 80% of RAM): caps "
            "DuckDB's evictable buffer cache; the log has no event_id index, so its unevictable "
            "memory stays flat (~2 MiB) and the cap holds; see docs/reliability.md"
        ),
    )
    postgres_dsn: str = dataclasses.field(
        default="",
        metadata=meta(
            help="PostgreSQL connection string for backend postgres (env SEAMLESS_PG_DSN)"
        ),
    )
    stream: str = dataclasses.field(
        default="default",
        metadata=meta(help="this engine's stream (book) in a shared PostgreSQL log"),
    )


@dataclasses.dataclass(frozen=True)
class BusConfig:
    """The in-process event bus, and the optional NATS JetStream bridge between processes."""

    capacity: int = dataclasses.field(
        default=100_000,
        metadata=meta(min=16, max=10_000_000, help="inbox size before back-pressure"),
    )
    max_batch: int = dataclasses.field(
        default=1_024,
        metadata=meta(
            min=1,
            max=100_000,
            help="events taken from the inbox per dispatch round (each handled to completion)",
        ),
    )
    stall_warn_s: float = dataclasses.field(
        default=5.0,
        metadata=meta(
            min=0.0,
            help="report a dispatch round running longer than this (0 = never); the systemd "
            "watchdog and /livez count such a round as a stall (5 s when 0)",
        ),
    )
    transport: str = dataclasses.field(
        default="inprocess",
        metadata=meta(
            choices=("inprocess", "jetstream"),
            help="inprocess = one process; jetstream = also relay committed events to NATS",
        ),
    )
    nats_url: str = dataclasses.field(
        default="nats://127.0.0.1:4222",
        metadata=meta(help="NATS server for transport jetstream (env SEAMLESS_NATS_URL)"),
    )
    jetstream_stream: str = dataclasses.field(
        default="SEAMLESS", metadata=meta(help="JetStream stream that mirrors the topics")
    )


def _default_owners() -> dict[str, tuple[str, ...]]:
    return {
        "engine": ("",),
        "operator": ("risk", "strategies", "feed", "notes"),
        "risk": ("risk",),
    }


@dataclasses.dataclass(frozen=True)
class StateConfig:
    """The state store: starting account and who may write which paths."""

    starting_cash: float = dataclasses.field(
        default=100_000.0, metadata=meta(min=0.0, help="cash deposited on a brand-new log")
    )
    view_interval_s: float = dataclasses.field(
        default=0.5, metadata=meta(min=0.0, max=60.0, help="refresh interval of throttled views")
    )
    owners: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=_default_owners,
        metadata=meta(help="actor -> state path prefixes it may write ('' = everything)"),
    )


@dataclasses.dataclass(frozen=True)
class FeedConfig:
    """Where live market data comes from."""

    kind: str = dataclasses.field(
        default="sample",
        metadata=meta(
            help="sample (bokeh-sampledata daily bars), csv, parquet, synthetic, websocket,"
            " none, or a plugin's"
        ),
    )
    symbols: tuple[str, ...] = dataclasses.field(
        default=("AAPL", "MSFT", "GOOG", "IBM"), metadata=meta(help="symbols to feed and accept")
    )
    path: str = dataclasses.field(
        default="", metadata=meta(help="file for csv/parquet (bars: timestamp,open,high,low,close)")
    )
    speed: float = dataclasses.field(
        default=172_800.0,
        metadata=meta(min=0.0, help="replay speed x real time (172800 = 2 daily bars/s); 0 = max"),
    )
    loop: bool = dataclasses.field(
        default=True, metadata=meta(help="replay again from the start (time keeps increasing)")
    )
    rate: float = dataclasses.field(
        default=20.0, metadata=meta(min=0.0, help="synthetic ticks per second (0 = max)")
    )
    seed: int = dataclasses.field(default=7, metadata=meta(help="synthetic feed seed"))
    url: str = dataclasses.field(default="", metadata=meta(help="websocket feed URL"))
    stale_after_s: float = dataclasses.field(
        default=10.0, metadata=meta(min=0.1, help="feed counted stale after this long quiet")
    )
    halt_after_s: float = dataclasses.field(
        default=0.0,
        metadata=meta(min=0.0, help="halt trading after the feed is quiet this long (0 = never)"),
    )
    options: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata=meta(help="settings of a plugin feed kind (its own keys, checked by the plugin)"),
    )

    def __post_init__(self) -> None:
        from engine import plugins

        installed = plugins.names(plugins.FEEDS)
        if self.kind not in installed:
            raise ConfigError(
                f"feed.kind: expected an installed feed kind ({', '.join(installed)}), "
                f"got {self.kind!r}"
            )


@dataclasses.dataclass(frozen=True)
class StrategyConfig:
    """One strategy instance: a class (an entry-point name of ``seamless.strategies`` or a
    dotted path), its symbols and parameters."""

    name: str = dataclasses.field(default="strategy", metadata=meta(help="unique name"))
    strategy: str = dataclasses.field(
        default="sma_crossover",
        metadata=meta(
            help="an installed seamless.strategies entry point (built in: sma_crossover, zscore)"
            " or a path package.module.Class"
        ),
    )
    symbols: tuple[str, ...] = dataclasses.field(default=(), metadata=meta(help="symbols traded"))
    params: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata=meta(help="parameters, validated by the strategy's param")
    )

    def __post_init__(self) -> None:
        from engine import plugins

        installed = plugins.names(plugins.STRATEGIES)
        if self.strategy not in installed and not _is_class_path(self.strategy):
            raise ValueError(
                f"strategy: expected an installed strategy ({', '.join(installed)}) or a path"
                f" like 'package.module.Class', got {self.strategy!r}"
            )


def _is_class_path(spec: str) -> bool:
    module, sep, name = spec.partition(":")
    if not sep:
        module, _, name = spec.rpartition(".")
    return bool(module) and bool(name)


def _default_operators() -> tuple[str, ...]:
    return ("engine", "cli", "risk")


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """The live runner: heartbeats, autostart and who may command it."""

    heartbeat_interval_s: float = dataclasses.field(
        default=1.0, metadata=meta(min=0.05, max=3_600.0, help="seconds between heartbeats")
    )
    autostart: bool = dataclasses.field(
        default=True, metadata=meta(help="start trading when the engine starts")
    )
    operators: tuple[str, ...] = dataclasses.field(
        default_factory=_default_operators,
        metadata=meta(help="system actors allowed to command the runner (users: access.users)"),
    )
