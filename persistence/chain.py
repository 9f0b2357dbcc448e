"""The hash chain of the event log: every stored event carries ``chain_hash``, a SHA-256 over
the previous event's hash and its own canonical bytes, so a changed, deleted, inserted or
reordered row breaks the chain from that row on (``seamless verify`` finds the first one).

**Canonical bytes of a row.** The compact JSON array of its stored columns, in this order::

    [seq, event_id, ts_event, ts_init, topic, type, schema_version, critical, payload,
     correlation_id, causation_id]

exactly as Python's ``json.dumps(fields, separators=(",", ":"))`` writes it (ASCII only):
integers in decimal, ``critical`` as ``true``/``false``, a missing correlation or causation
id as ``null``, and every string as a JSON string literal -- the payload too, as the JSON
text stored in its column, character for character (so it appears escaped: ``"{\\"a\\":1}"``).
In a string literal ``"`` and ``\\`` are escaped with a backslash, newline, carriage return,
tab, backspace and form feed as ``\\n \\r \\t \\b \\f``, every other character below U+0020 and
every non-ASCII character as ``\\uXXXX`` (lowercase hex; a UTF-16 surrogate pair above
U+FFFF); nothing else is escaped (``/`` stays). No spaces anywhere. Example: the row
``(1, "e1", 10, 11, "t.x", "tick", 1, False, '{"a":1}', None, None)`` is
``[1,"e1",10,11,"t.x","tick",1,false,"{\\"a\\":1}",null,null]``.

**The chain.** ``hash(row) = SHA-256(hash(previous row) || canonical bytes(row))``, where
``hash`` is the 32-byte digest, ``||`` concatenation, and the previous row is the stored row
with the next lower ``seq`` (of the same stream, in PostgreSQL, where each stream -- one
engine's book -- has its own chain). The first row's previous hash is :data:`GENESIS`, 32
zero bytes. ``chain_hash`` holds the 32-byte digest (BLOB in DuckDB, bytea in PostgreSQL);
reports, snapshots and the journal write it as 64 lowercase hex characters. A seq PostgreSQL
left unused (a late duplicate it dropped) is not a row: the chain passes over it.

**Where it is computed.** On the log's writer thread, in seq order, as a commit is written
(:func:`link_rows`; for DuckDB the canonical texts, which are the rows' JSON arrays, then
make the journal line, which carries the hashes, so a crash recovery puts them back), never
on the thread that appends. A snapshot records the chain head at its seq (``chain_head``: the
hash of the last stored row at or below it; :data:`GENESIS` in hex for none).

**What it proves.** That the rows are the ones written, in that order, from the first up to a
head you trust: whoever can write the file can also recompute every hash after a change, so
keep the head ``seamless verify`` prints (snapshots record it too, and a mismatch with them
is reported), e.g. in another system.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, ClassVar

from persistence.codec import EVENT_COLUMNS
from persistence.queries import EventFilter, non_negative
from persistence.reads import LogReads

#: The previous hash of the first row: 32 zero bytes.
GENESIS = bytes(32)
#: :data:`GENESIS` as stored (64 zeros): the chain head of a log with no rows.
GENESIS_HEX = GENESIS.hex()
#: The column holding each row's hash.
CHAIN_COLUMN = "chain_hash"
#: The stored columns of an event row, in order: ``EVENT_COLUMNS`` then ``chain_hash``.
STORED_COLUMNS = (*EVENT_COLUMNS, CHAIN_COLUMN)

Row = Sequence[Any]

_sha256 = hashlib.sha256
_esc = encode_basestring_ascii
_TEMPLATE = "[%d,%s,%d,%d,%s,%s,%d,%s,%s,%s,%s]"
_BOOL = ("false", "true")


def canonical_text(row: Row) -> str:
    """The canonical text of ``row`` (its first 11 values in ``EVENT_COLUMNS`` order); TypeError
    or IndexError for a value of the wrong type. :func:`link_rows` inlines the same format in
    its loop: it runs on the writer's hot path."""
    seq, event_id, ts_event, ts_init, topic, type_, version, critical, payload, corr, cause = row[
        :11
    ]
    return _TEMPLATE % (
        seq,
        _esc(event_id),
        ts_event,
        ts_init,
        _esc(topic),
        _esc(type_),
        version,
        _BOOL[critical],
        _esc(payload),
        "null" if corr is None else _esc(corr),
        "null" if cause is None else _esc(cause),
    )


def canonical(row: Row) -> bytes:
    """The canonical bytes of ``row``: :func:`canonical_text`, ASCII-encoded."""
    return canonical_text(row).encode()


