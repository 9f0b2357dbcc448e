"""Fixtures of the state-store tests: a fake clock, a memory journal and a store on them."""

from __future__ import annotations

import pytest

from state.journal import MemoryJournal
from state.model import initial_state
from state.store import StateStore
from tests.factories import FakeClock


@pytest.fixture
def owners() -> dict[str, list[str]]:
    """Who may write where with ``update_state`` in the ``store`` fixture."""
    return {"operator": ["risk", "strategies.*.params"], "ui": ["ui"]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000)


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def store(journal: MemoryJournal, clock: FakeClock, owners: dict[str, list[str]]) -> StateStore:
    return StateStore(journal, clock=clock, owners=owners, initial=initial_state(10_000.0))
