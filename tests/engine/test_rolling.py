"""RollingWindow: the rolling mean and std are exact functions of the window, with no drift.

The spec (engine/strategies/rolling.py) is checked bit for bit against a fresh computation over
each window, on long random series with near-ties, large offsets and large values followed by
small ones; against pandas' rolling mean and std within pandas' own rounding; and end to end, an
SMA crossover at a near-tie follows the sign of the exact means where a running sum did not.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.strategies import SmaCrossover
from engine.strategies.rolling import RollingWindow
from engine.strategy_host import StrategyHost
from streams.events import BUY, OrderSubmitted
from tests.factories import trading_rig

EPS = sys.float_info.epsilon


# -- references ------------------------------------------------------------------------------------
def fresh_mean(window: Sequence[float]) -> float:
    """The spec's mean, from scratch: ``math.fsum(window) / n``."""
    return math.fsum(window) / len(window)


def fresh_std(window: Sequence[float]) -> float:
    """The spec's std, from scratch: the two-pass population std (0.0 below two values)."""
    n = len(window)
    if n < 2:
        return 0.0
    mean = fresh_mean(window)
    return math.sqrt(math.fsum(d * d for d in (x - mean for x in window)) / n)


def running_sum_means(values: Sequence[float], size: int) -> list[float]:
    """The means a running sum gives (the former implementation): add each value, subtract the
    one leaving the window. Used to show that a series is a trap for drift."""
    window: list[float] = []
    total = 0.0
    means = []
    for value in values:
        window.append(value)
        total += value
        if len(window) > size:
            total -= window.pop(0)
        means.append(total / len(window))
    return means


def windows(values: Sequence[float], size: int) -> list[Sequence[float]]:
    """The window after each push: the last ``size`` values pushed so far."""
    return [values[max(0, i + 1 - size) : i + 1] for i in range(len(values))]


def pushed(values: Sequence[float], size: int) -> tuple[list[float], list[float]]:
    """Mean and std read from one RollingWindow after each push."""
    window = RollingWindow(size)
    means, stds = [], []
    for value in values:
        window.push(value)
        means.append(window.mean)
        stds.append(window.std)
    return means, stds


def bits(values: Sequence[float]) -> list[str]:
    """Exact representations, so equality is bit for bit (-0.0 and NaN included)."""
    return [value.hex() for value in values]


def exact_diffs(values: Sequence[float], fast: int, slow: int) -> list[float]:
    """``fast SMA - slow SMA`` after each push, from the exact means."""
    pairs = zip(windows(values, fast), windows(values, slow), strict=True)
    return [fresh_mean(f) - fresh_mean(s) for f, s in pairs]


def running_sum_diffs(values: Sequence[float], fast: int, slow: int) -> list[float]:
    """``fast SMA - slow SMA`` after each push, from running sums (the former implementation)."""
    pairs = zip(running_sum_means(values, fast), running_sum_means(values, slow), strict=True)
    return [f - s for f, s in pairs]


def crosses_up(diffs: Sequence[float]) -> list[int]:
    """Indices where ``fast - slow`` goes from <= 0 to > 0 (where SmaCrossover buys if flat)."""
    return [i for i in range(1, len(diffs)) if diffs[i - 1] <= 0 < diffs[i]]


# -- series ----------------------------------------------------------------------------------------
@st.composite
def long_series(draw: st.DrawFn) -> list[float]:
    """200-2000 values of one of four shapes around an offset of 1 to 1e9.

    The values come from a ``random.Random`` seeded by hypothesis: a list this long drawn element
    by element would overrun hypothesis' data buffer. The shape, offset, scale and length are
    drawn (and shrunk) by hypothesis.
    """
    kind = draw(st.sampled_from(["walk", "noise", "near_tie", "spikes"]))
    offset = draw(st.sampled_from([1.0, 100.0, 1e6, 1e9]))
    length = draw(st.integers(200, 2000))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    if kind == "walk":  # prices on a 0.0001 tick, as backtests see them
        price, walk = offset, []
        for _ in range(length):
            price = max(price * math.exp(rng.gauss(0.0, 0.001)), 0.0001)
            walk.append(round(price, 4))
        return walk
    if kind == "noise":  # a large offset plus noise far below it: 1e9 + 0.001 and the like
        sigma = draw(st.sampled_from([1e-3, 1.0, 100.0]))
        return [offset + rng.gauss(0.0, sigma) for _ in range(length)]
    if kind == "near_tie":  # a constant plus a few ulps: windows whose means differ by ulps
        base = offset * (1.0 + rng.random())
        spread = draw(st.sampled_from([1, 3, 1000]))
        ulp = math.ulp(base)
        return [base + rng.choice((0, 0, 0, 1, -1, spread, -spread)) * ulp for _ in range(length)]
    # spikes: now and then a value a million times larger, then ordinary ones again
    return [
        offset * 1e6 if rng.random() < 0.02 else offset + rng.gauss(0.0, 1.0) for _ in range(length)
    ]


