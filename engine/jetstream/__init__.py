"""The JetStream bridge of the bus: committed events relayed to NATS, consumed remotely.

- :class:`OutboxRelay` (``relay.py``): the event log is the outbox; committed events are
  published to ``<prefix>.<source>.<topic>`` with ``Nats-Msg-Id = event_id``, resuming after
  a crash from the last seq JetStream holds. ``start_relay(config, recorder)`` is what the
  kernel calls for ``bus.transport: jetstream``.
- :class:`RemoteEventSource` (``remote.py``): a durable consumer on another process or host
  that hands the same events, in order, once each, to a callback or a local ``EventBus``.
- ``client.py``: nats-py's asyncio client on its own loop thread, with a synchronous facade.
- ``wire.py``: subjects, headers and payloads.
"""

from engine.jetstream.client import NatsClient
from engine.jetstream.relay import OutboxRelay, ensure_stream, start_relay
from engine.jetstream.remote import RemoteEventSource, follow_book
from engine.jetstream.wire import decode, encode, subject_for

__all__ = [
    "NatsClient",
    "OutboxRelay",
    "RemoteEventSource",
    "decode",
    "encode",
    "ensure_stream",
    "follow_book",
    "start_relay",
    "subject_for",
]
