"""Topic names and wildcard matching."""

from __future__ import annotations

import pytest

from streams import topics
from streams.errors import EventError


def test_builders_normalise_names() -> None:
    assert topics.ticks("AAPL") == "data.ticks.aapl"
    assert topics.fills("SMA Cross") == "fills.sma_cross"
    assert topics.system("runner") == "system.runner"


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("fills.*", "fills.sma", True),
        ("fills.*", "fills", False),
        ("fills.*", "fills.sma.extra", False),
        ("data.ticks.*", "data.ticks.aapl", True),
        ("data.>", "data.ticks.aapl", True),
        ("data.>", "data", False),
        (">", "pnl", True),
        ("*.ticks.*", "data.ticks.msft", True),
        ("pnl", "pnl", True),
        ("pnl", "pnl.x", False),
    ],
)
def test_matches(pattern: str, topic: str, expected: bool) -> None:
    assert topics.matches(pattern, topic) is expected


@pytest.mark.parametrize("bad", ["", "a..b", "a.>.b", "Fills.*", "x' OR 1=1 --"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(EventError):
        topics.validate_pattern(bad)


def test_bad_segment_names_the_value() -> None:
    with pytest.raises(EventError, match="'a/b'"):
        topics.ticks("a/b")
