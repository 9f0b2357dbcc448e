"""Real daily prices out of the box, from the ``bokeh-sampledata`` package (no download).

``bokeh-sampledata`` ships ``_data/stocks.csv.gz``: unadjusted daily OHLCV from the public-domain
Quandl WIKI prices, March 2000 to March 2013 (GOOG from its 2004 listing). The file is read
directly instead of through ``bokeh.sampledata.stocks`` so that Bokeh itself is not imported.
Timestamps are the trading date at 00:00 UTC. Prices are unadjusted, so splits show as jumps
(AAPL 2:1 in February 2005).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from streams.errors import ConfigError
from streams.events import DataRejected
from streams.sources.replay import iter_bars
from streams.sources.validation import MarketDataValidator

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Symbols with daily bars in the bundled sample (the file also holds FB for 2012-2013 only).
SAMPLE_SYMBOLS: tuple[str, ...] = ("AAPL", "GOOG", "IBM", "MSFT")
SAMPLE_SOURCE = "sample"
BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_FILE = "stocks.csv.gz"


def sample_data_path() -> Path:
    """Where the installed ``bokeh-sampledata`` keeps the stock prices; ConfigError if absent."""
    try:
        import bokeh_sampledata
    except ImportError:
        raise ConfigError(
            "sample data needs the 'bokeh-sampledata' package: pip install bokeh-sampledata"
        ) from None
    path = Path(bokeh_sampledata.__file__).parent / "_data" / _FILE
    if not path.is_file():
        raise ConfigError(f"bokeh-sampledata has no bundled {_FILE} at {str(path)!r}")
    return path


@functools.lru_cache(maxsize=1)
def _all_bars() -> pd.DataFrame:
    import pandas as pd

    raw = pd.read_csv(sample_data_path())
    raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
    frame = pd.DataFrame(
        {
            "symbol": raw["ticker"].astype(str),
            "timestamp": pd.to_datetime(raw["date"], utc=True).dt.as_unit("ns"),
            "open": raw["open"].astype(float),
            "high": raw["high"].astype(float),
            "low": raw["low"].astype(float),
            "close": raw["close"].astype(float),
            "volume": raw["volume"].astype(float),
        }
    )
    return frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


def load_sample_bars(
    symbol: str, *, on_reject: Callable[[DataRejected], None] | None = None
) -> pd.DataFrame:
    """Daily bars of ``symbol`` (one of ``SAMPLE_SYMBOLS``), validated, sorted by time.

    Columns: ``timestamp`` (UTC), ``open``, ``high``, ``low``, ``close``, ``volume``. Rows that
    fail validation are dropped, logged, passed to ``on_reject`` and counted in
    ``frame.attrs["rejected"]``. ConfigError for an unknown symbol.
    """
    wanted = symbol.upper()
    if wanted not in SAMPLE_SYMBOLS:
        raise ConfigError(f"sample symbol must be one of {list(SAMPLE_SYMBOLS)}, got {symbol!r}")
    every = _all_bars()
    frame = every[every["symbol"] == wanted].loc[:, list(BAR_COLUMNS)]
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    validator = MarketDataValidator([wanted], SAMPLE_SOURCE)
    keep: list[bool] = []
    for event in iter_bars(frame, wanted, source=SAMPLE_SOURCE, validator=validator):
        ok = not isinstance(event, DataRejected)
        keep.append(ok)
        if isinstance(event, DataRejected):
            log.warning(
                "sample %s: dropped bar: %s=%s (%s)", wanted, event.field, event.value, event.reason
            )
            if on_reject is not None:
                on_reject(event)
    frame = frame[keep].reset_index(drop=True)
    frame.attrs["symbol"] = wanted
    frame.attrs["rejected"] = validator.rejected_total
    return frame


def load_sample_universe(symbols: Iterable[str] = SAMPLE_SYMBOLS) -> pd.DataFrame:
    """Bars of several sample symbols in one frame with a ``symbol`` column, in time order.

    Ready for ``ReplayFeed(..., kind="bars")``: rows sorted by timestamp, then symbol.
    """
    import pandas as pd

    frames = []
    for symbol in symbols:
        frame = load_sample_bars(symbol)
        frame.insert(1, "symbol", symbol.upper())
        frames.append(frame)
    if not frames:
        raise ConfigError("load_sample_universe needs at least one symbol")
    merged = pd.concat(frames, ignore_index=True)
    return merged.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
