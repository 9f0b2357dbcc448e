"""Rolling mean and standard deviation over a fixed window, for strategies, without drift.

The no-drift rule: every figure a window reports is computed afresh from the values now in the
window, never carried in a running total from push to push. A running sum (add the new value,
subtract the one leaving) keeps the rounding error of every addition it ever made: once a large
value has passed through, the sum of the small ones that follow is off in its last bits for
good. At a near-tie that flips the sign of ``fast SMA - slow SMA``, and the engine's crossovers
diverged from backtrader's, which computes an SMA as ``math.fsum(last n values) / n``. Here:

* ``mean`` is ``math.fsum(window) / n``, bit for bit (NaN when the window is empty);
* ``std`` is the population standard deviation by a fixed two-pass formula:
  ``sqrt(math.fsum(d * d for d in deviations) / n)`` with ``d = x - mean`` (0.0 for fewer
  than two values).

Both are functions of the window's contents alone, so the same last ``size`` prices give the
same figures whatever came before them. Each is computed on first read after a ``push`` and
cached until the next one: the SMA crossover reads ``mean`` once per price, the z-score strategy
``mean`` and ``std``, so a price costs one ``fsum`` of ``size`` values per figure read.
"""

from __future__ import annotations

import math
from collections import deque

_fsum = math.fsum
_sqrt = math.sqrt


class RollingWindow:
    """Mean and population standard deviation of the last ``size`` values pushed.

    Computed from the window's values on demand (see the module docstring), not from running
    sums, so they never drift: ``mean == math.fsum(window) / len(window)`` exactly, after any
    history. A non-finite value makes the figures NaN or infinite while it is in the window
    (never an exception); they are exact again once it has left.
    """

    __slots__ = ("_mean", "_std", "_values", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._values: deque[float] = deque(maxlen=size)
        self._mean: float | None = None  # None: not computed since the last push
        self._std: float | None = None

    def push(self, value: float) -> None:
        """Add a value, dropping the oldest once the window is full."""
        self._values.append(value)  # maxlen drops the oldest
        self._mean = None
        self._std = None

    @property
    def full(self) -> bool:
        """True once ``size`` values have been pushed."""
        return len(self._values) == self.size

    @property
    def mean(self) -> float:
        """``math.fsum(window) / n``: the mean of the values in the window (NaN when empty)."""
        mean = self._mean
        if mean is None:
            values = self._values
            if not values:
                mean = math.nan
            else:
                try:
                    total = _fsum(values)
                except (OverflowError, ValueError):  # a sum past the float range, or inf - inf
                    total = sum(values)  # inf or NaN, as plain float arithmetic gives
                mean = total / len(values)
            self._mean = mean
        return mean

    @property
    def std(self) -> float:
        """Population standard deviation by the two-pass formula (0.0 for fewer than two
        values): ``sqrt(math.fsum(d * d for d in deviations) / n)``, ``d = x - mean``."""
        std = self._std
        if std is None:
            values = self._values
            n = len(values)
            if n < 2:
                std = 0.0
            else:
                mean = self.mean
                try:
                    std = _sqrt(_fsum([d * d for d in [x - mean for x in values]]) / n)
                except OverflowError:  # a squared deviation past the float range
                    std = math.inf
            self._std = std
        return std
