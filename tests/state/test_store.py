"""StateStore's write path: record, group commit, durable before visible, update_state and
access control, and restore (the reading side is tests/state/test_read_model.py)."""

from __future__ import annotations

import pytest

from state.fold import replay
from state.journal import MemoryJournal
from state.migrations import migrate
from state.model import initial_state, state_to_dict
from state.store import StateStore
from streams.errors import AccessDenied, ConfigError, EventError, PersistenceError
from streams.events import Event, StateChanged, WriteRefused
from tests.factories import (
    FakeClock,
    buy,
    heartbeat,
    runner_status,
    sell,
    tick,
    with_seqs,
)


class RecordingJournal(MemoryJournal):
    """A MemoryJournal that remembers how it was called and what the store showed then."""

    def __init__(self, store_ref: list[StateStore], start_seq: int = 0) -> None:
        super().__init__(start_seq)
        self.store_ref = store_ref
        self.appends: list[tuple[str, bool, int]] = []
        self.waits: list[tuple[int, int]] = []

    def append(self, event: Event, *, wait: bool = False) -> Event | None:
        visible = self.store_ref[0].last_seq if self.store_ref else -1
        self.appends.append((event.type, wait, visible))
        return super().append(event, wait=wait)

    def wait_durable(self, seq: int) -> None:
        self.waits.append((seq, self.store_ref[0].last_seq))


# -- write path --------------------------------------------------------------------------------
def test_record_returns_event_with_seq_and_applies_it(
    store: StateStore, journal: MemoryJournal
) -> None:
    stored = store.record(buy(10, 100.0))

    assert stored is not None
    assert stored.seq == 1
    assert journal.events == [stored]
    assert store.get_state("positions.AAPL.qty") == 10.0
    assert store.version == 1
    assert store.last_seq == 1


def test_duplicate_event_is_not_applied(store: StateStore) -> None:
    event = buy(10, 100.0)
    store.record(event)

    again = store.record(event)

    assert again is None
    assert store.get_state("positions.AAPL.qty") == 10.0
    assert store.version == 1


def test_critical_event_is_durable_before_visible(clock: FakeClock) -> None:
    ref: list[StateStore] = []
    journal = RecordingJournal(ref)
    ref.append(StateStore(journal, clock=clock))

    ref[0].record(buy(1, 1.0))
    ref[0].record(tick())

    assert journal.appends == [("trade_executed", True, 0), ("tick", False, 1)]


def test_record_batch_waits_once_for_highest_critical_then_applies_in_order(
    clock: FakeClock,
) -> None:
    ref: list[StateStore] = []
    journal = RecordingJournal(ref)
    ref.append(StateStore(journal, clock=clock))
    store = ref[0]
    dup = tick("AAPL", 1.0)
    store.record(dup)

    stored = store.record_batch([buy(1, 1.0), dup, tick("AAPL", 2.0), sell(1, 3.0), tick()])

    assert [e.seq for e in stored] == [2, 3, 4, 5]
    assert journal.waits == [(4, 1)]  # once, for seq 4, while seq 1 was still what showed
    assert all(not wait for _, wait, _ in journal.appends[1:])
    assert store.get_state() == replay(journal.events)


def test_batch_of_only_ticks_never_waits(clock: FakeClock) -> None:
    ref: list[StateStore] = []
    journal = RecordingJournal(ref)
    ref.append(StateStore(journal, clock=clock))

    ref[0].record_batch([tick(), tick()])

    assert journal.waits == []


# -- update_state and access control ---------------------------------------------------------
def test_update_state_goes_through_the_log(store: StateStore, journal: MemoryJournal) -> None:
    event = store.update_state("risk.limits.max_position", 500, {"why": "test"}, actor="operator")

    assert isinstance(event, StateChanged)
    assert event.seq == 1
    assert journal.events == [event]
    assert event.metadata == {"why": "test"}
    assert store.get_state("risk.limits.max_position") == 500
    assert replay(journal.events, initial_state(10_000.0)) == store.get_state()


def test_owner_prefix_with_wildcard(store: StateStore) -> None:
    store.update_state("strategies.sma.params.fast", 5, actor="operator")

    assert store.get_state("strategies.sma.params.fast") == 5
    with pytest.raises(AccessDenied):
        store.update_state("strategies.sma.enabled", False, actor="operator")


