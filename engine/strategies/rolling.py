"""O(1) rolling mean and standard deviation over a fixed window, for strategies."""

from __future__ import annotations

import math
from collections import deque


class RollingWindow:
    """Mean and population standard deviation of the last ``size`` values, updated in O(1)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._values: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0

    def push(self, value: float) -> None:
        """Add a value, dropping the oldest once the window is full."""
        self._values.append(value)
        self._sum += value
        self._sum_sq += value * value
        if len(self._values) > self.size:
            old = self._values.popleft()
            self._sum -= old
            self._sum_sq -= old * old

    @property
    def full(self) -> bool:
        """True once ``size`` values have been pushed."""
        return len(self._values) == self.size

    @property
    def mean(self) -> float:
        """Mean of the values in the window (NaN when empty)."""
        return self._sum / len(self._values) if self._values else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of the window (0 when fewer than two values)."""
        n = len(self._values)
        if n < 2:
            return 0.0
        var = self._sum_sq / n - (self._sum / n) ** 2
        return math.sqrt(var) if var > 0 else 0.0
