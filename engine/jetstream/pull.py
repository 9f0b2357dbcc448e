"""A continuous pull from a durable JetStream consumer: events handed on as they arrive.

nats-py's ``fetch`` waits for a whole batch (or its timeout) once it has to wait at all, which
adds up to the timeout to an event's latency, and ``next_msg`` creates a task per message.
``PullSession`` instead keeps a pull request of ``batch`` messages outstanding on an inbox
subscription with a callback, so each message is handed on the moment it arrives. Each request
has its own reply subject (``<inbox>.<n>``); a new one is issued when the current one is used
up, ends (404/408 status), or has run three quarters of its ``expires``: the server serves
requests in order, so the overlap leaves no moment without one. (nats-server 2.9 sometimes
lets a request expire without its 408, just after a delivery; waiting for the 408 alone stalled
delivery for seconds.) Acks use AckAll on the last handled message whenever the local queue is
empty or every ``ack_every`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from engine.jetstream.client import NATS_ERRORS

log = logging.getLogger(__name__)


class PullEnded(Exception):
    """The pull cannot go on as it is (the caller rebuilds the consumer and starts again)."""


class PullSession:
    """One pull loop over consumer ``durable`` of ``stream``; ``run`` until it fails."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        *,
        batch: int,
        expires_s: float,
        ack_every: int,
    ) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._request = json.dumps({"batch": batch, "expires": int(expires_s * 1e9)}).encode()
        self._batch = batch
        self._expires = expires_s
        self._ack_every = ack_every
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._left = 0
        self._unacked: Msg | None = None
        self._pending = 0
        self._number = 0  # of the current pull request (its reply is <inbox>.<number>)
        self._renew_at = 0.0
        self._failed: asyncio.Future[None] | None = None
        self._handle: Callable[[Msg], None] = lambda msg: None

    async def run(self, handle: Callable[[Msg], None], still_ok: Callable[[], str | None]) -> None:
        """Hand each delivered message to ``handle`` (in order) until it raises, or until
        ``still_ok()`` (checked a few times a second) returns a reason to stop."""
        self._handle = handle
        self._failed = asyncio.get_running_loop().create_future()
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_msg)
        try:
            await self._renew()
            while True:
                wait = min(0.25, max(0.005, self._renew_at - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._failed), timeout=wait)
                reason = still_ok()
                if reason is not None:
                    raise PullEnded(reason)
                if time.monotonic() >= self._renew_at:
                    await self._renew()  # before the current request expires: no gap
        finally:
            await self._close()

    async def _renew(self) -> None:
        """Issue a new pull request (the current one may still run out its time)."""
        self._number += 1
        self._left = self._batch
        self._renew_at = time.monotonic() + self._expires * 0.75
        reply = f"{self._inbox}.{self._number}"
        await self._nc.publish(self._api, self._request, reply=reply)

    async def _on_msg(self, msg: Msg) -> None:
        failed = self._failed
        if failed is None or failed.done():
            return
        try:
            current = msg.subject == f"{self._inbox}.{self._number}"
            status = msg.headers.get("Status") if msg.headers and not msg.data else None
            if status is not None:
                log.debug("pull %s: %s status %s", self._api, msg.subject, status)
                if status in ("404", "408"):  # a request ran out: renew if it was the current
                    if current:
                        await self._renew()
                elif status != "100":  # not a heartbeat: 409 consumer deleted, ...
                    raise PullEnded(f"pull request ended with status {status}")
                return
            self._handle(msg)
            # A delivery names its stream subject, not the request it answers: count it against
            # the current request (an overlap only makes the next renewal a little early).
            self._unacked, self._pending, self._left = msg, self._pending + 1, self._left - 1
            if self._left == 0:
                await self._renew()
            sub = self._sub
            if self._pending >= self._ack_every or (sub is not None and sub.pending_msgs == 0):
                await self._ack()
        except Exception as exc:  # handed to run(), which re-raises it in the consumer's task
            failed.set_exception(exc)

    async def _ack(self) -> None:
        msg, self._unacked, self._pending = self._unacked, None, 0
        if msg is not None:
            await msg.ack()  # AckAll: acknowledges every earlier delivery too

    async def _close(self) -> None:
        try:
            if self._nc.is_connected:
                await self._ack()
                if self._sub is not None:
                    await self._sub.unsubscribe()
        except NATS_ERRORS as exc:
            log.debug("pull %s: cleanup failed: %s", self._api, exc)
