"""The event log's write-ahead journal: where an event becomes durable, before DuckDB has it.

DuckDB's own commit of a few rows costs 2.5-5 ms here (against 0.2 ms for an fsync), and the
engine waits for it at every critical event. So the event log's writer makes each batch
durable by appending its rows to this file (one ``write`` and one ``fdatasync``) and
acknowledges them; it moves them into DuckDB afterwards, in larger, cheaper inserts. At open,
:func:`persistence.duckdb_repair.restore_from_journal` puts back whatever the database does not
hold: the rows of a crash's last moments, or (DuckDB checksums its write-ahead log and refuses
or stops replaying it at a flipped byte) everything after the last checkpoint. The journal is
emptied only after a ``CHECKPOINT`` has put every row it holds into the main file.

Line format: one line per append, ``<crc32 hex> <json>``. The event log writes
``{"rows": [...], "chain": "<hex>"}``: each row the array of its ``EVENT_COLUMNS`` values,
and ``chain`` every row's chain hash (:mod:`persistence.chain`), 64 hex characters each, in
row order, so a crash recovery puts the hashes back with the rows. :meth:`EventJournal.append`
writes a plain JSON array of rows, as the log did before the hash chain; the critical-only
journal of earlier versions wrote one row per line, ``<crc32 hex> <row>``; all are read.
A torn last line (a crash mid-write) fails its CRC and is ignored: none of its rows was
acknowledged. A write that fails is cut off again (``ftruncate``) before the next one, so it
never tears a line in the middle.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``fdatasync`` where the OS has it (the file's size is still made durable), else ``fsync``.
_sync = getattr(os, "fdatasync", os.fsync)


class EventJournal:
    """Append-only, fsynced lines of ``events`` rows (see the module doc). One writer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._size = 0  # bytes of whole, synced lines
        self._torn = False  # the last write failed: cut the file back to _size first

    def open(self) -> EventJournal:
        """Open for appending (creating the file)."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._torn = False
        return self

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def size(self) -> int:
        """Bytes of whole lines written so far."""
        return self._size

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append ``rows`` (events-table column values) and sync before returning.

        Raises OSError if the file is closed or the write or sync fails; the rows are then
        not acknowledged, and the next append first cuts off whatever this one left.
        """
        if not rows:
            return
        # One line per append: the rows are acknowledged together, so a torn line loses only
        # rows nobody was told were durable; one json.dumps call is 3x faster than one per row.
        self.append_text(
            json.dumps(rows if isinstance(rows, list) else list(rows), separators=(",", ":"))
        )

    def append_text(self, text: str) -> None:
        """Append one line holding ``text`` (the JSON of one append's rows, see the module
        doc) and sync before returning; raises OSError as :meth:`append` does."""
        fd = self._fd
        if fd is None:
            raise OSError(f"journal {self.path} is not open")
        encoded = text.encode()
        data = memoryview(b"%08x %s\n" % (zlib.crc32(encoded), encoded))
        try:
            if self._torn:
                os.ftruncate(fd, self._size)
                self._torn = False
            total = len(data)
            while data:
                data = data[os.write(fd, data) :]
            _sync(fd)
        except OSError:
            self._torn = True
            raise
        self._size += total

    def read(self) -> list[list[Any]]:
        """Every intact row, in file order; damaged lines are skipped and logged."""
        return read_rows(self.path)

    def reset(self) -> None:
        """Empty the journal (after a checkpoint put everything it held in the main file)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            _sync(self._fd)
            self._size = 0
            self._torn = False
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(b"")
        os.replace(tmp, self.path)


def read_rows(path: str | os.PathLike[str]) -> list[list[Any]]:
    """Every intact row of the journal at ``path`` (none if it does not exist), in file order;
    damaged lines are skipped and logged. A row written with its chain hash has it appended
    (hex); rows of earlier versions have none. Reads the critical-only journal of earlier
    versions (``<db>.critical``, one row per line) too."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    rows: list[list[Any]] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        crc, _, text = raw.partition(b" ")
        try:
            if int(crc, 16) != zlib.crc32(text):
                raise ValueError("checksum mismatch")
            value = json.loads(text)
            if isinstance(value, dict):
                value = _chained_rows(value)
            if not isinstance(value, list) or not value:
                raise ValueError("not a row or a list of rows")
        except ValueError as exc:
            log.warning("event journal %s: line %d skipped (%s)", path, number, exc)
            continue
        if isinstance(value[0], list):
            rows.extend(value)  # one append's rows
        else:
            rows.append(value)  # one row (the critical-only journal of earlier versions)
    return rows


def _chained_rows(value: dict[str, Any]) -> list[list[Any]]:
    """The rows of a ``{"rows": [...], "chain": "<hex>"}`` line, each with its chain hash (64
    hex characters) appended; ValueError if the two do not fit."""
    rows, chain = value.get("rows"), value.get("chain")
    if not isinstance(rows, list) or not isinstance(chain, str) or len(chain) != 64 * len(rows):
        raise ValueError("rows and chain hashes do not match")
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise ValueError("a row is not a list")
        row.append(chain[64 * i : 64 * (i + 1)])
    return rows