sizes = st.integers(1, 40)


# -- exact: a fresh computation over the window, bit for bit ---------------------------------------
@settings(max_examples=40, deadline=None)
@given(values=long_series(), size=sizes)
def test_mean_and_std_equal_a_fresh_computation_over_the_window(
    values: list[float], size: int
) -> None:
    # Arrange
    expected = windows(values, size)

    # Act
    means, stds = pushed(values, size)

    # Assert
    assert bits(means) == bits([fresh_mean(w) for w in expected])
    assert bits(stds) == bits([fresh_std(w) for w in expected])


@settings(max_examples=40, deadline=None)
@given(values=long_series(), size=sizes)
def test_mean_and_std_agree_with_pandas_rolling(values: list[float], size: int) -> None:
    # Arrange
    series = pd.Series(np.array(values))
    full = slice(size - 1, None)  # pandas gives NaN until the window is full
    pandas_means = series.rolling(size).mean().to_numpy()[full]
    pandas_stds = series.rolling(size).std(ddof=0).to_numpy()[full]
    # pandas is not exact: it carries running totals across the whole series, so its error is
    # bounded by what it has seen, not by the window. Its mean is a Kahan-compensated running
    # sum, within a few ulps of the largest value summed: 4 * eps * scale (observed <= 1.5).
    # Its variance is Welford's update, carrying the sum of squared deviations from window to
    # window; each add or remove can leave about eps * scale * spread (the running mean rounded
    # at magnitude `scale`, times a deviation of at most `spread`, plus an ulp of `scale` so a
    # flat series is not held to zero), accumulating over the values seen: eps * scale * spread
    # * seen (observed <= 0.02 of that); |sqrt(a) - sqrt(b)| <= sqrt(|a - b|) turns it into the
    # std tolerance. It has to be that wide: at 1e9 + 0.001-noise pandas' own std is off by
    # several times the true one. So the exact comparison above is the one that pins the
    # implementation; this one pins the definition (population std, the window's alignment)
    # to an independent library.
    scale = np.maximum.accumulate(np.abs(series.to_numpy()))  # the largest |x| seen so far
    spread = (series.cummax() - series.cummin()).to_numpy() + np.array([math.ulp(s) for s in scale])
    seen = np.arange(1, len(values) + 1)
    mean_tolerance = (4 * EPS * scale)[full]
    std_tolerance = np.sqrt(EPS * scale * spread * seen)[full]

    # Act
    means, stds = pushed(values, size)

    # Assert
    assert (np.abs(np.array(means)[full] - pandas_means) <= mean_tolerance).all()
    assert (np.abs(np.array(stds)[full] - pandas_stds) <= std_tolerance).all()


@settings(max_examples=40, deadline=None)
@given(values=long_series(), fast=st.integers(1, 15), extra=st.integers(1, 30))
def test_fast_minus_slow_is_the_difference_of_the_exact_means(
    values: list[float], fast: int, extra: int
) -> None:
    # Arrange
    slow = fast + extra
    exact = exact_diffs(values, fast, slow)
    fast_window, slow_window = RollingWindow(fast), RollingWindow(slow)
    diffs = []

    # Act
    for value in values:
        fast_window.push(value)
        slow_window.push(value)
        diffs.append(fast_window.mean - slow_window.mean)

    # Assert
    assert bits(diffs) == bits(exact)
    assert crosses_up(diffs) == crosses_up(exact)


@settings(max_examples=40, deadline=None)
@given(history=long_series(), other=long_series(), size=sizes, data=st.data())
def test_the_same_window_gives_the_same_figures_whatever_came_before(
    history: list[float], other: list[float], size: int, data: st.DataObject
) -> None:
    # Arrange
    last = data.draw(st.lists(st.sampled_from(history + other), min_size=size, max_size=size))
    one, two = RollingWindow(size), RollingWindow(size)

    # Act
    for value in history + last:
        one.push(value)
    for value in other + last:
        two.push(value)

    # Assert
    assert bits([one.mean, one.std]) == bits([two.mean, two.std])


