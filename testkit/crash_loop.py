"""The crash loop: SIGKILL a real ``seamless run`` or ``seamless serve`` at random moments and
check the event log after every kill and restart.

The checks, after each kill: every acknowledged event (printed by ``--print-events critical``,
or received on the SSE stream, both only after the commit) is in the log with the same seq; the
log's seq runs 1..N with no gap or duplicate; restore equals a full replay; the restarted run
continues at the next seq and, after reconciliation, holds the broker's positions (or started
halted); every killed run is marked crashed. Failures are collected in a :class:`Tally`, not
raised, so that a long run reports them all.

Used by ``python -m bench crash_loop`` (the long runs) and ``tests/engine/test_serve_crash.py``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from persistence import CLEAN, CRASHED, EventLog, full_replay, restore
from state import state_to_dict
from testkit.engine_process import books, printed_events, run_engine, wait_for_output
from testkit.serve_target import ServeProcess, write_serve_config


def broker_positions(path: Path) -> dict[str, float] | None:
    """The broker's own positions as its account file holds them; None if unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {
        sym: round(pos["qty"], 9) for sym, pos in raw["positions"].items() if abs(pos["qty"]) > 1e-9
    }


class Tally:
    """What a crash loop counted and every failure it found (``cycle N: what``)."""

    def __init__(self) -> None:
        self.cycles = 0
        self.restarts_ok = 0
        self.acknowledged = 0
        self.lost = 0
        self.failures: list[str] = []
        self.snapshots_skipped = 0
        self.reconciled_restarts = 0
        self.halted_restarts = 0
        self.kill_offsets: list[float] = []
        self.killed_starting = 0

    def fail(self, cycle: int, what: str) -> None:
        """Record (and print) one failed check of ``cycle``."""
        self.failures.append(f"cycle {cycle}: {what}")
        print(f"  FAIL cycle {cycle}: {what}", flush=True)


def check_log(db: Path) -> tuple[int, int, int, bool, int]:
    """(events, last seq, distinct ids, restore == full replay, skipped snapshots)."""
    with EventLog(db) as log:
        count = log.count()
        with log._reader() as cur:
            row = cur.execute(
                "SELECT coalesce(max(seq), 0), count(DISTINCT event_id) FROM events"
            ).fetchall()[0]
        result = restore(log)
        same = result.state == full_replay(log) and result.seq == row[0]
    return count, int(row[0]), int(row[1]), same, len(result.skipped_snapshots)


def check_restart(
    db: Path, previous_last_seq: int, broker_at_kill: dict[str, float] | None, tally: Tally, c: int
) -> None:
    """The run after a kill began at the next seq and reconciled to the broker's books."""
    with EventLog(db) as log:
        new = log.read(since_seq=previous_last_seq, limit=5_000)
        if not new:
            tally.fail(c, "the restarted engine wrote nothing")
            return
        if new[0].seq != previous_last_seq + 1:
            tally.fail(c, f"restart began at seq {new[0].seq}, not {previous_last_seq + 1}")
        first_command = next((e.seq for e in new if e.type == "command_issued"), None)
        if first_command is None:
            # Killed while starting, before its start command was committed (possible under
            # load: the kill comes after the first printed event, which may be a
            # reconciliation event). Nothing traded; the next restart is checked as usual.
            tally.killed_starting += 1
            return
        start = [e for e in new if e.seq < first_command]
        if any(e.type == "reconciliation_adjusted" for e in start):
            tally.reconciled_restarts += 1
        halted = any(
            e.type == "trading_state_changed" and getattr(e, "state", "") == "halted"
            for e in new
            if e.seq <= first_command + 5
        )
        engine = books(state_to_dict(restore(log, upto_seq=first_command - 1).state))
    if broker_at_kill is None or halted:
        tally.halted_restarts += int(halted)
        if broker_at_kill is None and not halted:
            tally.fail(c, "broker account unreadable but the engine did not start halted")
        return
    if engine["positions"] != broker_at_kill:
        tally.fail(c, f"positions {engine['positions']} != broker {broker_at_kill} after reconcile")


class RunTarget:
    """``seamless run --print-events critical``: acknowledged = printed (after the commit)."""

    name = "seamless run"
    protocol_errors = 0

    def __init__(self, config: Path) -> None:
        self.config = config
        self.folder = config.parent
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the engine and wait for its first printed (committed) event."""
        out, err = self.folder / "out.jsonl", self.folder / "err.txt"
        self.proc = run_engine(self.config, out, err)
        wait_for_output(self.proc, out, err, timeout=30)

    def acknowledged(self) -> list[dict[str, Any]]:
        """The events this incarnation printed (each after its commit)."""
        return printed_events(self.folder / "out.jsonl")

    def stop(self, sig: int) -> int:
        """Send ``sig`` and return the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)


class ServeTarget:
    """``seamless serve`` with a viewer API token: acknowledged = critical events received on
    ``/api/events`` (SSE publishes a critical event only after its commit)."""

    name = "seamless serve"

    def __init__(self, config: Path) -> None:
        self.config, self.token = write_serve_config(config)
        self.folder = config.parent
        self.server: ServeProcess | None = None
        self.sse_frames = 0
        self.sse_reconnects = 0
        self.protocol_errors = 0  # SSE frames whose id is not their event's seq

    def start(self) -> None:
        """Start the server; wait until it is healthy and streamed its first event."""
        self.server = ServeProcess(self.config, self.token, self.folder / "err.txt")
        try:
            self.server.wait_ready(timeout=60)
            self.server.wait_first_event(timeout=30)
        except BaseException:
            self.server.kill(signal.SIGKILL)
            raise

    def acknowledged(self) -> list[dict[str, Any]]:
        """The critical events this incarnation streamed (each after its commit)."""
        assert self.server is not None
        return self.server.recorder.acknowledged()

    def stop(self, sig: int) -> int:
        """Send ``sig``, add the SSE counts to the totals and return the exit status."""
        assert self.server is not None
        code = self.server.kill(sig)
        self.sse_frames += self.server.recorder.frames
        self.sse_reconnects += max(0, self.server.recorder.connects - 1)
        self.protocol_errors += self.server.recorder.id_mismatches
        return code


