"""A NATS connection on its own asyncio loop, behind a thread-safe synchronous facade.

nats-py is asyncio-only, while the engine is threaded (one dispatcher thread, the event-log
writer, feeds). ``NatsClient`` runs one event loop in a daemon thread; any thread hands it a
coroutine with ``call`` (wait for the result, with a timeout) or ``submit`` (a background
task). Every NATS failure surfaces as :class:`~streams.errors.TransportError`, so callers
catch one project error instead of nats-py's many.

The connection reconnects by itself for ever (``max_reconnect_attempts=-1``); while it is
away ``connected`` is False. A first connect that fails raises; the caller retries later.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from streams.errors import TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What nats-py (and the loop) raise on a failed or timed-out operation.
NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    asyncio.TimeoutError,
    concurrent.futures.TimeoutError,
    OSError,
)


class NatsClient:
    """One NATS connection (and its JetStream context) owned by a private event-loop thread.

    ``url`` is a ``nats://host:port`` address (comma-separated for a cluster). Thread-safe:
    ``call``/``submit`` may be used from any thread; the coroutines they run execute on the
    client's loop, where ``connection()`` gives the live connection.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "seamless",
        connect_timeout_s: float = 2.0,
        reconnect_wait_s: float = 0.25,
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise TransportError(f"bus.nats_url must be a non-empty nats:// URL, got {url!r}")
        self.url = url
        self.name = name
        self._connect_timeout = connect_timeout_s
        self._reconnect_wait = reconnect_wait_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"nats-{name}", daemon=True)
        self._started = False
        self._closed = False
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.last_error: str | None = None
        self.disconnects = 0

    # -- the loop thread ---------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> NatsClient:
        """Start the loop thread (no connection yet: that happens on first use)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the client's loop in the background; its future."""
        if self._closed:
            coro.close()
            raise TransportError(f"NATS client {self.name!r} is closed")
        self.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the client's loop and return its result (TransportError on failure)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except NATS_ERRORS as exc:
            future.cancel()
            raise TransportError(f"NATS {self.url}: {_describe(exc)}") from exc

    # -- the connection (use on the loop) ------------------------------------------------------
    @property
    def problem(self) -> str | None:
        """Why the connection is not up (the last connect error), or None while it is."""
        if self.connected:
            return None
        return f"cannot connect to NATS {self.url}: {self.last_error or 'not connected'}"

    @property
    def connected(self) -> bool:
        """True while the connection is up (not connecting, reconnecting or closed)."""
        nc = self._nc
        return nc is not None and nc.is_connected

    async def connection(self) -> tuple[Client, JetStreamContext]:
        """The live connection and JetStream context, connecting first if there is none."""
        nc = self._nc
        if nc is not None and not nc.is_closed and self._js is not None:
            return nc, self._js
        nc = Client()
        try:
            # nats-py retries a first connect for ever when reconnects are unlimited: bound it,
            # so the caller sees the failure (and reports it) and retries on its own schedule.
            await asyncio.wait_for(
                nc.connect(
                    self.url,
                    name=self.name,
                    connect_timeout=self._connect_timeout,  # type: ignore[arg-type]
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                timeout=self._connect_timeout,
            )
        except NATS_ERRORS as exc:
            with contextlib.suppress(*NATS_ERRORS):
                await nc.close()
            reason = self.last_error or _describe(exc)
            self.last_error = reason
            raise TransportError(f"cannot connect to NATS {self.url}: {reason}") from exc
        self._nc, self._js = nc, nc.jetstream()
        self.last_error = None
        return nc, self._js

    async def _on_error(self, exc: Exception) -> None:
        self.last_error = _describe(exc)
        log.debug("NATS %s: %s", self.url, self.last_error)

    async def _on_disconnect(self) -> None:
        self.disconnects += 1
        log.info("NATS %s: disconnected", self.url)

    async def _on_reconnect(self) -> None:
        log.info("NATS %s: reconnected", self.url)

    async def _close_connection(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), timeout=2.0)
            except NATS_ERRORS as exc:
                log.debug("NATS %s: close failed: %s", self.url, _describe(exc))
        # Let what is left (subscription readers, consumers) finish before the loop stops.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        """Close the connection and stop the loop thread (idempotent)."""
        if self._closed:
            return
        if self._started:
            try:
                self.call(self._close_connection(), timeout=5.0)
            except TransportError as exc:
                log.debug("%s", exc)
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
        self._closed = True
        if not self._thread.is_alive():
            self._loop.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