# -- drift -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "values", "expected"),
    [
        # 1e16 + 1.0 rounds back to 1e16, so a running sum loses every 1.0 that came with the
        # large value; subtracting 1e16 leaves 0.0 for the window [1.0, 1.0, 1.0]
        pytest.param(3, [1e16, 1.0, 1.0, 1.0], 1.0, id="a-large-value-then-small-ones"),
        # ordinary prices: the running sum of [100.0, 100.0, 100.0] ends at 300.00000000000006
        pytest.param(3, [100.1, 100.5, 100.2, 100.0, 100.0, 100.0], 100.0, id="prices-then-flat"),
    ],
)
def test_the_mean_does_not_drift_once_values_have_left_the_window(
    size: int, values: list[float], expected: float
) -> None:
    # Arrange
    assert running_sum_means(values, size)[-1] != expected  # the trap: a running sum drifts here
    window = RollingWindow(size)

    # Act
    for value in values:
        window.push(value)

    # Assert
    assert window.mean == fresh_mean(values[-size:]) == expected
    assert window.std == 0.0


# -- the SMA crossover at a near-tie ---------------------------------------------------------------
FAST, SLOW = 2, 3


@pytest.mark.parametrize(
    ("closes", "buys"),
    [
        # flat at 100.0 after moving: the exact means tie (fast - slow == 0.0), no cross; the
        # running sums said fast - slow = +1.4e-14 after -0.067: a cross up, and a buy
        pytest.param([100.1, 100.5, 100.2, 100.0, 100.0, 100.0], False, id="flat-is-a-tie"),
        # a rise of 3 ulps: the exact fast mean is above the slow one (+1.4e-14), a cross up;
        # the running sums said fast - slow = -1.4e-14: no cross, no buy
        pytest.param(
            [100.0, 100.6, 100.1, 100.0, 100.0, 100.0 + 3 * math.ulp(100.0)],
            True,
            id="a-3-ulp-rise-crosses-up",
        ),
    ],
)
def test_sma_crossover_at_a_near_tie_follows_the_sign_of_the_exact_means(
    closes: list[float], buys: bool
) -> None:
    # Arrange
    exact = exact_diffs(closes, FAST, SLOW)[SLOW - 1 :]  # from the bar that fills the slow window
    drifting = running_sum_diffs(closes, FAST, SLOW)[SLOW - 1 :]
    assert crosses_up(exact) == ([len(exact) - 1] if buys else [])  # the exact means decide
    assert crosses_up(drifting) != crosses_up(exact)  # and a running sum decides otherwise
    rig = trading_rig()
    strategy = SmaCrossover(name="sma", symbols=["AAPL"], fast=FAST, slow=SLOW, qty=10)
    host = StrategyHost(rig.core.publish, rig.store, rig.clock, [strategy])
    host.attach(rig.core.bus)
    host.start()

    # Act
    for close in closes:
        rig.bar(open=close, close=close)

    # Assert
    assert [o.side for o in rig.events(OrderSubmitted)] == ([BUY] if buys else [])


# -- edges -----------------------------------------------------------------------------------------
def test_an_empty_window_has_a_nan_mean_and_a_zero_std() -> None:
    # Arrange
    window = RollingWindow(3)

    # Act
    mean, std = window.mean, window.std

    # Assert
    assert math.isnan(mean)
    assert std == 0.0
    assert not window.full


def test_a_partly_filled_window_averages_the_values_so_far() -> None:
    # Arrange
    window = RollingWindow(3)

    # Act
    window.push(2.0)
    one = (window.mean, window.std)
    window.push(4.0)
    two = (window.mean, window.std)

    # Assert
    assert one == (2.0, 0.0)  # fewer than two values: std 0.0
    assert two == (3.0, 1.0)
    assert not window.full


def test_a_push_replaces_the_figures_read_before_it() -> None:
    # Arrange
    window = RollingWindow(2)
    for value in (1.0, 3.0):
        window.push(value)
    before = (window.mean, window.std)

    # Act
    window.push(7.0)

    # Assert
    assert before == (2.0, 1.0)
    assert (window.mean, window.std) == (5.0, 2.0)
    assert window.full


def test_non_finite_values_give_nan_while_in_the_window_and_exact_figures_after() -> None:
    # Arrange
    window = RollingWindow(2)
    seen = []

    # Act
    for value in (1.0, math.inf, -math.inf, 2.0, 3.0):
        window.push(value)
        seen.append(window.mean)

    # Assert
    assert seen[1] == math.inf
    assert math.isnan(seen[2])  # inf - inf: NaN, not an exception from fsum
    assert seen[3] == -math.inf
    assert (seen[4], window.std) == (2.5, 0.5)  # a running sum would stay NaN for good
