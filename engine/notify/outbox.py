"""Delivery from the committed log through a durable cursor: one :class:`Outbox` per channel.

The event log is the outbox. A channel's thread reads what is *committed* after its cursor
(``recorder.read(since_seq=cursor, until_seq=committed_seq, topic=..., types=...)``, one query
per selector, at most ``scan_window`` seqs at a time), hands each selected event to its
notifier in seq order, and moves the cursor past an event only once the notifier returned:
at-least-once. A failure is retried, the same event, with exponential backoff (doubling from
``retry_initial_s`` to ``retry_max_s``, or the receiver's ``Retry-After``), for ever: the
channel falls behind but never skips, and the engine never waits for it (nothing here runs on
the engine thread or holds a bus subscription; the backlog is the log itself).

The cursor is a small JSON file (:class:`CursorFile`, ``<db>.notify-<channel>.json``),
replaced atomically (write, fsync, rename, fsync the folder: ~7 ms here) once the events read
in one pass are delivered, at least every ``DELIVERY_SAVE_S`` while a backlog drains, and
before each retry wait; a skip over events the channel does not want is saved at most once a
second. A crash therefore re-sends at most the deliveries since the last save (a receiver drops
them by ``event_id``) and re-reads skipped events only to find again nothing to send.

Why a file and not a table in the log. The log's own tables could hold it: snapshots and
runs are written through cursors of the one DuckDB connection, beside the writer thread that
commits the events. But each such write is a DuckDB commit (2.5-5 ms here) contending with
the writer's, on the file the engine's fills wait for (keeping DuckDB commits off that path
is why events are journaled first); the ``Recorder`` contract (DuckDB and PostgreSQL, one
contract suite) would grow a table that is no fact of the book; and the events table is
hash-chained for audit. A cursor is a private, rewritable position: one small file per
channel, replaced atomically, costs two fsyncs, contends with nothing, and losing it only
means re-sending (at-least-once). Keep it with the database file when moving the log.

A channel with no cursor file starts at the log's end as of this start (it is not sent the
history). A cursor beyond the log's end (the log was replaced) starts there too, with a
warning.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from engine.notify.base import DeliveryFailed, Notifier
from persistence.recorder import Recorder
from streams.events import Event

log = logging.getLogger(__name__)

#: A skip over unwanted events is saved at most this often.
SKIP_SAVE_S = 1.0
#: While a backlog is being delivered, the cursor is saved at least this often (else after
#: each batch read from the log, and before every retry wait).
DELIVERY_SAVE_S = 0.25


class CursorFile:
    """A channel's durable position: the last seq it delivered or skipped."""

    def __init__(self, path: str | os.PathLike[str], channel: str) -> None:
        self.path = Path(path)
        self.channel = channel
        self._lock = threading.Lock()  # a stop may save while the thread does

    def load(self) -> int | None:
        """The saved seq; None if there is no file or it is unreadable (logged)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return int(data["seq"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("notify cursor %s unreadable (%s): starting at the log's end", self.path, exc)
            return None

    def save(self, seq: int) -> None:
        """Replace the file atomically and durably (OSError if it cannot)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps({"channel": self.channel, "seq": seq, "saved_ns": time.time_ns()})
        with self._lock:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


