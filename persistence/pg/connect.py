"""Connections to PostgreSQL: connect with bounded timeouts, a redacted DSN for messages, and
a small pool of autocommit connections for reads (and the short snapshot/run writes).

Every connection has a connect timeout and TCP keepalives with a user timeout, so a server
that vanishes (restart, network loss) surfaces as an error within seconds instead of a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streams.errors import PersistenceError

T = TypeVar("T")

#: libpq options making a dead server an error, not a hang.
_SAFETY = {
    "application_name": "seamless",
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


def redact(dsn: str) -> str:
    """``dsn`` without its password, as ``host:port/dbname`` (for logs and error messages)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<invalid dsn>"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"postgresql://{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def connect(dsn: str, *, autocommit: bool) -> psycopg.Connection:
    """A new connection to ``dsn`` with the safety timeouts (the DSN's own settings win)."""
    params: dict[str, Any] = {**_SAFETY, **conninfo_to_dict(dsn)}
    return psycopg.connect(make_conninfo(**params), autocommit=autocommit)


def connect_writer(dsn: str) -> psycopg.Connection:
    """A transactional connection for event writes whose commits are durable before they
    are acknowledged or visible, whatever the server or database default says."""
    con = connect(dsn, autocommit=False)
    try:
        con.execute("SET synchronous_commit TO on")
        con.commit()
    except BaseException:
        with suppress(psycopg.Error):
            con.close()
        raise
    return con


class ConnectionPool:
    """Idle autocommit connections reused by reads; a stale one (server restarted) is
    replaced once, transparently, so a read right after a restart still works."""

    def __init__(self, dsn: str, what: str, max_idle: int = 4) -> None:
        self._dsn = dsn
        self._what = what
        self._max_idle = max_idle
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self.closed = False

    def run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(connection)``; psycopg errors become PersistenceError naming the log."""
        for attempt in (1, 2):
            con, pooled = self._take()
            try:
                result = fn(con)
            except psycopg.OperationalError as exc:
                self._discard(con)
                if pooled and attempt == 1:
                    continue  # a connection the server dropped while idle: try a fresh one
                raise PersistenceError(f"{self._what}: {exc}") from exc
            except psycopg.Error as exc:
                self._discard(con)
                raise PersistenceError(f"{self._what}: {exc}") from exc
            except BaseException:
                self._discard(con)
                raise
            self._give_back(con)
            return result
        raise AssertionError("unreachable")

    def _take(self) -> tuple[psycopg.Connection, bool]:
        with self._lock:
            if self.closed:
                raise PersistenceError(f"{self._what} is not open")
            if self._idle:
                return self._idle.pop(), True
        try:
            return connect(self._dsn, autocommit=True), False
        except psycopg.Error as exc:
            raise PersistenceError(f"{self._what}: cannot connect: {exc}") from exc

    def _give_back(self, con: psycopg.Connection) -> None:
        with self._lock:
            if not self.closed and len(self._idle) < self._max_idle and not con.closed:
                self._idle.append(con)
                return
        self._discard(con)

    @staticmethod
    def _discard(con: psycopg.Connection) -> None:
        with suppress(psycopg.Error):
            con.close()

    def open(self) -> None:
        """Accept connections again (after ``close``)."""
        with self._lock:
            self.closed = False

    def close(self) -> None:
        """Close every idle connection and refuse further use."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for con in idle:
            self._discard(con)
