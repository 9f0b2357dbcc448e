"""Reads of the PostgreSQL event log: one stream's events by seq, topic, type and time (the
shared :class:`persistence.reads.LogReads` in the PostgreSQL dialect), and every stream's
events in global commit order (``read_global``, for dashboards).

Values are always bound parameters. Every read flushes the log first, so it sees everything
appended before the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from persistence.chain import CHAIN_COLUMN, ChainAudit
from persistence.codec import EVENT_COLUMNS, row_to_event
from persistence.pg.connect import ConnectionPool
from persistence.queries import POSTGRES, EventFilter, build_where, non_negative
from streams.errors import PersistenceError
from streams.events import Event

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    import pandas as pd

#: The event columns in ``EVENT_COLUMNS`` order (payload as its stored JSON text).
SELECT_COLUMNS = ", ".join("payload::text" if c == "payload" else c for c in EVENT_COLUMNS)

__all__ = ["SELECT_COLUMNS", "PgReads", "non_negative"]


class PgReads(ChainAudit):
    """The read half of :class:`~persistence.pg.log.PostgresEventLog` (a mixin): reads of
    this stream's events (and of its hash chain: ``verify_chain``), and ``read_global``."""

    _dialect = POSTGRES
    _select_sql = f"SELECT {SELECT_COLUMNS} FROM events"
    _chain_select_sql = f"SELECT {SELECT_COLUMNS}, {CHAIN_COLUMN} FROM events"

    stream: str
    _pool: ConnectionPool

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        def run(con: psycopg.Connection) -> list[tuple[Any, ...]]:
            return con.execute(sql, params).fetchall()

        return self._pool.run(run)

    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self._fetch(sql, params), columns=list(EVENT_COLUMNS))

    def _where(self, f: EventFilter) -> tuple[str, list[Any]]:
        where, params = build_where(f, POSTGRES)
        return f"stream = %s AND {where}", [self.stream, *params]

    def read_global(
        self, since_gseq: int = 0, limit: int | None = None, topic: str | None = None
    ) -> list[tuple[str, int, Event]]:
        """``(stream, gseq, event)`` of every stream's events with ``gseq > since_gseq``, in
        global commit order (for dashboards showing every node).

        ``gseq`` is assigned at commit under one lock and commits become visible in gseq
        order, so a reader polling with the last gseq it saw never skips an event.
        """
        if isinstance(since_gseq, bool) or not isinstance(since_gseq, int):
            raise PersistenceError(f"since_gseq must be an integer, got {since_gseq!r}")
        sql = f"SELECT stream, gseq, {SELECT_COLUMNS} FROM events WHERE gseq > %s"
        params: list[Any] = [since_gseq]
        if topic is not None:
            where, topic_params = build_where(EventFilter(topic=topic), POSTGRES)  # seq > 0
            sql += f" AND {where}"
            params.extend(topic_params)
        sql += " ORDER BY gseq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(non_negative("limit", limit))
        self.flush()
        return [(r[0], int(r[1]), row_to_event(r[2:])) for r in self._fetch(sql, params)]
