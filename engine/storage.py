"""The kernel's event log: open the configured backend, restore the state, travel in time.

:func:`open_recorder` opens DuckDB (the embedded default) or PostgreSQL; everything after it
sees only the :class:`~persistence.recorder.Recorder` contract, so strategies, restore, the
dashboard and the notebooks do not change with the backend. PostgreSQL needs the ``scale``
extra (``pip install -e '.[scale]'``); it is imported only when selected. A backtest's in-memory
journal has no snapshots: :func:`restore_state` and :func:`state_at` replay it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.config import StorageConfig
from persistence import EventLog, RestoreResult, restore
from persistence.recorder import Recorder
from state.fold import replay
from streams.errors import ConfigError

#: A fencing check run inside every PostgreSQL write transaction (see engine.lease).
Fence = Callable[[Any], None]


def open_recorder(storage: StorageConfig, *, fence: Fence | None = None) -> Recorder:
    """Open (creating if needed) the configured event log and return it, writer running.

    ``fence`` is only meaningful for PostgreSQL, where several nodes share one database: the
    write fails (and trading halts) once this node no longer holds its book's lease.
    """
    if storage.backend == "duckdb":
        if fence is not None:
            raise ConfigError("cluster leases need storage.backend 'postgres', got 'duckdb'")
        db_path = Path(storage.db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        return EventLog(
            db_path,
            batch_size=storage.batch_size,
            flush_interval_s=storage.flush_interval_s,
            memory_limit=storage.memory_limit,
        ).open()
    if storage.backend == "postgres":
        try:
            from persistence.pg import PostgresEventLog
        except ImportError as exc:
            raise ConfigError(
                f"storage.backend 'postgres' needs psycopg: pip install -e '.[scale]' ({exc})"
            ) from exc
        recorder: Recorder = PostgresEventLog(
            storage.postgres_dsn,
            stream=storage.stream,
            batch_size=storage.batch_size,
            flush_interval_s=storage.flush_interval_s,
            fence=fence,
        ).open()
        return recorder
    raise ConfigError(f"storage.backend: expected 'duckdb' or 'postgres', got {storage.backend!r}")


def restore_state(log: Any) -> RestoreResult:
    """The state of ``log``: snapshot + tail for an event log, a replay for a memory journal."""
    if isinstance(log, Recorder):
        return restore(log)
    events = list(getattr(log, "events", ()))
    state = replay(events)
    return RestoreResult(state, int(state["meta"]["seq"]), 0, len(events), ())


def newest_market_ns(prices: Mapping[str, Any]) -> int:
    """The time of the newest quote in a state's ``prices`` (0 if none)."""
    return max((int(q.get("ts") or 0) for q in prices.values()), default=0)


def state_at(log: Any, seq: int) -> dict[str, Any]:
    """Time travel: the state of ``log`` after every event up to ``seq``, as plain dicts.

    For an event log: its newest valid snapshot at or before ``seq`` plus a replay of the
    events after it (``persistence.restore``), never the whole log; in memory: a replay.
    Reads only the log, so any thread may call it (it takes as long as the tail is long).
    Returns ``seq`` (the last event folded in: ``seq``, or the last stored one if ``seq``
    is beyond it), that event's ``ts`` (``ts_event``, 0 for none) and ``type``, ``state``,
    and ``snapshot_seq`` and ``replayed`` (where the restore started and how many events
    it folded).
    """
    from state import state_to_dict

    target = max(int(seq), 0)
    if isinstance(log, Recorder):
        result = restore(log, upto_seq=target)
        state, at, snapshot_seq, replayed = (
            result.state,
            result.seq,
            result.snapshot_seq,
            result.replayed,
        )
        found = log.read(since_seq=at - 1, until_seq=at, limit=1) if at > 0 else []
    else:
        events = [e for e in getattr(log, "events", ()) if e.seq <= target]
        state = replay(events)
        at, snapshot_seq, replayed = int(state["meta"]["seq"]), 0, len(events)
        found = events[-1:]
    event = found[0] if found and found[0].seq == at else None
    return {
        "seq": at,
        "ts": int(event.ts_event) if event is not None else int(state["meta"]["ts"]),
        "type": event.type if event is not None else "",
        "state": state_to_dict(state),
        "snapshot_seq": snapshot_seq,
        "replayed": replayed,
    }
