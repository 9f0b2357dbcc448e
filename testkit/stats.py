"""The percentile every benchmark reports, so that p50/p95/p99 mean the same on every page."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``: the sorted value at index
    ``round(q / 100 * (n - 1))``, so p50 of an odd count is the median and p100 the maximum.
    NaN for no values (a run that measured nothing says so instead of failing)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q!r}: expected a value from 0 to 100")
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
