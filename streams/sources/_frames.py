"""Reading market-data tables (DataFrame, CSV, Parquet) into plain per-row values.

pandas is imported inside the functions, so importing :mod:`streams` stays light. Parsing is
column-wise (fast); the per-row loops in :mod:`streams.sources.replay` then only look up
values. A cell that cannot be parsed keeps its raw value so the rejection can name it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.errors import ConfigError
from streams.sources.validation import (
    BAD_TIMESTAMP,
    NOT_A_NUMBER,
    FieldRejected,
    check_symbol_topic,
)

if TYPE_CHECKING:
    import pandas as pd

_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def read_market_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame.

    CSV cells are read as text where they do not parse, so bad values reach validation instead
    of failing the whole file. ConfigError for a missing file or an unknown suffix.
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"market data file {str(file)!r} does not exist")
    name = file.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return pd.read_parquet(file)
    if name.endswith(_CSV_SUFFIXES):
        frame = pd.read_csv(file, skipinitialspace=True)
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        return frame
    raise ConfigError(
        f"market data file {str(file)!r} must end with one of "
        f"{_CSV_SUFFIXES + _PARQUET_SUFFIXES}, got {file.suffix!r}"
    )


def as_frame(data: Any) -> pd.DataFrame:
    """``data`` itself if it is a DataFrame, else the file it names read by ``read_market_file``."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, str | Path):
        return read_market_file(data)
    raise ConfigError(f"market data must be a DataFrame or a file path, got {type(data).__name__}")


@dataclass(frozen=True, slots=True)
class Column:
    """One parsed column: ``values[i]`` is a float (NaN if unparseable), ``raw[i]`` the input."""

    name: str
    values: list[float]
    raw: list[Any]

    def get(self, row: int) -> float:
        """The float at ``row``; FieldRejected naming the raw value if it was not a number."""
        value = self.values[row]
        if math.isnan(value):
            raw = self.raw[row]
            if not _is_missing(raw):
                raise FieldRejected(self.name, raw, NOT_A_NUMBER, f"{self.name} is not a number")
        return value

    def optional(self, row: int) -> float | None:
        """Like :meth:`get`, but a missing cell (empty/NaN) is None."""
        value = self.get(row)
        return None if math.isnan(value) else value


@dataclass(frozen=True, slots=True)
class Timestamps:
    """Parsed timestamps in ns since the epoch (UTC); None where unparseable."""

    values: list[int | None]
    raw: list[Any]

    def get(self, row: int) -> int:
        """The timestamp at ``row``; FieldRejected naming the raw value if it did not parse."""
        value = self.values[row]
        if value is None:
            raise FieldRejected(
                "timestamp", self.raw[row], BAD_TIMESTAMP, "timestamp is missing or unparseable"
            )
        return value


def require_columns(frame: pd.DataFrame, required: Sequence[str], kind: str) -> None:
    """ConfigError naming the missing columns when ``frame`` lacks any of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{kind} data is missing column(s) {missing}; has {[str(c) for c in frame.columns]}"
        )


def numbers(frame: pd.DataFrame, name: str, default: float | None = None) -> Column:
    """Column ``name`` as floats; an absent column is filled with ``default`` (NaN if None)."""
    import pandas as pd

    n = len(frame)
    if name not in frame.columns:
        fill = math.nan if default is None else float(default)
        return Column(name, [fill] * n, [fill] * n)
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    return Column(name, values.tolist(), raw.tolist())


def timestamps(frame: pd.DataFrame) -> Timestamps:
    """The ``timestamp`` column (or a DatetimeIndex) as UTC ns.

    Datetimes without a zone are taken as UTC; integers are ns since the epoch; text is parsed
    as ISO 8601, then any other format pandas recognises.
    """
    import pandas as pd

    if "timestamp" in frame.columns:
        raw = frame["timestamp"]
    elif isinstance(frame.index, pd.DatetimeIndex):
        raw = pd.Series(frame.index)
    else:
        raise ConfigError(
            "market data needs a 'timestamp' column or a DatetimeIndex; "
            f"has columns {[str(c) for c in frame.columns]}"
        )
    raw = raw.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.to_datetime(raw, utc=True)
    elif pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        parsed = pd.to_datetime(raw, unit="ns", utc=True, errors="coerce")
    else:
        text = raw.astype("string")
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna() & text.notna()
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
    ns = parsed.dt.as_unit("ns").dt.tz_localize(None)
    missing = ns.isna().tolist()
    ints = ns.to_numpy(dtype="datetime64[ns]").view("int64").tolist()
    values: list[int | None] = [None if m else int(v) for v, m in zip(ints, missing, strict=True)]
    return Timestamps(values, raw.tolist())


def symbols(frame: pd.DataFrame, default: str | None) -> list[Any]:
    """The ``symbol`` column as a list, or ``default`` for every row when there is none."""
    if "symbol" in frame.columns:
        return frame["symbol"].tolist()
    if default is None:
        raise ConfigError("market data has no 'symbol' column; pass symbol=...")
    try:
        check_symbol_topic(default)
    except FieldRejected as exc:
        raise ConfigError(f"symbol {default!r} is invalid: {exc.detail}") from None
    return [default] * len(frame)


def median_step_ns(values: Sequence[int | None]) -> int | None:
    """The median positive gap between consecutive valid timestamps (None if there is none)."""
    valid = [v for v in values if v is not None]
    gaps = sorted(b - a for a, b in itertools.pairwise(valid) if b > a)
    if not gaps:
        return None
    return gaps[len(gaps) // 2]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
