"""The engine's own sections: identity, storage, bus, state, feed, strategies, runner, cluster.

Each section is a frozen dataclass whose fields are declared with
:func:`~engine.config.schema.setting` (default, range, choices, help);
:class:`~engine.config.loading.SeamlessConfig` holds one of each, and
:func:`~engine.config.schema.build` validates a parsed YAML mapping against them. The defaults
here are the embedded defaults that ``config/config.yaml`` restates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.config.schema import setting
from streams.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The built-in feed kinds; ``feed.kind`` accepts any installed ``seamless.feeds`` entry point.
FEED_KINDS = ("sample", "csv", "parquet", "synthetic", "websocket", "none")


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Identity and logging of this engine instance, and its process's interpreter settings
    (applied by ``seamless run`` and ``seamless serve``: :mod:`engine.process_tuning`)."""

    name: str = setting("seamless-paper", help="instance name")
    log_level: str = setting("INFO", choices=LOG_LEVELS, help="log level (env SEAMLESS_LOG_LEVEL)")
    gil_switch_interval_ms: float = setting(
        1.0,
        min=0.1,
        max=100.0,
        help="seamless run/serve: how long a busy thread keeps Python's GIL from one that"
        " waits (CPython's default 5 ms delays every commit of the event log)",
    )
    gc_full_every: int = setting(
        100,
        min=1,
        max=100_000,
        help="seamless run/serve: middle-generation collections between two full ones"
        " (CPython's default 10; a full pass stops every thread for ~150 ms)",
    )
    gc_freeze_after_start: bool = setting(
        True, help="seamless run/serve: keep the objects start-up built out of full collections"
    )


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """The event log and snapshots: DuckDB (embedded default) or PostgreSQL (scale-out)."""

    backend: str = setting(
        "duckdb",
        choices=("duckdb", "postgres"),
        help="event-log backend: duckdb = one local file, postgres = shared by several nodes",
    )
    db_path: str = setting(
        "data/runtime/seamless.duckdb",
        help="DuckDB file, relative to the working directory (env SEAMLESS_DB_PATH)",
    )
    snapshot_interval_s: float = setting(
        300.0, min=1.0, max=86_400.0, help="seconds between snapshots"
    )
    snapshot_every_events: int = setting(
        5_000,
        min=0,
        max=10_000_000,
        help="also snapshot after this many events (bounds the replay of a restart or a "
        "time-travel step; 0 = by time only)",
    )
    batch_size: int = setting(5_000, min=1, max=1_000_000, help="non-critical events per write")
    flush_interval_s: float = setting(
        0.05, min=0.001, max=60.0, help="longest wait before a batch is written"
    )
    memory_limit: str = setting(
        "512MB",
        help="DuckDB memory_limit, e.g. '512MB' ('' = DuckDB's default, 80% of RAM): caps "
        "DuckDB's evictable buffer cache; the log has no event_id index, so its unevictable "
        "memory stays flat (~2 MiB) and the cap holds; see docs/reliability.md",
    )
    postgres_dsn: str = setting(
        "", help="PostgreSQL connection string for backend postgres (env SEAMLESS_PG_DSN)"
    )
    stream: str = setting("default", help="this engine's stream (book) in a shared PostgreSQL log")


@dataclasses.dataclass(frozen=True)
class BusConfig:
    """The in-process event bus, and the optional NATS JetStream bridge between processes."""

    capacity: int = setting(100_000, min=16, max=10_000_000, help="inbox size before back-pressure")
    max_batch: int = setting(
        1_024,
        min=1,
        max=100_000,
        help="events taken from the inbox per dispatch round (each handled to completion)",
    )
    stall_warn_s: float = setting(
        5.0,
        min=0.0,
        help="report a dispatch round running longer than this (0 = never); the systemd "
        "watchdog and /livez count such a round as a stall (5 s when 0)",
    )
    transport: str = setting(
        "inprocess",
        choices=("inprocess", "jetstream"),
        help="inprocess = one process; jetstream = also relay committed events to NATS",
    )
    nats_url: str = setting(
        "nats://127.0.0.1:4222", help="NATS server for transport jetstream (env SEAMLESS_NATS_URL)"
    )
    jetstream_stream: str = setting("SEAMLESS", help="JetStream stream that mirrors the topics")


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """This node's name and how its book lease is held, renewed and taken over.

    Only used with ``storage.backend: postgres``: the node trades ``storage.stream`` (its book
    of accounts and strategies) only while it holds that book's lease, so two nodes never
    trade the same account. See ``docs/scale-out.md``.
    """

    node_id: str = setting("", help="name of this node ('' = host name and process id)")
    lease_ttl_s: float = setting(
        10.0, min=1.0, max=3_600.0, help="a lease not renewed for this long may be taken over"
    )
    standby: bool = setting(
        False, help="wait for the book's lease instead of failing when another node has it"
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

    starting_cash: float = setting(100_000.0, min=0.0, help="cash deposited on a brand-new log")
    view_interval_s: float = setting(
        0.5, min=0.0, max=60.0, help="refresh interval of throttled views"
    )
    owners: dict[str, tuple[str, ...]] = setting(
        factory=_default_owners, help="actor -> state path prefixes it may write ('' = everything)"
    )


@dataclasses.dataclass(frozen=True)
class FeedConfig:
    """Where live market data comes from."""

    kind: str = setting(
        "sample",
        help="sample (bokeh-sampledata daily bars), csv, parquet, synthetic, websocket,"
        " none, or a plugin's",
    )
    symbols: tuple[str, ...] = setting(
        ("AAPL", "MSFT", "GOOG", "IBM"), help="symbols to feed and accept"
    )
    path: str = setting("", help="file for csv/parquet (bars: timestamp,open,high,low,close)")
    speed: float = setting(
        172_800.0, min=0.0, help="replay speed x real time (172800 = 2 daily bars/s); 0 = max"
    )
    loop: bool = setting(True, help="replay again from the start (time keeps increasing)")
    rate: float = setting(20.0, min=0.0, help="synthetic ticks per second (0 = max)")
    seed: int = setting(7, help="synthetic feed seed")
    url: str = setting("", help="websocket feed URL")
    stale_after_s: float = setting(10.0, min=0.1, help="feed counted stale after this long quiet")
    halt_after_s: float = setting(
        0.0, min=0.0, help="halt trading after the feed is quiet this long (0 = never)"
    )
    options: dict[str, Any] = setting(
        factory=dict, help="settings of a plugin feed kind (its own keys, checked by the plugin)"
    )

    def __post_init__(self) -> None:
        from engine import plugins

        problem = plugins.not_installed(plugins.FEEDS, self.kind, "feed kind")
        if problem is not None:
            raise ConfigError(f"feed.kind: {problem}")


@dataclasses.dataclass(frozen=True)
class StrategyConfig:
    """One strategy instance: a class (an entry-point name of ``seamless.strategies`` or a
    dotted path), its symbols and parameters."""

    name: str = setting("strategy", help="unique name")
    strategy: str = setting(
        "sma_crossover",
        help="an installed seamless.strategies entry point (built in: sma_crossover, zscore)"
        " or a path package.module.Class",
    )
    symbols: tuple[str, ...] = setting((), help="symbols traded")
    params: dict[str, Any] = setting(
        factory=dict, help="parameters, validated by the strategy's param"
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

    heartbeat_interval_s: float = setting(
        1.0, min=0.05, max=3_600.0, help="seconds between heartbeats"
    )
    autostart: bool = setting(True, help="start trading when the engine starts")
    operators: tuple[str, ...] = setting(
        factory=_default_operators,
        help="system actors allowed to command the runner (users: access.users)",
    )
