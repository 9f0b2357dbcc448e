"""The base of every event: identity, ordering, timing, and lossless dict round-trips.

Events are frozen dataclasses. Each concrete type declares, as class variables, its wire name
(``TYPE``), whether it is critical (committed to the log before anyone sees it), its schema
version, and where the default topic is fixed (``TOPIC``) or the latest event per topic is all
a view needs (``CONFLATED``), those too. Concrete types register themselves so
:func:`event_from_dict` can rebuild any event from its stored payload.
"""

from __future__ import annotations

import builtins
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

from streams.errors import EventError

_REGISTRY: dict[str, type[Event]] = {}
_HINTS: dict[type, dict[str, Any]] = {}
_CLONERS: dict[type, Any] = {}  # class -> generated copy-with-seq function (see with_seq)

#: Fields every event carries, in the order they appear in ``to_dict``.
ENVELOPE_FIELDS = (
    "type",
    "event_id",
    "seq",
    "ts_event",
    "ts_init",
    "topic",
    "schema_version",
    "correlation_id",
    "causation_id",
)

E = TypeVar("E", bound="Event")


_ID_POOL: list[str] = []  # fresh random ids, taken with list.pop (atomic under the GIL)
_ID_BATCH = 1024


def _refill_ids() -> None:
    # One os.urandom call per batch, not per event: each call releases the GIL, and on a busy
    # engine (the event-log writer thread) getting it back can cost a whole switch interval.
    raw = os.urandom(16 * _ID_BATCH).hex()
    _ID_POOL.extend([raw[i : i + 32] for i in range(0, 32 * _ID_BATCH, 32)])


if hasattr(os, "register_at_fork"):  # a forked child must never hand out its parent's ids
    os.register_at_fork(after_in_child=_ID_POOL.clear)


def _make_cloner(cls: type) -> Any:
    """``clone(event, seq)`` for ``cls``: a new instance with every field copied and ``seq``
    set, unrolled (generated, like dataclasses' own ``__init__``) so it costs a few attribute
    copies instead of a loop of ``getattr`` calls."""
    lines = ["def clone(event, seq):", "    copy = new(cls)"]
    for f in dataclasses.fields(cls):
        source = "seq" if f.name == "seq" else f"event.{f.name}"
        lines.append(f"    put(copy, {f.name!r}, {source})")
    lines.append("    return copy")
    namespace: dict[str, Any] = {"new": object.__new__, "put": object.__setattr__, "cls": cls}
    exec("\n".join(lines), namespace)
    return namespace["clone"]


