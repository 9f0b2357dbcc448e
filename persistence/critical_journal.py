"""A second, independent record of every committed critical event, beside the DuckDB file.

DuckDB checksums its write-ahead log; a single flipped byte makes it refuse the file, or
(measured here) silently stop replaying at the damaged entry, dropping every later commit. So
the event log's writer also appends each committed critical row here — one line per row, with
its own CRC32, fsynced before any waiter is released — and ``EventLog.open`` restores from it
whatever critical event the database does not hold. Non-critical events are not kept here:
after such a repair they may be missing, leaving holes in ``seq`` (reported).

Line format: ``<crc32 hex> <json array of the events-table columns>``. A torn last line (a
crash mid-write) fails its CRC and is ignored; it was never acknowledged.
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


class CriticalJournal:
    """Append-only, fsynced lines of critical ``events`` rows (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: Any = None

    def open(self) -> CriticalJournal:
        """Open for appending (creating the file)."""
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the log's lifetime
        return self

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def append(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append ``rows`` (events-table column values) and fsync before returning."""
        if not rows or self._file is None:
            return
        lines = []
        for row in rows:
            text = json.dumps(list(row), separators=(",", ":"))
            lines.append(f"{zlib.crc32(text.encode()):08x} {text}\n".encode())
        self._file.write(b"".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    def read(self) -> list[list[Any]]:
        """Every intact row, in file order; damaged lines are skipped and logged."""
        try:
            data = self.path.read_bytes()
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
                row = json.loads(text)
            except ValueError as exc:
                log.warning("critical journal %s: line %d skipped (%s)", self.path, number, exc)
                continue
            rows.append(row)
        return rows

    def reset(self) -> None:
        """Empty the journal (after a checkpoint put everything it held in the main file)."""
        was_open = self._file is not None
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(b"")
        os.replace(tmp, self.path)
        if was_open:
            self.open()
