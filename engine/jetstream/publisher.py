"""Publishing a batch to JetStream and waiting for every ack, cheaply.

nats-py's ``JetStreamContext.publish_async`` costs a semaphore, a future and a done-callback
per message, which caps the relay at a few thousand events per second on a small box. A
batch needs less: every message is published with a reply subject ``<inbox>.<batch>.<i>`` and
one subscription counts the acks of the current batch, noting duplicates and errors. A batch
completes when every message is acked; an error ack (or a no-responders status, which means
no stream captures the subject) fails it, and so do a lost connection and the timeout. Acks
of an older, failed batch are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from engine.jetstream.wire import WireMessage
from streams.errors import TransportError


@dataclass
class _Batch:
    number: int
    expected: int
    done: asyncio.Future[None]
    acked: int = 0
    duplicates: int = 0


class BatchPublisher:
    """Publishes batches over one connection, one batch at a time (use on the client's loop)."""

    def __init__(self) -> None:
        self._nc: Client | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._number = 0
        self._batch: _Batch | None = None

    async def _subscribe(self, nc: Client) -> None:
        if self._nc is nc and self._sub is not None:
            return
        self._inbox = nc.new_inbox()
        self._sub = await nc.subscribe(self._inbox + ".>", cb=self._on_ack)
        self._nc = nc

    async def publish(self, nc: Client, messages: Sequence[WireMessage], timeout: float) -> int:
        """Publish ``messages`` in order; wait until all are acked. How many were duplicates."""
        await self._subscribe(nc)
        self._number += 1
        batch = self._batch = _Batch(
            self._number, len(messages), asyncio.get_running_loop().create_future()
        )
        prefix = f"{self._inbox}.{batch.number}."
        for i, message in enumerate(messages):
            await nc.publish(
                message.subject, message.payload, reply=prefix + str(i), headers=message.headers
            )
        deadline = time.monotonic() + timeout
        try:
            while not batch.done.done():
                # Fail at once when the connection drops: its acks will never come.
                if not nc.is_connected:
                    raise TransportError(
                        f"NATS connection lost with {batch.acked} of {batch.expected} acked"
                    )
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"JetStream acked {batch.acked} of {batch.expected} messages in {timeout}s"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(batch.done), 0.05)
            batch.done.result()
        finally:
            self._batch = None
        return batch.duplicates

    async def _on_ack(self, msg: Msg) -> None:
        batch = self._batch
        if batch is None or batch.done.done():
            return
        parts = msg.subject.rsplit(".", 2)
        if len(parts) != 3 or parts[1] != str(batch.number):
            return  # an ack of an earlier batch that failed
        error = None
        if not msg.data:
            status = (msg.headers or {}).get("Status", "")
            error = "no stream captures the subject" if status == "503" else f"status {status}"
        else:
            try:
                ack = json.loads(msg.data)
            except ValueError:
                ack = {"error": {"description": f"unreadable ack {msg.data[:80]!r}"}}
            if "error" in ack:
                error = str(ack["error"].get("description", ack["error"]))
            elif ack.get("duplicate"):
                batch.duplicates += 1
        if error is not None:
            batch.done.set_exception(TransportError(f"JetStream refused a message: {error}"))
            return
        batch.acked += 1
        if batch.acked == batch.expected:
            batch.done.set_result(None)
