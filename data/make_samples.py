"""Write the synthetic one-minute sample bars shipped in ``data/`` (see data/README.md).

    python data/make_samples.py              # rewrite the files next to this script
    python data/make_samples.py --out DIR    # write them into DIR instead

The bars are SYNTHETIC: a seeded random walk, not recorded market prices. Every US trading
minute (09:30-16:00 America/New_York, Monday to Friday) of one week gets an OHLCV bar for AAPL
and MSFT. Each minute is six 10-second steps of a correlated log-normal walk (a shared market
factor plus a per-symbol one), with the U-shaped intraday volatility and volume of real equity
sessions and an overnight gap between days. Prices are rounded to cents, volumes to shares.

Randomness comes only from ``random.Random(SEED).random()``, whose sequence Python keeps
stable across versions, so the same seed gives the same bars. The files are written with
pyarrow (no pandas metadata), so with the same pyarrow version they are identical byte for
byte; ``tests/test_data.py`` checks that.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import random
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240304
#: Trading days: Monday 4 to Friday 8 March 2024 (weekdays only, no US market holiday).
FIRST_DAY = dt.date(2024, 3, 4)
LAST_DAY = dt.date(2024, 3, 8)
MARKET_TZ = ZoneInfo("America/New_York")
SESSION_OPEN = dt.time(9, 30)
MINUTES_PER_SESSION = 390  # 09:30 to 16:00; a bar is stamped with the start of its minute
STEPS_PER_MINUTE = 6
#: symbol -> (first open, annualised volatility, average daily volume in shares), close to
#: the real early-March-2024 levels; the path after the first open is random.
SYMBOLS: dict[str, tuple[float, float, float]] = {
    "AAPL": (179.50, 0.24, 55_000_000.0),
    "MSFT": (415.50, 0.20, 21_000_000.0),
}
MARKET_CORRELATION = 0.6  # loading on the shared market factor (AAPL-MSFT correlation ~0.36)
OVERNIGHT_GAP_VOL = 0.008  # standard deviation of the close-to-open log return

SINGLE_FILE = "aapl_1min_synthetic.parquet"  # AAPL only, no symbol column
MULTI_FILE = "aapl_msft_1min_synthetic.parquet"  # both symbols, with a symbol column
FILES = (SINGLE_FILE, MULTI_FILE)

_NS_PER_S = 1_000_000_000
_PRICES = ("open", "high", "low", "close")


def trading_days(first: dt.date = FIRST_DAY, last: dt.date = LAST_DAY) -> list[dt.date]:
    """The weekdays from ``first`` to ``last``, both included."""
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def session_open_ns(day: dt.date) -> int:
    """09:30 New York time on ``day`` in ns since the epoch (UTC), daylight saving included."""
    local = dt.datetime.combine(day, SESSION_OPEN, tzinfo=MARKET_TZ)
    return int(local.timestamp()) * _NS_PER_S


class _Normals:
    """Standard normal draws by Box-Muller from ``random.Random.random`` (a stable sequence)."""

    def __init__(self, seed: int) -> None:
        self._uniform = random.Random(seed).random
        self._spare: float | None = None

    def __call__(self) -> float:
        if self._spare is not None:
            value, self._spare = self._spare, None
            return value
        radius = math.sqrt(-2.0 * math.log(1.0 - self._uniform()))
        angle = 2.0 * math.pi * self._uniform()
        self._spare = radius * math.sin(angle)
        return radius * math.cos(angle)


def _intraday_shape(minute: int, open_weight: float, close_weight: float) -> float:
    """High after the open, low at midday, rising into the close (minute 0..389)."""
    to_close = MINUTES_PER_SESSION - 1 - minute
    return 1.0 + open_weight * math.exp(-minute / 25.0) + close_weight * math.exp(-to_close / 20.0)


def _normalised(weights: Sequence[float]) -> list[float]:
    mean = sum(weights) / len(weights)
    return [w / mean for w in weights]


_VOL_SHAPE = _normalised([_intraday_shape(m, 1.5, 0.6) for m in range(MINUTES_PER_SESSION)])
_VOLUME_SHAPE = _normalised([_intraday_shape(m, 3.0, 2.0) for m in range(MINUTES_PER_SESSION)])


@dataclasses.dataclass
class Bars:
    """One symbol's bars, column by column; ``timestamp`` in ns since the epoch (UTC)."""

    timestamp: list[int] = dataclasses.field(default_factory=list)
    open: list[float] = dataclasses.field(default_factory=list)
    high: list[float] = dataclasses.field(default_factory=list)
    low: list[float] = dataclasses.field(default_factory=list)
    close: list[float] = dataclasses.field(default_factory=list)
    volume: list[int] = dataclasses.field(default_factory=list)


