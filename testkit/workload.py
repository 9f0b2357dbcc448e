"""Synthetic data the benchmarks and tests load the engine with: numbered fills and ticks for an
event log, and a seeded random walk of minute bars for backtests.

Numbered, so that a run is the same every time and an event can be told by its number; the
fields not given are the ones every caller used (one unit of AAPL, a price that moves with the
number), so a caller states only what matters to it.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from streams.events import TickReceived, TradeExecuted

if TYPE_CHECKING:
    import pandas as pd

#: A fixed epoch (ns, November 2023) that numbered events count their ``ts_event`` from.
T0 = 1_700_000_000_000_000_000


def numbered_fill(i: int, *, strategy: str = "bench", **fields: Any) -> TradeExecuted:
    """Fill number ``i``: ``f{i}`` of order ``o{i}``, one AAPL bought (odd ``i``) or sold (even)
    at ``100 + i % 7``, at ``T0 + i`` ns; ``fields`` override or add any field (``event_id``...)."""
    values: dict[str, Any] = {
        "fill_id": f"f{i}",
        "order_id": f"o{i}",
        "symbol": "AAPL",
        "side": "buy" if i % 2 else "sell",
        "qty": 1.0,
        "price": 100.0 + i % 7,
        "ts_event": T0 + i,
    }
    return TradeExecuted(strategy=strategy, **(values | fields))


def numbered_tick(i: int) -> TickReceived:
    """Quote number ``i``: AAPL (odd ``i``) or MSFT (even) at ``T0 + i`` microseconds, the bid
    and ask climbing a cent per number and starting over every 100."""
    return TickReceived(
        symbol="AAPL" if i % 2 else "MSFT",
        bid=100.0 + (i % 100) * 0.01,
        ask=100.02 + (i % 100) * 0.01,
        size=1.0,
        ts_event=T0 + i * 1000,
    )


def make_bars(n: int, seed: int = 42, start_price: float = 100.0) -> pd.DataFrame:
    """A seeded random walk of ``n`` one-minute bars from 2024-01-02 09:30 UTC, with consistent
    OHLC and volume."""
    import pandas as pd  # only the backtest benches need it

    rng = random.Random(seed)
    gauss, uniform = rng.gauss, rng.uniform
    opens, highs, lows, closes, volumes = [], [], [], [], []
    price = start_price
    vol = 0.0008  # per-minute volatility
    for _ in range(n):
        open_ = price * math.exp(gauss(0.0, vol * 0.2))  # small gap from the previous close
        close = open_ * math.exp(gauss(0.0, vol))
        high = max(open_, close) * (1.0 + abs(gauss(0.0, vol * 0.5)))
        low = min(open_, close) * (1.0 - abs(gauss(0.0, vol * 0.5)))
        opens.append(round(open_, 4))
        highs.append(round(high, 4))
        lows.append(round(low, 4))
        closes.append(round(close, 4))
        volumes.append(float(int(uniform(100, 5_000))))
        price = close
    # round() can break the OHLC order by a hair: repair it
    highs = [max(h, o, c) for h, o, c in zip(highs, opens, closes, strict=True)]
    lows = [min(lo, o, c) for lo, o, c in zip(lows, opens, closes, strict=True)]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(
                pd.Timestamp("2024-01-02 09:30", tz="UTC"), periods=n, freq="1min"
            ),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": volumes,
        }
    )
