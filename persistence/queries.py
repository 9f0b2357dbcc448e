"""Translation of read filters into a SQL WHERE clause with bound parameters (and
:func:`non_negative`, the check of a read's ``limit`` or ``batch_size``).

Nothing a caller passes is ever formatted into SQL: values go in as parameters, and topic
patterns are first validated by :func:`streams.topics.validate_pattern` (so a hostile string
such as ``x' OR 1=1 --`` raises EventError) and then matched with ``starts_with`` on the literal
prefix plus a full match of the whole pattern's regex. :class:`Dialect` holds the few SQL
spellings that differ between the backends (DuckDB ``?`` placeholders and list functions,
PostgreSQL ``%s`` placeholders, ``~`` and ``= ANY``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.errors import PersistenceError
from streams.topics import validate_pattern


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a read wants: ``since_seq < seq <= until_seq``, a topic pattern, wire
    type names, and ``start_ns <= ts_event < end_ns``. None means no bound."""

    since_seq: int = 0
    until_seq: int | None = None
    topic: str | None = None
    types: Iterable[str] | None = None
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one SQL backend spells the clauses ``build_where`` emits (``{p}`` = a placeholder)."""

    placeholder: str
    starts_with: str
    full_match: str
    one_of: str
    #: Wraps the full-match regex (PostgreSQL's ``~`` searches, so it is anchored there).
    anchor: str = "{}"

    def sql(self, template: str) -> str:
        """``template`` with every ``{p}`` replaced by the placeholder."""
        return template.replace("{p}", self.placeholder)


DUCKDB = Dialect(
    placeholder="?",
    starts_with="starts_with(topic, {p})",
    full_match="regexp_full_match(topic, {p})",
    one_of="list_contains({p}::VARCHAR[], type)",
)
POSTGRES = Dialect(
    placeholder="%s",
    starts_with="starts_with(topic, {p})",
    full_match="topic ~ {p}",
    one_of="type = ANY({p}::text[])",
    anchor="^(?:{})$",
)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PersistenceError(f"{name} must be an integer, got {value!r}")
    return value


def topic_regex(pattern: str) -> tuple[str, str]:
    """``(literal prefix, full-match regex)`` for a validated wildcard topic pattern."""
    parts = validate_pattern(pattern).split(".")
    regex: list[str] = []
    prefix: list[str] = []
    literal = True
    for part in parts:
        if part == "*":
            regex.append(r"[^.]+")
            literal = False
        elif part in (">", "**"):
            regex.append(r"[^.]+(\.[^.]+)*")
            literal = False
        else:
            regex.append(re.escape(part))
            if literal:
                prefix.append(part + ".")
    return "".join(prefix), r"\.".join(regex)


def build_where(f: EventFilter, dialect: Dialect = DUCKDB) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) and its parameters for ``f``, in ``dialect``."""
    p = dialect.placeholder
    clauses = [f"seq > {p}"]
    params: list[Any] = [_int("since_seq", f.since_seq)]
    if f.until_seq is not None:
        clauses.append(f"seq <= {p}")
        params.append(_int("until_seq", f.until_seq))
    if f.topic is not None:
        if "*" in f.topic or ">" in f.topic:
            prefix, regex = topic_regex(f.topic)
            if prefix:
                clauses.append(dialect.sql(dialect.starts_with))
                params.append(prefix)
            clauses.append(dialect.sql(dialect.full_match))
            params.append(dialect.anchor.format(regex))
        else:
            clauses.append(f"topic = {p}")
            params.append(validate_pattern(f.topic))
    if f.types is not None:
        names = [f.types] if isinstance(f.types, str) else list(f.types)
        for name in names:
            if not isinstance(name, str):
                raise PersistenceError(f"types must be strings, got {name!r}")
        clauses.append(dialect.sql(dialect.one_of))
        params.append(names)
    if f.start_ns is not None:
        clauses.append(f"ts_event >= {p}")
        params.append(_int("start_ns", f.start_ns))
    if f.end_ns is not None:
        clauses.append(f"ts_event < {p}")
        params.append(_int("end_ns", f.end_ns))
    return " AND ".join(clauses), params


def non_negative(name: str, value: int) -> int:
    """``value`` if it is an int >= 0, else PersistenceError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PersistenceError(f"{name} must be a non-negative integer, got {value!r}")
    return value
