"""Loading the configuration: the whole tree, parsing with validation, environment overrides.

:func:`load_config` reads a YAML file (or nothing: the embedded defaults), validates every key
(:func:`~engine.config.schema.build`), applies the environment overrides ``SEAMLESS_DB_PATH``,
``SEAMLESS_PG_DSN``, ``SEAMLESS_NATS_URL`` and ``SEAMLESS_LOG_LEVEL``, and returns one frozen
:class:`SeamlessConfig` that the kernel hands to components. Nothing else reads config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine.config.dashboard import AccessConfig, DashboardConfig
from engine.config.notify import NotifyConfig
from engine.config.schema import build, setting, to_dict
from engine.config.sections import (
    LOG_LEVELS,
    BusConfig,
    ClusterConfig,
    EngineConfig,
    FeedConfig,
    RunnerConfig,
    StateConfig,
    StorageConfig,
    StrategyConfig,
)
from engine.config.trading import BrokerConfig, PnlConfig, RiskConfig
from streams.errors import ConfigError

#: The repository's ``config/config.yaml`` (engine/config/loading.py -> the repository root).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def _default_strategies() -> tuple[StrategyConfig, ...]:
    return (
        StrategyConfig(
            name="sma_aapl",
            strategy="sma_crossover",
            symbols=("AAPL",),
            params={"fast": 10, "slow": 30, "qty": 100.0},
        ),
    )


@dataclasses.dataclass(frozen=True)
class SeamlessConfig:
    """The whole configuration, one section per component."""

    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    bus: BusConfig = dataclasses.field(default_factory=BusConfig)
    state: StateConfig = dataclasses.field(default_factory=StateConfig)
    feed: FeedConfig = dataclasses.field(default_factory=FeedConfig)
    strategies: tuple[StrategyConfig, ...] = setting(
        factory=_default_strategies,
        help="Strategies: name, strategy (an installed entry-point name or a dotted path), "
        "symbols, params.",
    )
    broker: BrokerConfig = dataclasses.field(default_factory=BrokerConfig)
    risk: RiskConfig = dataclasses.field(default_factory=RiskConfig)
    pnl: PnlConfig = dataclasses.field(default_factory=PnlConfig)
    runner: RunnerConfig = dataclasses.field(default_factory=RunnerConfig)
    dashboard: DashboardConfig = dataclasses.field(default_factory=DashboardConfig)
    access: AccessConfig = dataclasses.field(default_factory=AccessConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    notify: NotifyConfig = dataclasses.field(default_factory=NotifyConfig)

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-ready form of this configuration."""
        result: dict[str, Any] = to_dict(self)
        return result

    def config_hash(self) -> str:
        """A short stable hash of the effective configuration, recorded with every run."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_config(
    data: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
) -> SeamlessConfig:
    """Validate an already-parsed mapping and apply environment overrides."""
    config = build(SeamlessConfig, data or {})
    env = os.environ if env is None else env
    if env.get("SEAMLESS_DB_PATH"):
        config = dataclasses.replace(
            config, storage=dataclasses.replace(config.storage, db_path=env["SEAMLESS_DB_PATH"])
        )
    if env.get("SEAMLESS_PG_DSN"):
        config = dataclasses.replace(
            config,
            storage=dataclasses.replace(config.storage, postgres_dsn=env["SEAMLESS_PG_DSN"]),
        )
    if env.get("SEAMLESS_NATS_URL"):
        config = dataclasses.replace(
            config, bus=dataclasses.replace(config.bus, nats_url=env["SEAMLESS_NATS_URL"])
        )
    if config.storage.backend == "postgres" and not config.storage.postgres_dsn:
        raise ConfigError(
            "storage.postgres_dsn: required when storage.backend is 'postgres' "
            "(or set SEAMLESS_PG_DSN), got ''"
        )
    if env.get("SEAMLESS_LOG_LEVEL"):
        level = env["SEAMLESS_LOG_LEVEL"].upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"SEAMLESS_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {level!r}"
            )
        config = dataclasses.replace(
            config, engine=dataclasses.replace(config.engine, log_level=level)
        )
    return config


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> SeamlessConfig:
    """Load and validate a YAML config file; ``None`` means the embedded defaults.

    Raises ConfigError naming the file, the key path and the bad value.
    """
    if path is None:
        return parse_config({}, env)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{file}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return parse_config(data, env)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