def generate(seed: int = SEED) -> dict[str, Bars]:
    """The bars of every symbol in ``SYMBOLS``, in time order."""
    normal = _Normals(seed)
    names = list(SYMBOLS)
    price = {s: SYMBOLS[s][0] for s in names}
    step_sigma = {
        s: SYMBOLS[s][1] / math.sqrt(252 * MINUTES_PER_SESSION * STEPS_PER_MINUTE) for s in names
    }
    idio = math.sqrt(1.0 - MARKET_CORRELATION**2)
    bars = {s: Bars() for s in names}
    for number, day in enumerate(trading_days()):
        start_ns = session_open_ns(day)
        day_volume = {s: math.exp(0.15 * normal()) for s in names}
        if number > 0:
            market_gap = normal()
            for s in names:
                gap = MARKET_CORRELATION * market_gap + idio * normal()
                price[s] *= math.exp(OVERNIGHT_GAP_VOL * gap)
        for minute in range(MINUTES_PER_SESSION):
            scale = math.sqrt(_VOL_SHAPE[minute])
            paths = {s: [price[s]] for s in names}
            for _ in range(STEPS_PER_MINUTE):
                market = normal()
                for s in names:
                    shock = MARKET_CORRELATION * market + idio * normal()
                    price[s] *= math.exp(step_sigma[s] * scale * shock)
                    paths[s].append(price[s])
            for s in names:
                path = paths[s]
                first, last = path[0], path[-1]
                move = abs(math.log(last / first)) / (step_sigma[s] * scale)
                expected = SYMBOLS[s][2] / MINUTES_PER_SESSION * _VOLUME_SHAPE[minute]
                noise = math.exp(0.35 * normal() - 0.35**2 / 2)
                volume = expected * day_volume[s] * noise * (0.7 + 0.3 * move / 2.0)
                out = bars[s]
                out.timestamp.append(start_ns + minute * 60 * _NS_PER_S)
                out.open.append(round(first, 2))
                out.high.append(round(max(path), 2))
                out.low.append(round(min(path), 2))
                out.close.append(round(last, 2))
                out.volume.append(max(1, round(volume)))
    return bars


def _table(bars: Bars, symbol: list[str] | None = None) -> pa.Table:
    arrays: dict[str, pa.Array] = {
        "timestamp": pa.array(bars.timestamp, type=pa.timestamp("ns", tz="UTC"))
    }
    if symbol is not None:
        arrays["symbol"] = pa.array(symbol, type=pa.string())
    for name in _PRICES:
        arrays[name] = pa.array(getattr(bars, name), type=pa.float64())
    arrays["volume"] = pa.array(bars.volume, type=pa.int64())
    table = pa.table(arrays)
    note = (
        f"SYNTHETIC one-minute bars (seeded random walk, seed {SEED}), not market data; "
        "made by data/make_samples.py"
    )
    return table.replace_schema_metadata({"seamless.source": note})


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", compression_level=9)


def write_samples(out_dir: str | Path, seed: int = SEED) -> list[Path]:
    """Write ``FILES`` into ``out_dir`` (created if needed); the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bars = generate(seed)
    single = out / SINGLE_FILE
    _write(_table(bars["AAPL"]), single)
    # Both symbols in one table, in time order and by symbol within a minute.
    rows = sorted((ts, s, i) for s, b in bars.items() for i, ts in enumerate(b.timestamp))
    merged = Bars(
        **{
            f.name: [getattr(bars[s], f.name)[i] for _, s, i in rows]
            for f in dataclasses.fields(Bars)
        }
    )
    multi = out / MULTI_FILE
    _write(_table(merged, [s for _, s, _ in rows]), multi)
    return [single, multi]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent),
        help="folder to write into (default: the data/ folder of this script)",
    )
    args = parser.parse_args(argv)
    for path in write_samples(args.out):
        print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
