"""Reads of the PostgreSQL event log: one stream's events by seq, topic, type and time, and
every stream's events in global commit order (``read_global``, for dashboards).

The filters are the DuckDB log's (:func:`persistence.queries.build_where` in the PostgreSQL
dialect); values are always bound parameters. Every read flushes the log first, so it sees
everything appended before the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import psycopg

from persistence.codec import EVENT_COLUMNS, row_to_event
from persistence.pg.connect import ConnectionPool
from persistence.queries import POSTGRES, EventFilter, build_where
from streams.errors import PersistenceError
from streams.events import Event

#: The event columns in ``EVENT_COLUMNS`` order (payload as its stored JSON text).
SELECT_COLUMNS = ", ".join("payload::text" if c == "payload" else c for c in EVENT_COLUMNS)
_SELECT = f"SELECT {SELECT_COLUMNS} FROM events"


def non_negative(name: str, value: int) -> int:
    """``value`` if it is an int >= 0, else PersistenceError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PersistenceError(f"{name} must be a non-negative integer, got {value!r}")
    return value


class PgReads:
    """The read half of :class:`~persistence.pg.log.PostgresEventLog` (a mixin)."""

    stream: str
    _pool: ConnectionPool

    def flush(self) -> int:
        raise NotImplementedError

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        def run(con: psycopg.Connection) -> list[tuple[Any, ...]]:
            return con.execute(sql, params).fetchall()

        return self._pool.run(run)

    def _where(
        self,
        since_seq: int,
        until_seq: int | None,
        topic: str | None,
        types: Iterable[str] | None,
        start_ns: int | None,
        end_ns: int | None,
    ) -> tuple[str, list[Any]]:
        where, params = build_where(
            EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns), POSTGRES
        )
        return f"stream = %s AND {where}", [self.stream, *params]

    def _select(
        self,
        since_seq: int,
        until_seq: int | None,
        topic: str | None,
        types: Iterable[str] | None,
        start_ns: int | None,
        end_ns: int | None,
        limit: int | None,
    ) -> list[tuple[Any, ...]]:
        where, params = self._where(since_seq, until_seq, topic, types, start_ns, end_ns)
        sql = f"{_SELECT} WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(non_negative("limit", limit))
        self.flush()
        return self._fetch(sql, params)

    def read(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """This stream's events with ``since_seq < seq <= until_seq``, in seq order.

        ``topic`` is a pattern (``*`` one segment, trailing ``>`` the rest; EventError if
        malformed), ``types`` wire names, ``start_ns <= ts_event < end_ns``.
        """
        rows = self._select(since_seq, until_seq, topic, types, start_ns, end_ns, limit)
        return [row_to_event(r) for r in rows]

    def read_df(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Like ``read`` but the raw rows as a DataFrame (``payload`` is JSON text)."""
        rows = self._select(since_seq, until_seq, topic, types, start_ns, end_ns, limit)
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))

    def iter_batches(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        batch_size: int = 50_000,
    ) -> Iterator[list[Event]]:
        """Yield matching events in seq order, ``batch_size`` at a time (pages by seq)."""
        size = non_negative("batch_size", batch_size) or 1
        self.flush()
        last = since_seq
        while True:
            where, params = self._where(last, until_seq, topic, types, start_ns, end_ns)
            rows = self._fetch(f"{_SELECT} WHERE {where} ORDER BY seq LIMIT %s", [*params, size])
            if not rows:
                return
            last = rows[-1][0]
            yield [row_to_event(r) for r in rows]
            if len(rows) < size:
                return

    def count(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> int:
        """How many of this stream's stored events match (after flushing)."""
        where, params = self._where(since_seq, until_seq, topic, types, start_ns, end_ns)
        self.flush()
        rows = self._fetch(f"SELECT count(*) FROM events WHERE {where}", params)
        return int(rows[0][0]) if rows else 0

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
