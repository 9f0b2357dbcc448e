"""The dashboard's configuration section: push tiers, staleness, paging and caches.

A frozen dataclass like every other section (see :mod:`engine.config`); the kernel's
``SeamlessConfig`` carries it as ``dashboard``. The dashboard reads it from the kernel's config
and falls back to these defaults when the section is missing.
"""

from __future__ import annotations

import dataclasses

from engine.config.schema import meta
from streams.errors import ConfigError

THEMES = ("default", "dark")


@dataclasses.dataclass(frozen=True)
class DashboardConfig:
    """Intervals of the three push tiers and the sizes of what the dashboard keeps."""

    pnl_throttle_s: float = dataclasses.field(
        default=5.0,
        metadata=meta(
            min=0.05, max=600.0, help="throttled tier: P&L indicators at most this often"
        ),
    )
    runner_throttle_s: float = dataclasses.field(
        default=10.0,
        metadata=meta(min=0.05, max=600.0, help="throttled tier: runner status/heartbeat age"),
    )
    market_sample_s: float = dataclasses.field(
        default=1.0,
        metadata=meta(min=0.05, max=600.0, help="throttled tier: market data sampled this often"),
    )
    stale_after_s: float = dataclasses.field(
        default=15.0,
        metadata=meta(min=0.5, max=3_600.0, help="data older than this shows the stale badge"),
    )
    history_page_size: int = dataclasses.field(
        default=50, metadata=meta(min=5, max=5_000, help="rows per page of trade history")
    )
    cache_ttl_s: float = dataclasses.field(
        default=30.0,
        metadata=meta(min=0.0, max=86_400.0, help="lazy tier: history/analytics/backtests TTL"),
    )
    recent_trades_rollover: int = dataclasses.field(
        default=20,
        metadata=meta(
            min=5, max=1_000, help="newest fills in the recent-trades table (all sessions)"
        ),
    )
    chart_points: int = dataclasses.field(
        default=2_000, metadata=meta(min=100, max=1_000_000, help="points kept per streamed chart")
    )
    prefs_dir: str = dataclasses.field(
        default="data/runtime/ui_prefs",
        metadata=meta(help="folder of per-user UI preferences (JSON, never the event log)"),
    )
    default_theme: str = dataclasses.field(
        default="default", metadata=meta(choices=THEMES, help="theme for a new user")
    )
    panels: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=meta(help="extra tabs: installed seamless.panels entry points, in this order"),
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
