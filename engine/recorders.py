"""Open the event log the config asks for: DuckDB (embedded default) or PostgreSQL.

The kernel calls :func:`open_recorder`; everything after it sees only the
:class:`~persistence.recorder.Recorder` contract, so strategies, restore, the dashboard and
the notebooks do not change with the backend. PostgreSQL needs the ``scale`` extra
(``pip install -e '.[scale]'``); it is imported only when selected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import StorageConfig
from persistence import EventLog
from persistence.recorder import Recorder
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
