"""Market-data sources: validation at the edge, file replay, sample data, synthetic and live feeds.

One source per module, re-exported here. Heavy dependencies (pandas, pyarrow, websockets) are
imported inside the functions that need them, so importing this package stays light.

- :class:`MarketDataValidator` -- checks ticks and bars; a bad one becomes ``DataRejected``.
- :func:`iter_bars` / :func:`iter_ticks` -- pure generators over a DataFrame, CSV or Parquet
  file, for backtests; :class:`ReplayFeed` -- the same in a thread, paced by ``speed``.
- :func:`load_sample_bars` -- real daily OHLCV of ``SAMPLE_SYMBOLS`` from bokeh-sampledata.
- :func:`synthetic_ticks` / :class:`SyntheticFeed` -- seeded random-walk ticks.
- :class:`WebSocketFeed` -- JSON ticks from a websocket server, reconnecting with backoff.

Every threaded feed derives from :class:`FeedBase`: ``start/stop/pause/resume``, ``status``,
``last_event_ns``, and it publishes valid events, ``DataRejected`` and ``ErrorRaised``.
"""

from __future__ import annotations

from streams.sources._frames import read_market_file
from streams.sources.feed import (
    CONNECTING,
    FAILED,
    FINISHED,
    PAUSED,
    RECONNECTING,
    RUNNING,
    STOPPED,
    FeedBase,
    parse_speed,
)
from streams.sources.replay import (
    ReplayFeed,
    ReplayTable,
    iter_bars,
    iter_ticks,
    load_replay_table,
)
from streams.sources.sample_data import (
    SAMPLE_SYMBOLS,
    load_sample_bars,
    load_sample_universe,
    sample_data_path,
)
from streams.sources.synthetic import SyntheticFeed, synthetic_ticks
from streams.sources.validation import FieldRejected, MarketDataValidator, reason_code
from streams.sources.websocket_feed import TickMessageMapper, WebSocketFeed, backoff_delay

__all__ = [
    "CONNECTING",
    "FAILED",
    "FINISHED",
    "PAUSED",
    "RECONNECTING",
    "RUNNING",
    "SAMPLE_SYMBOLS",
    "STOPPED",
    "FeedBase",
    "FieldRejected",
    "MarketDataValidator",
    "ReplayFeed",
    "ReplayTable",
    "SyntheticFeed",
    "TickMessageMapper",
    "WebSocketFeed",
    "backoff_delay",
    "iter_bars",
    "iter_ticks",
    "load_replay_table",
    "load_sample_bars",
    "load_sample_universe",
    "parse_speed",
    "read_market_file",
    "reason_code",
    "sample_data_path",
    "synthetic_ticks",
]
