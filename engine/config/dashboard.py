"""The dashboard's sections: what it shows (``dashboard``) and who may use it (``access``).

:class:`DashboardConfig` sets the push tiers, staleness, paging, caches, themes and plugin tabs;
the dashboard reads it from the kernel's config and falls back to these defaults when the
section is missing. :class:`AccessConfig` names users (:class:`UserConfig`: a role and a salted
password hash, never the password), API tokens (:class:`ApiTokenConfig`, keyed by the token's
SHA-256 digest) and an optional ``users_file`` (:class:`UsersFile`). Validation needs the roles
and the stored hash formats (:func:`parse_password_hash`); hashing, verifying and authorizing
live in :mod:`engine.access`.
"""

from __future__ import annotations

import base64
import dataclasses

from engine.config.schema import setting
from streams.errors import ConfigError

OPERATOR = "operator"
VIEWER = "viewer"
ROLES = (OPERATOR, VIEWER)
COOKIE_SECRET_ENV = "SEAMLESS_COOKIE_SECRET"
THEMES = ("default", "dark")


def parse_password_hash(value: str) -> tuple[str, tuple[int, ...], bytes, bytes]:
    """``(method, parameters, salt, digest)`` of a stored password hash; ValueError if malformed."""
    parts = value.split("$") if isinstance(value, str) else []
    try:
        if parts and parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 32 or not 1 <= p <= 16:
                raise ValueError("scrypt parameters out of range")
            return "scrypt", (n, r, p), base64.b64decode(parts[4]), base64.b64decode(parts[5])
        if parts and parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if not 1_000 <= iterations <= 10_000_000:
                raise ValueError("pbkdf2 iterations out of range")
            return "pbkdf2", (iterations,), base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed hash: {exc}") from None
    raise ValueError("expected 'scrypt$N$r$p$salt$hash' or 'pbkdf2_sha256$iterations$salt$hash'")


def _check_password_hash(value: str) -> None:
    try:
        parse_password_hash(value)
    except ValueError as exc:
        raise ValueError(f"password_hash {value[:16]!r}...: {exc}") from None


@dataclasses.dataclass(frozen=True)
class UserConfig:
    """One dashboard user: a role and a salted password hash (never the password)."""

    role: str = setting(VIEWER, choices=ROLES, help="operator may use Controls")
    password_hash: str = setting("", help="from `seamless hash-password` (scrypt$... or pbkdf2)")

    def __post_init__(self) -> None:
        _check_password_hash(self.password_hash)


@dataclasses.dataclass(frozen=True)
class ApiTokenConfig:
    """Who an API bearer token acts as (the token itself is stored only as its hash)."""

    user: str = setting("api", help="actor name for audits")
    role: str = setting(VIEWER, choices=ROLES, help="its role")


@dataclasses.dataclass(frozen=True)
class UsersFile:
    """The layout of ``access.users_file`` (YAML or JSON)."""

    users: dict[str, UserConfig] = dataclasses.field(default_factory=dict)
    api_tokens: dict[str, ApiTokenConfig] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AccessConfig:
    """Authentication and authorization of the dashboard and its HTTP API."""

    dev_mode: bool = setting(
        True, help="INSECURE local default: built-in users, public cookie secret"
    )
    users_file: str = setting("", help="YAML/JSON file with more users and api_tokens")
    users: dict[str, UserConfig] = setting(factory=dict, help="name -> {role, password_hash}")
    cookie_secret: str = setting("", help=f"signs session cookies (env {COOKIE_SECRET_ENV} wins)")
    session_expiry_days: float = setting(1.0, min=0.01, max=365.0, help="login lifetime")
    login_failure_delay_s: float = setting(
        0.5, min=0.0, max=10.0, help="pause after a failed login"
    )
    api_tokens: dict[str, ApiTokenConfig] = setting(
        factory=dict, help="'sha256:<hex>' (from hash_token) -> {user, role}"
    )
    allowed_websocket_origins: tuple[str, ...] = setting(
        (), help="extra host:port origins (default: the served one)"
    )
    system_actors: tuple[str, ...] = setting(
        ("engine", "kernel", "risk", "cli"), help="non-user actors allowed to issue commands"
    )
    sse_heartbeat_s: float = setting(
        15.0, min=0.1, max=300.0, help="SSE keep-alive comment interval"
    )
    sse_queue_size: int = setting(
        10_000, min=10, max=1_000_000, help="events buffered per SSE client"
    )
    sse_flush_interval_s: float = setting(
        0.02,
        min=0.0,
        max=1.0,
        help="an SSE client is written to at most this often (events in between go"
        " together: one socket write instead of one per event; 0 = every event at once)",
    )


@dataclasses.dataclass(frozen=True)
class DashboardConfig:
    """Intervals of the three push tiers and the sizes of what the dashboard keeps."""

    pnl_throttle_s: float = setting(
        5.0, min=0.05, max=600.0, help="throttled tier: P&L indicators at most this often"
    )
    runner_throttle_s: float = setting(
        10.0, min=0.05, max=600.0, help="throttled tier: runner status/heartbeat age"
    )
    market_sample_s: float = setting(
        1.0, min=0.05, max=600.0, help="throttled tier: market data sampled this often"
    )
    stale_after_s: float = setting(
        15.0, min=0.5, max=3_600.0, help="data older than this shows the stale badge"
    )
    history_page_size: int = setting(50, min=5, max=5_000, help="rows per page of trade history")
    cache_ttl_s: float = setting(
        30.0, min=0.0, max=86_400.0, help="lazy tier: history/analytics/backtests TTL"
    )
    recent_trades_rollover: int = setting(
        20, min=5, max=1_000, help="newest fills in the recent-trades table (all sessions)"
    )
    chart_points: int = setting(
        2_000, min=100, max=1_000_000, help="points kept per streamed chart"
    )
    prefs_dir: str = setting(
        "data/runtime/ui_prefs",
        help="folder of per-user UI preferences (JSON, never the event log)",
    )
    default_theme: str = setting("default", choices=THEMES, help="theme for a new user")
    panels: tuple[str, ...] = setting(
        (), help="extra tabs: installed seamless.panels entry points, in this order"
    )

    def __post_init__(self) -> None:
        from engine import plugins

        installed = plugins.names(plugins.PANELS)
        for i, name in enumerate(self.panels):
            if name not in installed:
                raise ConfigError(
                    f"dashboard.panels[{i}]: expected an installed panel"
                    f" ({', '.join(installed) or 'none installed'}), got {name!r}"
                )
