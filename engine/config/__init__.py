"""The engine's configuration: every section's dataclass, the schema and the docs generator.

One frozen dataclass per section, each field carrying its range, choices and help
(:func:`setting`); :class:`SeamlessConfig` holds one of each and is the only thing the kernel hands
to components. Nothing else reads config.

* :mod:`engine.config.schema` - :func:`build` (validate a parsed mapping against a dataclass
  tree, naming the key path), :func:`setting` and :func:`to_dict`;
* :mod:`engine.config.sections` - ``engine``, ``storage``, ``bus``, ``state``, ``feed``,
  ``strategies``, ``runner`` and ``cluster`` (scale-out nodes);
* :mod:`engine.config.trading` - ``broker``, ``risk`` and ``pnl``;
* :mod:`engine.config.dashboard` - ``dashboard`` and ``access`` (users, roles, API tokens; the
  logic using them is :mod:`engine.access`);
* :mod:`engine.config.notify` - ``notify`` (webhooks, Telegram; delivery: :mod:`engine.notify`);
* :mod:`engine.config.loading` - :class:`SeamlessConfig`, :func:`parse_config` and
  :func:`load_config` with the environment overrides, :data:`DEFAULT_CONFIG_PATH`;
* :mod:`engine.config.docs` - describes every key and generates ``docs/configuration.md`` and
  ``config/config.yaml`` (``python -m engine.config.docs [--yaml]``); not imported here.

Import the names below from :mod:`engine.config`, not from its modules.
"""

from __future__ import annotations

from engine.config.dashboard import (
    COOKIE_SECRET_ENV,
    OPERATOR,
    ROLES,
    THEMES,
    VIEWER,
    AccessConfig,
    ApiTokenConfig,
    DashboardConfig,
    UserConfig,
    UsersFile,
    parse_password_hash,
)
from engine.config.loading import DEFAULT_CONFIG_PATH, SeamlessConfig, load_config, parse_config
from engine.config.notify import ChannelConfig, NotifyConfig, TelegramConfig, WebhookConfig
from engine.config.schema import build, setting, to_dict
from engine.config.sections import (
    FEED_KINDS,
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
from engine.config.trading import BREACH_ACTIONS, BrokerConfig, PnlConfig, RiskConfig, parse_hhmm

__all__ = [
    "BREACH_ACTIONS",
    "COOKIE_SECRET_ENV",
    "DEFAULT_CONFIG_PATH",
    "FEED_KINDS",
    "LOG_LEVELS",
    "OPERATOR",
    "ROLES",
    "THEMES",
    "VIEWER",
    "AccessConfig",
    "ApiTokenConfig",
    "BrokerConfig",
    "BusConfig",
    "ChannelConfig",
    "ClusterConfig",
    "DashboardConfig",
    "EngineConfig",
    "FeedConfig",
    "NotifyConfig",
    "PnlConfig",
    "RiskConfig",
    "RunnerConfig",
    "SeamlessConfig",
    "StateConfig",
    "StorageConfig",
    "StrategyConfig",
    "TelegramConfig",
    "UserConfig",
    "UsersFile",
    "WebhookConfig",
    "build",
    "load_config",
    "parse_config",
    "parse_hhmm",
    "parse_password_hash",
    "setting",
    "to_dict",
]
