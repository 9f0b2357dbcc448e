"""Crash test on the real CLI.

``seamless run --print-events critical`` trades a fast synthetic feed with a quick SMA crossover
and is SIGKILLed at a random moment, several times, then restarted. After every kill:

- every event it printed (printed only after the commit) is in the log with the same seq;
- the log's seq runs 1..N without gaps or duplicates, across all runs;
- the restarted engine restored exactly the books the log had at the kill (positions and cash,
  as ``seamless state --json --at`` reports them just before its first command), and any
  difference with the broker's own account was turned into reconciliation events.

A last run is stopped with SIGTERM: a clean stop, every killed run marked crashed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from persistence import CLEAN, CRASHED, EventLog, restore
from state import state_to_dict
from streams.events import Event
from testkit.engine_process import (
    SEAMLESS,
    books,
    env,
    printed_events,
    run_engine,
    wait_for_output,
    write_config,
)

CYCLES = 5


def stored_events(db: Path) -> list[Event]:
    with EventLog(db) as log:
        return log.read()


def restored_books(db: Path) -> tuple[int, dict[str, Any]]:
    with EventLog(db) as log:
        result = restore(log)
    return result.seq, books(state_to_dict(result.state))


def cli_state_at(db: Path, seq: int) -> dict[str, Any]:
    result = subprocess.run(
        [SEAMLESS, "state", "--db", str(db), "--at", str(seq), "--json"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)
    assert state["seq"] == seq
    return state["state"]


def broker_books(path: Path) -> dict[str, Any]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    positions = {
        sym: round(pos["qty"], 9) for sym, pos in raw["positions"].items() if abs(pos["qty"]) > 1e-9
    }
    return {"positions": positions, "cash": round(raw["cash"], 6)}


def check_printed_are_stored(printed: list[dict[str, Any]], stored: list[Event]) -> None:
    by_id = {e.event_id: e.seq for e in stored}
    missing = [p for p in printed if by_id.get(p["event_id"]) != p["seq"]]
    assert not missing, f"{len(missing)} printed events not in the log, first {missing[0]}"
    assert all(p.get("type") for p in printed)


def check_seq(stored: list[Event]) -> None:
    seqs = [e.seq for e in stored]
    assert seqs == list(range(1, len(seqs) + 1)), "seq has gaps or duplicates"
    assert len({e.event_id for e in stored}) == len(stored), "an event is stored twice"


def check_restart_restored(
    stored: list[Event],
    previous_last_seq: int,
    before: dict[str, Any],
    db: Path,
    *,
    via_cli: bool = False,
) -> None:
    """The run after a kill began at the next seq, from the books the log had at the kill."""
    new = [e for e in stored if e.seq > previous_last_seq]
    assert new, "the restarted engine wrote nothing"
    assert new[0].seq == previous_last_seq + 1
    # reconciliation runs before the first command; its adjustments (if the broker booked a
    # fill the log never heard of before the kill) come first and take the broker's books
    first_command = next(e.seq for e in new if e.type == "command_issued")
    reconciled = [
        e
        for e in new
        if e.seq < first_command and e.type in ("reconciliation_adjusted", "cash_adjusted")
    ]
    with EventLog(db) as log:
        at_kill = books(state_to_dict(restore(log, upto_seq=previous_last_seq).state))
    if via_cli:  # as `seamless state --at` reports it (a process: once, to keep the test short)
        after_restore = books(cli_state_at(db, first_command - 1))
    else:
        with EventLog(db) as log:
            after_restore = books(state_to_dict(restore(log, upto_seq=first_command - 1).state))
    assert at_kill == before  # the restart did not rewrite what was there
    if not reconciled:
        assert after_restore == before
    else:  # the broker won: only the reconciled symbols may differ
        symbols = {getattr(e, "symbol", None) for e in reconciled}
        for symbol, qty in before["positions"].items():
            if symbol not in symbols:
                assert after_restore["positions"].get(symbol) == qty


def test_sigkill_mid_run_loses_no_printed_event_and_restarts_on_the_same_books(
    tmp_path: Path,
) -> None:
    rng = random.Random(20240102)
    config = write_config(tmp_path)
    db = tmp_path / "crash.duckdb"
    broker_file = tmp_path / "broker.json"
    previous_last_seq = 0
    before: dict[str, Any] = {}
    printed_total = 0

    for cycle in range(CYCLES):
        out, err = tmp_path / f"out{cycle}.jsonl", tmp_path / f"err{cycle}.txt"
        proc = run_engine(config, out, err)
        try:
            wait_for_output(proc, out, err, timeout=20)
            time.sleep(rng.uniform(1.0, 3.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

        printed = printed_events(out)
        stored = stored_events(db)
        check_printed_are_stored(printed, stored)
        check_seq(stored)
        if cycle > 0:
            check_restart_restored(stored, previous_last_seq, before, db)
        printed_total += len(printed)
        previous_last_seq, before = restored_books(db)
        assert previous_last_seq == stored[-1].seq
        if broker_file.exists():  # the broker's own books: the engine's once reconciled
            assert set(broker_books(broker_file)["positions"]) <= {"AAPL", "MSFT"}

    out, err = tmp_path / "out_final.jsonl", tmp_path / "err_final.txt"
    proc = run_engine(config, out, err)
    try:
        wait_for_output(proc, out, err, timeout=20)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, err.read_text()

    stored = stored_events(db)
    check_printed_are_stored(printed_events(out), stored)
    check_seq(stored)
    check_restart_restored(stored, previous_last_seq, before, db, via_cli=True)
    assert printed_total > 100
    fills = [e for e in stored if e.type == "trade_executed"]
    assert len(fills) > 10, "the strategy did not trade: the test would prove little"
    with EventLog(db) as log:
        runs = log.runs()
    assert [r.how for r in runs] == [CRASHED] * CYCLES + [CLEAN]
    # after the clean stop the engine's books and the broker's agree
    _, final = restored_books(db)
    assert final["positions"] == broker_books(broker_file)["positions"]
