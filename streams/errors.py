"""The project's exception hierarchy.

Every error Seamless raises on purpose derives from :class:`SeamlessError`, so callers can
catch the project's failures without swallowing programming errors. Messages name the field,
the bad value and what was expected.
"""

from __future__ import annotations


class SeamlessError(Exception):
    """Root of every error raised by Seamless on purpose."""


class ConfigError(SeamlessError):
    """A configuration file or value is invalid (the message names the key path and value)."""


class PluginError(ConfigError):
    """An installed plugin (an entry point of a ``seamless.*`` group) is unknown, fails to
    import or does not satisfy its protocol; the message names the entry point, its
    distribution and the cause."""


class EventError(SeamlessError):
    """An event payload is malformed, of an unknown type, or violates its schema."""


class DataRejected(EventError):
    """Market data failed validation at the edge (NaN, non-positive, crossed, out of order)."""


class PersistenceError(SeamlessError):
    """The event log or snapshot store could not do what was asked (the data is safe)."""


class SnapshotCorrupted(PersistenceError):
    """A stored snapshot failed its checksum or could not be decoded."""


class LeaseLostError(PersistenceError):
    """This node no longer holds the lease on its book: it must not write or trade for it."""


class LeaseHeldError(SeamlessError):
    """Another node holds the lease on the book this node was asked to trade."""


class TransportError(SeamlessError):
    """The bus bridge to another process (NATS JetStream) failed or is misconfigured."""


class AccessDenied(SeamlessError):
    """An actor tried to write a state path it does not own, or use a command it may not."""


class InvalidTransition(SeamlessError):
    """A lifecycle state machine was asked for a transition its table does not allow."""


class BusClosed(SeamlessError):
    """An event was published to a bus that has been stopped."""