def link(previous: bytes, row: Row) -> bytes:
    """The 32-byte hash of ``row`` following a row whose hash is ``previous``."""
    return _sha256(previous + canonical(row)).digest()


def link_rows(head: bytes, rows: Iterable[Row]) -> tuple[list[str], list[bytes], bytes]:
    """Chain ``rows`` (``EVENT_COLUMNS`` order, by seq) on from ``head``: each row's canonical
    text, each row's hash (32 bytes), and the new head (the last row's hash, or ``head``)."""
    texts: list[str] = []
    digests: list[bytes] = []
    add_text, add = texts.append, digests.append
    esc, sha, template, boolean = _esc, _sha256, _TEMPLATE, _BOOL
    for row in rows:
        seq, event_id, ts_event, ts_init, topic, type_, version, critical, payload, corr, cause = (
            row
        )
        text = template % (
            seq,
            esc(event_id),
            ts_event,
            ts_init,
            esc(topic),
            esc(type_),
            version,
            boolean[critical],
            esc(payload),
            "null" if corr is None else esc(corr),
            "null" if cause is None else esc(cause),
        )
        head = sha(head + text.encode()).digest()
        add_text(text)
        add(head)
    return texts, digests, head


def journal_line(texts: Sequence[str], digests: Sequence[bytes]) -> str:
    """The JSON text of one event-journal line for chained rows (their canonical texts, which
    are their JSON arrays, and their hashes): ``{"rows": [...], "chain": "<hex>"}``. One join
    instead of a ``json.dumps`` of the rows: the hashing paid for the texts already."""
    return '{"rows":[' + ",".join(texts) + '],"chain":"' + b"".join(digests).hex() + '"}'


