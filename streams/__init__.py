"""Events, topics, the event bus and the Rx operators consumers compose with.

The lowest layer of Seamless: it imports only the standard library and reactivex.
"""

from streams.errors import (
    AccessDenied,
    BusClosed,
    ConfigError,
    DataRejected,
    EventError,
    InvalidTransition,
    PersistenceError,
    SeamlessError,
    SnapshotCorrupted,
)
from streams.events import Event, event_from_dict

__all__ = [
    "AccessDenied",
    "BusClosed",
    "ConfigError",
    "DataRejected",
    "Event",
    "EventError",
    "InvalidTransition",
    "PersistenceError",
    "SeamlessError",
    "SnapshotCorrupted",
    "event_from_dict",
]
