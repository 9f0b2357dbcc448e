"""How an event travels over JetStream: its subject, its headers and its payload.

- **Subject** ``<prefix>.<source>.<topic>``: the topics are already dotted NATS-style names
  (``fills.sma``, ``data.ticks.aapl``), so a remote consumer filters with the same patterns
  it would give the local bus (``seamless.book1.fills.*``). ``source`` is the book (the
  ``storage.stream``) whose log the event comes from. Every token is mapped to NATS-safe
  characters (no spaces, ``*``, ``>`` or empty tokens), so an unusual topic cannot become a
  wildcard or an invalid subject.
- **Headers** ``Nats-Msg-Id`` = ``event_id`` (JetStream drops a re-sent event inside its
  duplicate window), ``Seamless-Seq`` = the event's seq in its source's log (how the relay
  finds where to resume and how consumers drop duplicates) and ``Seamless-Source``.
- **Payload** ``Event.to_dict()`` as compact JSON; ``event_from_dict`` rebuilds an equal event
  (seq included) on the remote side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.errors import EventError
from streams.events import Event, event_from_dict

MSG_ID = "Nats-Msg-Id"
SEQ_HEADER = "Seamless-Seq"
SOURCE_HEADER = "Seamless-Source"

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode


def token(value: str) -> str:
    """``value`` as one NATS subject token: unsafe characters become ``_``, never empty."""
    return _UNSAFE.sub("_", value) or "_"


def subject_prefix(prefix: str, source: str) -> str:
    """``<prefix>.<source>``: every subject one source's events are published under."""
    return ".".join(token(part) for part in prefix.split(".")) + "." + token(source)


def subject_for(prefix: str, source: str, topic: str) -> str:
    """The subject an event of ``topic`` from ``source`` is published on."""
    return subject_prefix(prefix, source) + "." + ".".join(token(p) for p in topic.split("."))


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One event ready to publish."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    seq: int


def encode(event: Event, prefix: str, source: str) -> WireMessage:
    """The subject, payload and headers of ``event`` (which must carry its log seq)."""
    if event.seq <= 0:
        raise EventError(f"event {event.event_id!r} has no log seq (seq={event.seq!r})")
    headers = {MSG_ID: event.event_id, SEQ_HEADER: str(event.seq), SOURCE_HEADER: source}
    payload = _dumps(event.to_dict()).encode()
    return WireMessage(subject_for(prefix, source, event.topic), payload, headers, event.seq)


def encode_rows(columns: Mapping[str, list[Any]], prefix: str, source: str) -> list[WireMessage]:
    """Like ``encode`` for stored rows (``Recorder.read_df`` columns, see ``EVENT_COLUMNS``).

    The hot path of the relay: the stored payload JSON is spliced into the envelope as it is,
    so no event is rebuilt (and re-validated) just to be encoded again. The result decodes to
    the same event as ``encode`` of ``row_to_event`` (checked by the tests).
    """
    subjects: dict[str, str] = {}
    base = subject_prefix(prefix, source) + "."
    out = []
    for seq, event_id, ts_event, ts_init, topic, type_, version, payload, corr, cause in zip(
        columns["seq"],
        columns["event_id"],
        columns["ts_event"],
        columns["ts_init"],
        columns["topic"],
        columns["type"],
        columns["schema_version"],
        columns["payload"],
        columns["correlation_id"],
        columns["causation_id"],
        strict=True,
    ):
        fields = payload if isinstance(payload, str) else _dumps(payload)
        envelope = _dumps(
            {
                "type": type_,
                "event_id": event_id,
                "seq": seq,
                "ts_event": ts_event,
                "ts_init": ts_init,
                "topic": topic,
                "schema_version": version,
                "correlation_id": _text(corr),
                "causation_id": _text(cause),
            }
        )
        text = envelope if fields == "{}" else envelope[:-1] + "," + fields[1:]
        subject = subjects.get(topic)
        if subject is None:
            subject = subjects[topic] = base + ".".join(token(p) for p in topic.split("."))
        headers = {MSG_ID: event_id, SEQ_HEADER: str(seq), SOURCE_HEADER: source}
        out.append(WireMessage(subject, text.encode(), headers, seq))
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None  # NULL may come back as None or NaN


def decode(payload: bytes) -> Event:
    """The event carried by ``payload`` (EventError naming the problem if it is malformed)."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"JetStream payload is not JSON: {exc}") from exc
    return event_from_dict(data)


def header_seq(headers: Mapping[str, str] | None) -> int | None:
    """The ``Seamless-Seq`` header as an int, or None when it is missing or malformed."""
    value = (headers or {}).get(SEQ_HEADER)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