Target = RunTarget | ServeTarget


def check_kill(db: Path, acknowledged: list[dict[str, Any]], tally: Tally, cycle: int) -> int:
    """The checks after a kill: nothing acknowledged lost, seq gapless, restore == replay.

    Returns the log's last seq.
    """
    tally.acknowledged += len(acknowledged)
    count, last_seq, distinct, same, skipped = check_log(db)
    tally.snapshots_skipped += skipped
    if acknowledged:
        with EventLog(db) as log:
            since = min(p["seq"] for p in acknowledged) - 1
            stored = {e.event_id: e.seq for e in log.read(since_seq=since)}
        lost = [p for p in acknowledged if stored.get(p["event_id"]) != p["seq"]]
        tally.lost += len(lost)
        if lost:
            tally.fail(cycle, f"{len(lost)} acknowledged events not in the log")
    if not (count == last_seq == distinct):
        tally.fail(cycle, f"seq gap/duplicate: {count} events, last {last_seq}, {distinct}")
    if not same:
        tally.fail(cycle, "restore != full replay")
    return last_seq


def check_runs_crashed(db: Path, killed: int, tally: Tally, cycle: int) -> None:
    """After a restart, every one of the ``killed`` earlier runs is marked crashed."""
    with EventLog(db) as log:
        runs = [r.how for r in log.runs()]
    if runs[:killed] != [CRASHED] * killed:
        tally.fail(cycle, f"killed runs not all marked crashed: {runs[:killed]}")


def check_final(db: Path, cycles: int, clean: bool, tally: Tally) -> dict[str, int]:
    """After the last (SIGTERM) stop: a clean exit, runs crashed x cycles then clean, a
    consistent log. Returns log figures for the summary."""
    count, last_seq, distinct, same, _ = check_log(db)
    with EventLog(db) as log:
        runs = [r.how for r in log.runs()]
        fills = log.count(types=["trade_executed"])
        with log._reader() as cur:
            n_snapshots = cur.execute("SELECT count(*) FROM snapshots").fetchall()[0][0]
    if not clean:
        tally.fail(cycles, "the final SIGTERM stop was not clean")
    if runs != [CRASHED] * cycles + [CLEAN]:
        tally.fail(cycles, f"runs are not all crashed then clean: {runs}")
    if not (count == last_seq == distinct and same):
        tally.fail(cycles, "final log inconsistent")
    return {"events_in_log": count, "fills": fills, "snapshots": int(n_snapshots)}


def crash_loop(
    target: Target,
    cycles: int,
    rng: random.Random,
    min_s: float,
    max_s: float,
    tally: Tally,
    *,
    progress: bool = True,
) -> dict[str, int]:
    """Start ``target``, SIGKILL it ``min_s``-``max_s`` s later, check, ``cycles`` times; then a
    last run stopped with SIGTERM. Failures go to ``tally``; returns the final log figures."""
    folder = target.folder
    db, broker_file = folder / "crash.duckdb", folder / "broker.json"
    previous_last_seq = 0
    broker_at_kill: dict[str, float] | None = {}
    started = time.monotonic()
    for cycle in range(cycles):
        target.start()
        try:
            offset = rng.uniform(min_s, max_s)
            time.sleep(offset)
            tally.kill_offsets.append(offset)
        finally:
            code = target.stop(signal.SIGKILL)
        if code != -signal.SIGKILL:
            tally.fail(cycle, f"{target.name} exited with {code} before the kill")
        tally.cycles += 1
        if target.protocol_errors:
            tally.fail(cycle, f"{target.protocol_errors} SSE frames with an id != their seq")
            target.protocol_errors = 0
        last_seq = check_kill(db, target.acknowledged(), tally, cycle)
        if cycle > 0:
            before = len(tally.failures)
            check_restart(db, previous_last_seq, broker_at_kill, tally, cycle)
            check_runs_crashed(db, cycle, tally, cycle)
            tally.restarts_ok += int(len(tally.failures) == before)
        previous_last_seq = last_seq
        broker_at_kill = broker_positions(broker_file) if broker_file.exists() else {}
        if progress and (cycle % 10 == 0 or cycle == cycles - 1):
            print(
                f"cycle {cycle + 1}/{cycles}: {last_seq} events, "
                f"{tally.acknowledged} acknowledged, {tally.lost} lost, "
                f"{len(tally.failures)} failures, {time.monotonic() - started:.0f} s",
                flush=True,
            )
    # a last clean stop
    target.start()
    time.sleep(0.5)
    code = target.stop(signal.SIGTERM)
    # `seamless run` exits 0; `seamless serve` re-raises SIGTERM as SystemExit(143) after
    # stopping the engine cleanly
    clean = code in (0, 128 + signal.SIGTERM)
    before = len(tally.failures)
    last_seq = check_kill(db, target.acknowledged(), tally, cycles)
    check_restart(db, previous_last_seq, broker_at_kill, tally, cycles)
    check_runs_crashed(db, cycles, tally, cycles)
    tally.restarts_ok += int(len(tally.failures) == before)
    return check_final(db, cycles, clean, tally)