def head_bytes(stored: bytes | None) -> bytes:
    """A stored hash as the 32 bytes the next row chains on from (GENESIS for None)."""
    return GENESIS if stored is None else bytes(stored)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What ``verify_chain`` found. ``ok``: every row chains on from the one before and every
    snapshot's recorded head matches. ``events`` rows were checked, up to ``last_seq``, whose
    hash is ``head`` (the last verified row's). ``snapshots_checked``: snapshot heads
    compared. When not ok, ``first_bad_seq`` is the first seq that is wrong (changed,
    missing, inserted or out of order) and ``reason`` says what was found."""

    ok: bool
    events: int
    last_seq: int
    head: str
    snapshots_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


class ChainCheck:
    """Checks a log's rows (``STORED_COLUMNS`` order, by seq, fed in batches) against their
    stored hashes, and the chain heads recorded by snapshots (``(id, seq, chain_head)``)."""

    def __init__(self, snapshots: Iterable[tuple[int, int, str | None]] = ()) -> None:
        self._snapshots = sorted(
            (s for s in snapshots if s[2] is not None), key=lambda s: (s[1], s[0])
        )
        self._next_snapshot = 0
        self._good_snapshot_seq = 0  # the seq of the last snapshot whose head matched
        self.head = GENESIS
        self.last_seq = 0
        self.events = 0
        self.snapshots_checked = 0
        self.first_bad_seq: int | None = None
        self.reason: str | None = None

    @property
    def ok(self) -> bool:
        """False once something wrong was found (feeding more rows changes nothing then)."""
        return self.first_bad_seq is None

    def feed(self, rows: Iterable[Row]) -> bool:
        """Check the next rows; False (and ``first_bad_seq`` set) at the first wrong one."""
        if not self.ok:
            return False
        snapshots, sha = self._snapshots, _sha256
        head, last_seq, events = self.head, self.last_seq, self.events
        try:
            for row in rows:
                seq = row[0]
                while (
                    self._next_snapshot < len(snapshots) and snapshots[self._next_snapshot][1] < seq
                ):
                    self.head, self.last_seq = head, last_seq
                    if not self._check_snapshot():
                        return False
                try:
                    text = canonical_text(row)
                except (TypeError, IndexError):
                    text = ""  # a value of the wrong type (a NULL): cannot match
                stored = row[11]
                digest = sha(head + text.encode()).digest()
                if stored != digest:
                    self._row_failed(seq, last_seq, stored)
                    return False
                head, last_seq = digest, seq
                events += 1
        finally:  # the last row that chained correctly
            self.head, self.last_seq, self.events = head, last_seq, events
        return True

    def finish(self) -> ChainReport:
        """Check the snapshots at or after the last row, and report."""
        while self.ok and self._next_snapshot < len(self._snapshots):
            self._check_snapshot()
        return ChainReport(
            ok=self.ok,
            events=self.events,
            last_seq=self.last_seq,
            head=self.head.hex(),
            snapshots_checked=self.snapshots_checked,
            first_bad_seq=self.first_bad_seq,
            reason=self.reason,
        )

    def _row_failed(self, seq: int, last_seq: int, stored: object) -> None:
        if seq <= last_seq:
            self.first_bad_seq = seq
            self.reason = f"seq {seq} comes after seq {last_seq} (rows out of order)"
        elif seq > last_seq + 1:
            missing = f"{last_seq + 1}" if seq == last_seq + 2 else f"{last_seq + 1}..{seq - 1}"
            self.first_bad_seq = last_seq + 1
            self.reason = (
                f"seq {missing} missing: the next stored row (seq {seq}) does not chain on "
                f"from seq {last_seq} (deleted rows)"
            )
        elif stored is None:
            self.first_bad_seq = seq
            self.reason = f"seq {seq} has no chain hash (a row written outside the log)"
        else:
            self.first_bad_seq = seq
            self.reason = (
                f"seq {seq} does not match its chain hash (the row was changed, inserted or moved)"
            )

    def _check_snapshot(self) -> bool:
        snapshot_id, seq, recorded = self._snapshots[self._next_snapshot]
        self._next_snapshot += 1
        self.snapshots_checked += 1
        if recorded == self.head.hex():
            self._good_snapshot_seq = seq
            return True
        if seq > self.last_seq:
            self.first_bad_seq = self.last_seq + 1
            self.reason = (
                f"snapshot {snapshot_id} covers seq {seq} but its chain head differs from "
                f"the last stored row's (seq {self.last_seq}): events after seq "
                f"{self.last_seq} were deleted (or the log rewritten before it)"
            )
        else:
            self.first_bad_seq = self._good_snapshot_seq + 1
            self.reason = (
                f"snapshot {snapshot_id} recorded another chain head at seq {seq}: the log "
                f"was rewritten between seq {self._good_snapshot_seq + 1} and {seq} (every "
                "hash recomputed), or the snapshot's chain_head was changed"
            )
        return False


class ChainAudit(LogReads):
    """The reads of an event log (:class:`~persistence.reads.LogReads`) plus
    ``verify_chain``, ``chain_head_at`` and ``iter_chain_rows``, for both backends. The backend
    also supplies ``_chain_select_sql`` (the ``STORED_COLUMNS``, payload as its JSON text) and
    ``_snapshot_chain_heads`` (from its snapshot store)."""

    _chain_select_sql: ClassVar[str]

    if TYPE_CHECKING:  # supplied by the backend's snapshot store (a stub here would shadow it)

        def _snapshot_chain_heads(self) -> list[tuple[int, int, str | None]]: ...

    def chain_head_at(self, seq: int) -> str:
        """The chain hash of the last stored row with a seq at or below ``seq`` (the chain
        head a snapshot covering ``seq`` records); ``GENESIS_HEX`` if there is none."""
        if seq <= 0:
            return GENESIS_HEX
        # The row at seq itself (there is one unless PostgreSQL left a hole): a range of one
        # seq, which DuckDB answers from one row group; else the last row below it.
        where, params = self._where(EventFilter(seq - 1, seq))
        rows = self._fetch(f"SELECT {CHAIN_COLUMN} FROM events WHERE {where}", params)
        if not rows:
            where, params = self._where(EventFilter(0, seq))
            rows = self._fetch(
                f"SELECT {CHAIN_COLUMN} FROM events WHERE {where} ORDER BY seq DESC LIMIT 1",
                params,
            )
        return GENESIS_HEX if not rows or rows[0][0] is None else bytes(rows[0][0]).hex()

    def iter_chain_rows(
        self, batch_size: int = 50_000, until_seq: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The stored rows (``STORED_COLUMNS``) by seq, in batches of at most ``batch_size``
        seqs (each one query over a seq range: the log is never loaded whole)."""
        size = non_negative("batch_size", batch_size) or 1
        if until_seq is None:
            where, params = self._where(EventFilter())
            top = self._fetch(f"SELECT coalesce(max(seq), 0) FROM events WHERE {where}", params)
            until_seq = int(top[0][0]) if top else 0
        low = 0
        while low < until_seq:
            high = min(low + size, until_seq)
            where, params = self._where(EventFilter(low, high))
            rows = self._fetch(f"{self._chain_select_sql} WHERE {where} ORDER BY seq", params)
            if rows:
                yield rows
            low = high

    def verify_chain(self, batch_size: int = 50_000) -> ChainReport:
        """Recompute the chain over every stored row, in seq order and in batches, and check
        each row's stored hash and each snapshot's recorded head (see the module doc)."""
        self.flush()
        check = ChainCheck(self._snapshot_chain_heads())
        for rows in self.iter_chain_rows(batch_size):
            if not check.feed(rows):
                break
        return check.finish()