class Outbox:
    """One channel's delivery thread over ``recorder`` (see the module doc)."""

    def __init__(
        self,
        notifier: Notifier,
        recorder: Recorder,
        cursor: CursorFile,
        *,
        start_seq: int,
        poll_interval_s: float = 0.25,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 60.0,
        lag_warn_s: float = 60.0,
        event_time_is_wall: bool = False,
        scan_window: int = 5_000,
    ) -> None:
        self.notifier = notifier
        self.recorder = recorder
        self.cursor = cursor
        self._poll = poll_interval_s
        self._retry_initial = retry_initial_s
        self._retry_max = max(retry_max_s, retry_initial_s)
        self._lag_warn = lag_warn_s
        self._wall_events = event_time_is_wall
        self._window = max(1, scan_window)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Selected events read and not delivered yet, with the wall time they were read.
        self._pending: collections.deque[tuple[Event, int]] = collections.deque()
        self._scan_end = 0
        self._saved_seq = -1
        self._saved_at = 0.0
        self.delivered = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_delivered_ns: int | None = None
        self._retry_at: float | None = None
        self.seq = self._initial_seq(start_seq)

    @property
    def name(self) -> str:
        return self.notifier.name

    def _initial_seq(self, start_seq: int) -> int:
        saved = self.cursor.load()
        committed = self._committed(start_seq)
        if saved is not None and saved <= committed:
            self._saved_seq = saved
            return saved
        if saved is not None:
            log.warning(
                "notify %s: cursor %s is beyond the log's end %s (a new log?): starting at the end",
                self.name,
                saved,
                committed,
            )
        self._save(start_seq)
        return start_seq

    def _committed(self, default: int) -> int:
        try:
            return int(self.recorder.committed_seq)
        except Exception:
            return default

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Outbox:
        """Start delivering in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"notify-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, join_timeout_s: float = 1.0) -> None:
        """Stop the thread (an HTTP request in flight is not waited for beyond the timeout:
        its event is sent again after the next start) and save the cursor."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(join_timeout_s)
            if self._thread.is_alive():
                log.warning("notify %s: still sending at stop: sent again next start", self.name)
            self._thread = None
        self._save(self.seq, quiet=True)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def committed(self) -> int:
        """The log's committed seq (this channel's cursor if the log cannot say)."""
        return self._committed(self.seq)

    def caught_up(self, seq: int) -> bool:
        """True once everything committed up to ``seq`` is delivered or skipped."""
        return self.seq >= seq and not self._pending

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self._retry_initial
        while not self._stop.is_set():
            try:
                moved = self._step()
            except Exception as exc:  # a failed delivery or read: retry the same event later
                if self.consecutive_failures == 0:
                    backoff = self._retry_initial
                self.failures += 1
                self.consecutive_failures += 1
                self.last_error = str(exc) or type(exc).__name__
                self._save(self.seq)  # what was delivered before the failure
                wait = backoff
                if isinstance(exc, DeliveryFailed) and exc.retry_after_s is not None:
                    wait = min(max(exc.retry_after_s, backoff), self._retry_max)
                self._retry_at = time.monotonic() + wait
                log.warning(
                    "notify %s: %s (attempt %d, retry in %.2f s)",
                    self.name,
                    self.last_error,
                    self.consecutive_failures,
                    wait,
                )
                self._stop.wait(wait)
                backoff = min(backoff * 2, self._retry_max)
                continue
            self._retry_at = None
            if not moved:
                self._stop.wait(self._poll)

    def _step(self) -> bool:
        """Deliver what is pending, else read the next committed window; False when idle."""
        if not self._pending:
            committed = int(self.recorder.committed_seq)
            if committed <= self.seq:
                self._save_skip()
                return False
            target = min(committed, self.seq + self._window)
            seen = time.time_ns()
            self._pending.extend((e, seen) for e in self._scan(self.seq, target))
            self._scan_end = target
        while self._pending:
            if self._stop.is_set():
                return True
            event = self._pending[0][0]
            self.notifier.send(event)  # raises if not delivered
            self._pending.popleft()
            self.delivered += 1
            self.consecutive_failures = 0
            self.last_error = None
            self.last_delivered_ns = time.time_ns()
            self.seq = event.seq
            if not self._pending or time.monotonic() - self._saved_at >= DELIVERY_SAVE_S:
                self._save(event.seq)
        self.seq = max(self.seq, self._scan_end)
        self._save_skip()
        return True

    def _scan(self, since: int, until: int) -> list[Event]:
        """The selected committed events with ``since < seq <= until``, in seq order."""
        found: dict[int, Event] = {}
        queries = {(s.pattern, s.types) for s in self.notifier.selectors}
        for pattern, types in sorted(queries):
            for event in self.recorder.read(
                since_seq=since, until_seq=until, topic=pattern, types=types or None
            ):
                if event.seq not in found and self.notifier.selects(event):
                    found[event.seq] = event
        return [found[seq] for seq in sorted(found)]

    def _save(self, seq: int, *, quiet: bool = False) -> None:
        if seq == self._saved_seq:
            return
        try:
            self.cursor.save(seq)
        except OSError as exc:
            if not quiet:
                log.error("notify %s: cannot save cursor %s: %s", self.name, self.cursor.path, exc)
            return
        self._saved_seq = seq
        self._saved_at = time.monotonic()

    def _save_skip(self) -> None:
        if self.seq != self._saved_seq and time.monotonic() - self._saved_at >= SKIP_SAVE_S:
            self._save(self.seq)

    # -- figures -----------------------------------------------------------------------------
    def oldest_undelivered_age_s(self) -> float | None:
        """Age of the oldest selected event read and not delivered (wall time; None if none).

        Counted from the event's ``ts_init`` in a live engine (its wall time), else from when
        this channel read it (a replay's event times are the data's)."""
        try:
            event, seen = self._pending[0]
        except IndexError:
            return None
        now = time.time_ns()
        born = seen
        if self._wall_events and 0 < event.ts_init < seen:
            born = event.ts_init
        return max(now - born, 0) / 1e9

    def status(self) -> str:
        """``failing`` (the last attempt failed), ``lagging``, ``ok`` or ``stopped``."""
        if self.consecutive_failures:
            return "failing"
        age = self.oldest_undelivered_age_s()
        if age is not None and age > self._lag_warn:
            return "lagging"
        return "ok" if self.running else "stopped"

    def stats(self) -> dict[str, Any]:
        """This channel's figures for ``Kernel.health()``."""
        committed = self._committed(self.seq)
        age = self.oldest_undelivered_age_s()
        retry_in = (
            max(self._retry_at - time.monotonic(), 0.0) if self._retry_at is not None else None
        )
        return {
            "kind": self.notifier.kind,
            "format": self.notifier.format,
            "target": self.notifier.target,
            "status": self.status(),
            "running": self.running,
            "cursor_seq": self.seq,
            "committed_seq": committed,
            "lag_seq": max(committed - self.seq, 0),
            "pending": len(self._pending),
            "oldest_undelivered_age_s": round(age, 3) if age is not None else None,
            "delivered": self.delivered,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "retry_in_s": round(retry_in, 3) if retry_in is not None else None,
            "last_delivered_ns": self.last_delivered_ns,
        }
