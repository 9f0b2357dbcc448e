"""Filtered reads of the event log, shared by both backends: ``read``, ``read_df``,
``iter_batches`` and ``count`` over one log's (for PostgreSQL, one stream's) events.

The filters are :func:`persistence.queries.build_where` in the backend's dialect; values are
always bound parameters, never formatted into SQL. Every read flushes the log first, so it
sees everything appended before the call — except one bounded by ``until_seq`` at or below
``committed_seq``, which asks only for what is already durable (the JetStream relay reads so
every few ms, and must not force a commit of the pending batch each time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from persistence.codec import row_to_event
from persistence.queries import Dialect, EventFilter, build_where, non_negative
from streams.events import Event

if TYPE_CHECKING:  # pandas costs ~0.4 s to import: only reads as frames need it
    import pandas as pd


class LogReads:
    """The read half of an event log (a mixin). The backend supplies ``_fetch`` and
    ``_frame`` (run a query: rows, a DataFrame), ``_dialect`` and ``_select_sql`` (the event
    columns in ``EVENT_COLUMNS`` order, payload as JSON text), and may narrow ``_where``."""

    _dialect: ClassVar[Dialect]
    _select_sql: ClassVar[str]

    def flush(self) -> int:
        raise NotImplementedError

    @property
    def committed_seq(self) -> int:
        raise NotImplementedError

    def _flush_for(self, until_seq: int | None) -> None:
        """Flush unless every event the read can return is committed already."""
        if until_seq is None or until_seq > self.committed_seq:
            self.flush()

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        raise NotImplementedError

    def _where(self, f: EventFilter) -> tuple[str, list[Any]]:
        return build_where(f, self._dialect)

    def _query(
        self, f: EventFilter, limit: int | None, *, newest: bool = False
    ) -> tuple[str, list[Any]]:
        where, params = self._where(f)
        sql = f"{self._select_sql} WHERE {where} ORDER BY seq{' DESC' if newest else ''}"
        if limit is not None:
            sql += f" LIMIT {self._dialect.placeholder}"
            params.append(non_negative("limit", limit))
        if newest:  # the newest `limit` rows, still handed back oldest first
            sql = f"SELECT * FROM ({sql}) AS newest ORDER BY seq"
        return sql, params

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
        """Events with ``since_seq < seq <= until_seq``, in seq order, after flushing.

        ``topic`` is a pattern (``*`` one segment, trailing ``>`` the rest; EventError if
        malformed), ``types`` wire names, ``start_ns <= ts_event < end_ns``. Parameters are
        always bound, never formatted into SQL.
        """
        f = EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        sql, params = self._query(f, limit)
        self._flush_for(until_seq)
        return [row_to_event(r) for r in self._fetch(sql, params)]

    def read_df(
        self,
        since_seq: int = 0,
        until_seq: int | None = None,
        topic: str | None = None,
        types: Iterable[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int | None = None,
        *,
        newest: bool = False,
    ) -> pd.DataFrame:
        """Like ``read`` but the raw rows as a DataFrame (``payload`` is JSON text). With
        ``newest`` and a ``limit``, the newest ``limit`` matching rows (still oldest first):
        what a chart scrolled back from its first point needs."""
        f = EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        sql, params = self._query(f, limit, newest=newest)
        self._flush_for(until_seq)
        return self._frame(sql, params)

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
        """Yield matching events in seq order, ``batch_size`` at a time, for big replays.

        Pages by seq, each page fetched fully; the log is flushed once, at the start.
        """
        size = non_negative("batch_size", batch_size) or 1
        self._flush_for(until_seq)
        last = since_seq
        while True:
            f = EventFilter(last, until_seq, topic, types, start_ns, end_ns)
            sql, params = self._query(f, None)
            rows = self._fetch(f"{sql} LIMIT {self._dialect.placeholder}", [*params, size])
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
        """How many stored events match (after flushing)."""
        where, params = self._where(
            EventFilter(since_seq, until_seq, topic, types, start_ns, end_ns)
        )
        self._flush_for(until_seq)
        rows = self._fetch(f"SELECT count(*) FROM events WHERE {where}", params)
        return int(rows[0][0]) if rows else 0