def new_event_id() -> str:
    """A fresh random event id (32 hex chars); pass your own where replay must be deterministic."""
    while True:
        try:
            return _ID_POOL.pop()
        except IndexError:
            _refill_ids()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """An immutable fact that happened, with its identity and place in the global order.

    ``seq`` is 0 until the event log assigns it on append. ``ts_event`` is the market/clock time
    and ``ts_init`` the time the object was created, both integer nanoseconds since the epoch.
    ``topic`` is derived from the event's own fields when not given.
    """

    TYPE: ClassVar[str] = "event"
    CRITICAL: ClassVar[bool] = False
    SCHEMA_VERSION: ClassVar[int] = 1
    #: The topic of every event of this type, when it is fixed (else see ``default_topic``).
    TOPIC: ClassVar[str] = ""
    #: True when only the latest event per topic matters (``conflation_key`` is the topic).
    CONFLATED: ClassVar[bool] = False

    event_id: str = dataclasses.field(default_factory=new_event_id)
    seq: int = 0
    ts_event: int = 0
    ts_init: int = 0
    topic: str = ""
    schema_version: int = 0
    correlation_id: str | None = None
    causation_id: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        wire_name = cls.__dict__.get("TYPE")
        if wire_name:
            if wire_name in _REGISTRY and _REGISTRY[wire_name].__qualname__ != cls.__qualname__:
                raise EventError(f"event type {wire_name!r} registered twice")
            _REGISTRY[wire_name] = cls

    def __post_init__(self) -> None:
        if not self.topic:
            object.__setattr__(self, "topic", self.default_topic())
        if not self.schema_version:
            object.__setattr__(self, "schema_version", self.SCHEMA_VERSION)
        if not self.ts_init:
            object.__setattr__(self, "ts_init", self.ts_event)

    # -- identity --------------------------------------------------------------------------
    @property
    def type(self) -> str:
        """The wire name of this event type, e.g. ``trade_executed``."""
        return self.TYPE

    @property
    def critical(self) -> bool:
        """True if this event must be durable before it is applied or published."""
        return self.CRITICAL

    def default_topic(self) -> str:
        """The topic this event is published on when none is given: ``TOPIC`` if the type has
        a fixed one; types whose topic is built from a field override this."""
        return self.TOPIC or f"system.{self.TYPE}"

    def conflation_key(self) -> str | None:
        """Key under which a full bus may keep only the latest of these events; None = never."""
        return self.topic if self.CONFLATED else None

    def with_seq(self: E, seq: int) -> E:
        """A copy of this event with its log sequence number set (a hot path: no re-validation)."""
        clone = _CLONERS.get(type(self))
        if clone is None:
            clone = _CLONERS[type(self)] = _make_cloner(type(self))
        new: E = clone(self, seq)
        return new

    # -- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict holding every field; ``event_from_dict`` restores it exactly."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # dataclasses.fields() per call costs more than the copy itself
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        out: dict[str, Any] = {"type": self.TYPE}
        for name in names:
            value = getattr(self, name)
            out[name] = value if type(value) in _PLAIN else _to_plain(value)
        return out

    def payload(self) -> dict[str, Any]:
        """Only the type-specific fields (no envelope), JSON-ready."""
        return {
            f.name: _to_plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ENVELOPE_FIELDS
        }

    @classmethod
    def from_dict(cls: builtins.type[E], data: Mapping[str, Any]) -> E:
        """Rebuild an event of this class from ``to_dict`` output, validating every field.

        Raises :class:`EventError` naming the field and value when the payload is malformed.
        """
        if not isinstance(data, Mapping):
            raise EventError(f"event payload must be a mapping, got {type(data).__name__}")
        wire_name = data.get("type", cls.TYPE)
        if wire_name != cls.TYPE:
            raise EventError(f"payload type {wire_name!r} does not match {cls.__name__}")
        hints = _type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"type"})
        if unknown:
            raise EventError(f"{cls.TYPE}: unknown field(s) {unknown}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise EventError(f"{cls.TYPE}: missing required field {f.name!r}")
                continue
            kwargs[f.name] = _coerce(cls.TYPE, f.name, data[f.name], hints[f.name])
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise EventError(f"{cls.TYPE}: {exc}") from exc


def event_types() -> dict[str, type[Event]]:
    """All registered event types by wire name (a copy)."""
    return dict(_REGISTRY)


def event_class(wire_name: str) -> type[Event]:
    """The event class registered under ``wire_name``; EventError if there is none."""
    try:
        return _REGISTRY[wire_name]
    except KeyError:
        raise EventError(f"unknown event type {wire_name!r}") from None


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild any registered event from its ``to_dict`` form (dispatching on ``type``)."""
    if not isinstance(data, Mapping):
        raise EventError(f"event payload must be a mapping, got {type(data).__name__}")
    wire_name = data.get("type")
    if not isinstance(wire_name, str):
        raise EventError(f"event payload field 'type' must be a string, got {wire_name!r}")
    return event_class(wire_name).from_dict(data)


# -- helpers -------------------------------------------------------------------------------
def _type_hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


#: Field names per event class, in declaration order (filled on first use).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
#: Values that ``_to_plain`` returns unchanged.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def _coerce(type_name: str, field: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's annotation; convert lists back to tuples."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(type_name, field, value, option)
            except EventError:
                continue
        raise EventError(f"{type_name}: field {field!r} has invalid value {value!r}")
    if hint is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise EventError(f"{type_name}: field {field!r} must be a list, got {value!r}")
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_coerce(type_name, field, v, item) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise EventError(f"{type_name}: field {field!r} must be an object, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventError(f"{type_name}: field {field!r} must be a number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise EventError(f"{type_name}: field {field!r} must not be NaN")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventError(f"{type_name}: field {field!r} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise EventError(f"{type_name}: field {field!r} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise EventError(f"{type_name}: field {field!r} must be a string, got {value!r}")
        return value
    return value
