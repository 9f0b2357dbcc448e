"""Fixtures for the persistence tests: a fresh DuckDB event log in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import EventLog


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.duckdb"


@pytest.fixture
def event_log(db_path: Path) -> Iterator[EventLog]:
    with EventLog(db_path) as log:
        yield log