def test_refused_write_raises_records_and_leaves_state(
    store: StateStore, journal: MemoryJournal
) -> None:
    before = store.get_state()

    with pytest.raises(AccessDenied) as info:
        store.update_state("risk.limits.max_position", 1, actor="ui")

    message = str(info.value)
    assert "'ui'" in message
    assert "'risk.limits.max_position'" in message
    assert "['ui']" in message
    [refused] = journal.events
    assert isinstance(refused, WriteRefused)
    assert (refused.actor, refused.path, refused.reason) == (
        "ui",
        "risk.limits.max_position",
        message,
    )
    after = store.get_state()
    assert {k: v for k, v in after.items() if k != "meta"} == {
        k: v for k, v in before.items() if k != "meta"
    }
    assert store.get_state("risk", None) is None


def test_unknown_actor_owns_nothing(store: StateStore) -> None:
    with pytest.raises(AccessDenied, match=r"'nobody'.*owns only \[\]"):
        store.update_state("ui.theme", "dark", actor="nobody")


def test_owner_prefix_matches_whole_segments(store: StateStore) -> None:
    with pytest.raises(AccessDenied):
        store.update_state("riskier.x", 1, actor="operator")


def test_domain_sections_are_refused_even_for_owners(clock: FakeClock) -> None:
    journal = MemoryJournal()
    store = StateStore(journal, clock=clock, owners={"root": ["*"]})

    with pytest.raises(AccessDenied, match="'account'"):
        store.update_state("account.cash", 1e9, actor="root")

    assert store.get_state("account.cash") == 0.0
    assert isinstance(journal.events[0], WriteRefused)


@pytest.mark.parametrize("path", ["", "risk..x", "risk.*", ".risk"])
def test_malformed_path_is_rejected(store: StateStore, path: str) -> None:
    with pytest.raises(EventError, match="invalid"):
        store.update_state(path, 1, actor="operator")


def test_non_json_value_is_rejected(store: StateStore, journal: MemoryJournal) -> None:
    with pytest.raises(EventError, match=r"'risk\.x'.*not JSON"):
        store.update_state("risk.x", object(), actor="operator")
    with pytest.raises(EventError):
        store.update_state("risk.x", float("nan"), actor="operator")

    assert journal.events == []


def test_update_state_uses_injected_publish(
    journal: MemoryJournal, clock: FakeClock, owners: dict[str, list[str]]
) -> None:
    published: list[Event] = []
    store = StateStore(journal, clock=clock, owners=owners, publish=published.append)

    event = store.update_state("risk.mode", "strict", actor="operator")
    with pytest.raises(AccessDenied):
        store.update_state("risk.mode", "loose", actor="ui")

    assert published[0] is event
    assert isinstance(published[1], WriteRefused)
    assert journal.events == []
    assert store.get_state("risk", None) is None
    store.record(published[0])
    assert store.get_state("risk.mode") == "strict"


def test_owners_must_be_lists(journal: MemoryJournal, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="owners\\['op'\\]"):
        StateStore(journal, clock=clock, owners={"op": "risk"})


# -- restore ---------------------------------------------------------------------------------
def test_restore_from_snapshot_dict_then_continue(clock: FakeClock) -> None:
    events = with_seqs([buy(10, 100.0), tick("AAPL", 105.0), runner_status()])
    full = replay(events, initial_state(10_000.0))
    journal = MemoryJournal(start_seq=3)
    store = StateStore(journal, clock=clock)

    store.restore(state_to_dict(full))
    store.record(heartbeat())

    assert store.version == 4
    assert store.get_state("positions.AAPL.qty") == 10.0
    assert store.path_version("positions.AAPL") == 3
    assert store.positions["AAPL"]["qty"] == 10.0
    assert store.prices["AAPL"]["last"] == 105.0
    assert store.last_seq == 4


def test_restore_with_explicit_version(clock: FakeClock) -> None:
    store = StateStore(MemoryJournal(start_seq=5), clock=clock)

    store.restore(replay(with_seqs([tick()] * 1, start=5)), version=99)

    assert store.version == 99
    assert store.snapshot()[:2] == (5, 99)


def test_restore_ahead_of_journal_is_refused(clock: FakeClock) -> None:
    state = replay(with_seqs([tick()], start=10))

    with pytest.raises(PersistenceError, match=r"seq 10.*last seq is 0"):
        StateStore(MemoryJournal(), clock=clock, initial=state)


def test_restore_v1_snapshot_through_migration(clock: FakeClock) -> None:
    v1 = {"seq": 7, "cash": 900.0, "positions": {"AAPL": 1}, "avg_prices": {"AAPL": 100.0}}
    store = StateStore(MemoryJournal(start_seq=7), clock=clock)

    store.restore(migrate(v1, 1))
    store.record(sell(1, 110.0))

    assert store.get_state("positions.AAPL") == {"qty": 0.0, "avg_price": 0.0, "realized_pnl": 10.0}
    assert store.get_state("account.cash") == 1010.0
