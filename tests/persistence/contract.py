"""The journal and recorder contract: one suite every event log and journal subclasses.

Two modules, one class to subclass: this one holds :class:`JournalContract` (the hooks, the
declared capabilities and the tests of the :class:`~state.journal.Journal` protocol every
journal passes); :mod:`tests.persistence.recorder_contract` adds the tests of the rest of
:class:`~persistence.recorder.Recorder` in ``RecorderContract``, the class a backend's test
class subclasses (its name starts with ``Test``; the contracts' names do not, so pytest
collects only the subclasses). A backend implements the hooks (:meth:`JournalContract.make`,
:meth:`JournalContract.setup_store`, ...) and declares what it supports in class attributes
(:data:`CAPABILITIES`). A test that needs a capability says so with :func:`needs`;
``tests/persistence/conftest.py`` deselects it, visibly (pytest's "N deselected"), for a class
that declares the capability False, and
:meth:`JournalContract.test_the_declared_capabilities_are_the_journals` checks every
declaration against the object, so a capability is never claimed or withheld wrongly.

Subclasses: ``test_recorder_contract.py`` (DuckDB, PostgreSQL) and ``test_journal_contract.py``
(the in-memory journal, the replica journal).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from persistence import full_replay
from persistence.recorder import Recorder
from state import model
from state.journal import Journal
from streams.events import CashAdjusted, Event
from tests.persistence.builders import fill, tick

#: What a backend declares (class attributes of :class:`JournalContract`), and what each means.
CAPABILITIES: dict[str, str] = {
    "assigns_seq": "append gives the next seq itself (else the event arrives sequenced)",
    "keeps_events": "what was appended can be read back (the stored() hook)",
    "supports_reads": "read, read_df, iter_batches and count with filters",
    "supports_snapshots": "checksummed snapshots; restore = snapshot + tail",
    "supports_runs": "run records (start_run, end_run, runs)",
    "supports_chain": "the hash chain (chain_head_at, verify_chain)",
    "durable": "a journal made again on the same store has every acknowledged event",
    "bounded_dedup": "the dedup_window option: non-critical ids remembered only that far back",
}

#: The methods that make up each Recorder capability, checked against the declarations.
_METHODS: dict[str, tuple[str, ...]] = {
    "supports_reads": ("read", "read_df", "iter_batches", "count"),
    "supports_snapshots": ("save_snapshot", "iter_snapshots", "latest_snapshot"),
    "supports_runs": ("start_run", "end_run", "runs"),
    "supports_chain": ("chain_head_at", "verify_chain", "iter_chain_rows"),
}

F = TypeVar("F", bound=Callable[..., Any])


def needs(*capabilities: str) -> Callable[[F], F]:
    """Mark a contract test as needing ``capabilities`` (names from :data:`CAPABILITIES`)."""
    unknown = sorted(set(capabilities) - CAPABILITIES.keys())
    if unknown:
        raise ValueError(f"needs: unknown capabilities {unknown}, expected some of {CAPABILITIES}")

    def mark(test: F) -> F:
        test.contract_needs = frozenset(capabilities)  # type: ignore[attr-defined]
        return test

    return mark


def history(n: int) -> list[Event]:
    events: list[Event] = [CashAdjusted(amount=100_000.0, reason="deposit")]
    for i in range(n):
        events.append(tick(i, symbol="AAPL"))
        if i % 5 == 0:
            events.append(fill(i, symbol="AAPL", side="buy" if i % 10 else "sell"))
    return events


def append_all(log: Recorder, events: list[Event]) -> list[Event]:
    stored = [log.append(e) for e in events]
    log.flush()
    return [e for e in stored if e is not None]


def snapshot(log: Any) -> int:
    seq = log.flush()
    state = full_replay(log, upto_seq=seq)
    return int(log.save_snapshot(seq, model.SCHEMA_VERSION, model.state_to_dict(state)))


class JournalContract:
    """The journal half of the contract (:class:`~state.journal.Journal`): the hooks, the
    capabilities and the tests every journal passes. Subclass
    :class:`~tests.persistence.recorder_contract.RecorderContract`, which adds the rest.

    Every capability defaults to True (a full :class:`~persistence.recorder.Recorder`); a
    subclass that sets one False must say why in its docstring.
    """

    assigns_seq: ClassVar[bool] = True
    keeps_events: ClassVar[bool] = True
    supports_reads: ClassVar[bool] = True
    supports_snapshots: ClassVar[bool] = True
    supports_runs: ClassVar[bool] = True
    supports_chain: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    bounded_dedup: ClassVar[bool] = True
    #: Beyond ``dedup_window`` a non-critical duplicate gets stored again (DuckDB: no index on
    #: event_id), rather than dropped by the writer, its seq left a hole (PostgreSQL).
    old_duplicate_stored_again: ClassVar[bool] = True
    #: Options for the ``recorder`` fixture's journal (a short flush interval for event logs).
    fast_options: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in CAPABILITIES:
            if not isinstance(getattr(cls, name), bool):
                raise TypeError(f"{cls.__name__}.{name} must be a bool, got {getattr(cls, name)!r}")

    @classmethod
    def lacks(cls, test_name: str) -> frozenset[str]:
        """The capabilities test ``test_name`` needs that this class declares False."""
        needed: frozenset[str] = getattr(
            getattr(cls, test_name, None), "contract_needs", frozenset()
        )
        return frozenset(c for c in needed if not getattr(cls, c))

    # -- what a subclass implements -------------------------------------------------------------
    def setup_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        """Prepare this test's store (a file path, a database); called before each test."""

    def make(self, **options: Any) -> Any:
        """A journal on this test's store, to open with ``with`` (see :meth:`opened`); made
        again on the same store to test a reopen."""
        raise NotImplementedError

    @contextmanager
    def opened(self, **options: Any) -> Iterator[Any]:
        """An open journal on this test's store, closed afterwards."""
        with self.make(**options) as journal:
            yield journal

    def sequenced(self, journal: Any, event: Event) -> Event:
        """``event`` as this journal is handed it: unchanged where the journal assigns seq."""
        return event

    def stored(self, journal: Any) -> list[Event]:
        """Every event the journal holds, by seq (with ``keeps_events``)."""
        return list(journal.read())

    def corrupt_snapshot(self, snapshot_id: int) -> None:
        """Change a stored snapshot's state without updating its checksum (journal closed)."""
        raise NotImplementedError

    def tamper_event(self, seq: int) -> None:
        """Change the stored payload of event ``seq`` behind the journal's back (closed)."""
        raise NotImplementedError

    def start_crash_child(self, tag: str) -> subprocess.Popen[str]:
        """A child process appending to this store, printing each acknowledged seq."""
        raise NotImplementedError

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _store(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.setup_store(request, tmp_path)

    @pytest.fixture
    def recorder(self) -> Iterator[Any]:
        """A fresh, open journal with :attr:`fast_options`."""
        with self.opened(**self.fast_options) as journal:
            yield journal

    # -- every journal --------------------------------------------------------------------------
    def test_the_declared_capabilities_are_the_journals(self, recorder: Any) -> None:
        assert isinstance(recorder, Journal)
        assert isinstance(recorder, Recorder) == all(getattr(self, c) for c in _METHODS)
        for capability, methods in _METHODS.items():
            present = [callable(getattr(recorder, m, None)) for m in methods]
            assert all(present) == getattr(self, capability), (capability, methods, present)
        unsequenced = recorder.append(tick(1))
        if self.assigns_seq:
            assert unsequenced is not None and unsequenced.seq == 1
        else:  # an event that carries no upstream seq is not taken
            assert unsequenced is None and recorder.last_seq == 0
        if not self.durable:
            recorder.append(self.sequenced(recorder, tick(2)))
            with self.opened() as again:  # nothing of the first one is there
                assert again.last_seq == 0

    def test_appends_take_consecutive_seqs_and_flush_covers_them(self, recorder: Any) -> None:
        assert recorder.last_seq == 0 and recorder.flush() == 0
        events = history(6)
        returned: list[Event] = []
        for i, event in enumerate(events, start=1):
            stored = recorder.append(self.sequenced(recorder, event), wait=event.CRITICAL)
            assert stored is not None
            assert stored == event.with_seq(i)
            if event.CRITICAL:
                recorder.wait_durable(stored.seq)  # returns at once: acknowledged durable
            returned.append(stored)
        assert recorder.last_seq == recorder.flush() == len(events)
        recorder.wait_durable(len(events))
        if self.keeps_events:
            assert self.stored(recorder) == returned

    def test_an_event_appended_again_is_not_stored_again(self, recorder: Any) -> None:
        critical = self.sequenced(recorder, fill(1))
        first = recorder.append(critical, wait=True)
        assert first is not None and first.seq == 1
        assert recorder.append(critical, wait=True) is None
        assert recorder.append(first) is None
        other = self.sequenced(recorder, tick(1))
        second = recorder.append(other)
        assert second is not None and second.seq == 2
        assert recorder.append(other) is None and recorder.append(second) is None
        assert recorder.last_seq == recorder.flush() == 2
        if self.keeps_events:
            assert self.stored(recorder) == [first, second]

    @needs("assigns_seq", "keeps_events")
    def test_seq_is_gapless_in_commit_order_under_concurrent_appends(self, recorder: Any) -> None:
        threads, per_thread = 4, 150
        acked: dict[int, list[tuple[int, str]]] = {t: [] for t in range(threads)}
        prefixes_ok: list[bool] = []
        done = threading.Event()

        def writer(t: int) -> None:
            for i in range(per_thread):
                event: Event = (
                    fill(t * 1000 + i, event_id=f"w{t}-{i}")
                    if i % 10 == 0
                    else tick(i, event_id=f"w{t}-{i}")
                )
                stored = recorder.append(event, wait=event.CRITICAL)
                assert stored is not None
                acked[t].append((stored.seq, stored.event_id))

        def reader() -> None:
            while not done.is_set():
                seqs = [e.seq for e in self.stored(recorder)]
                prefixes_ok.append(seqs == list(range(1, len(seqs) + 1)))

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        watcher = threading.Thread(target=reader)
        watcher.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done.set()
        watcher.join()

        total = threads * per_thread
        assert recorder.flush() == total
        stored = {e.seq: e.event_id for e in self.stored(recorder)}
        assert sorted(stored) == list(range(1, total + 1))
        for rows in acked.values():
            seqs = [s for s, _ in rows]
            assert seqs == sorted(seqs)  # each producer's events keep their order
            assert all(stored[s] == eid for s, eid in rows)
        assert prefixes_ok and all(prefixes_ok)  # a reader never saw seq n + 1 without n
