"""Fixtures for the persistence tests: a fresh DuckDB event log in a temporary folder; the
contract's deselection of tests needing a capability a backend declares off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import EventLog
from tests.persistence.contract import JournalContract


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.duckdb"


@pytest.fixture
def event_log(db_path: Path) -> Iterator[EventLog]:
    with EventLog(db_path) as log:
        yield log


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect a contract test for a class that declares a capability it needs off.

    Visible in pytest's summary ("N deselected"); the declarations themselves are checked by
    ``test_the_declared_capabilities_are_the_journals`` (tests/persistence/contract.py).
    """
    kept: list[pytest.Item] = []
    off: list[pytest.Item] = []
    for item in items:
        cls = getattr(item, "cls", None)
        name = getattr(item, "originalname", item.name)
        lacking = cls is not None and issubclass(cls, JournalContract) and cls.lacks(name)
        (off if lacking else kept).append(item)
    if off:
        config.hook.pytest_deselected(items=off)
        items[:] = kept
