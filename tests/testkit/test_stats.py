"""testkit/stats.py: the one percentile every benchmark reports."""

from __future__ import annotations

import math

import pytest

from testkit.stats import percentile


def test_nearest_rank_of_the_sorted_values() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]  # unsorted on purpose

    assert percentile(values, 50) == 3.0  # the median of an odd count
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 75) == 4.0  # index round(0.75 * 4) = 3
    assert percentile(range(1, 101), 99) == 99  # index round(0.99 * 99) = 98


def test_no_values_gives_nan() -> None:
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("q", [-1, 100.5, 150])
def test_q_outside_0_to_100_is_refused_naming_it(q: float) -> None:
    with pytest.raises(ValueError, match=rf"q={q!r}"):
        percentile([1.0], q)
