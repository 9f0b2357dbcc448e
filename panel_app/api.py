"""HTTP endpoints next to the dashboard, for notebooks, scripts and uptime monitors.

* ``GET /api/state[?path=a.b]`` - the state snapshot: ``{seq, version, age_s, state}``.
* ``GET /api/health`` - engine, bus, event log and feed status with heartbeat ages and ``ok``
  (HTTP 503 when not ok).
* ``GET /api/events[?topic=pattern]`` - Server-Sent Events of bus events matching the topic
  pattern (default ``>``, everything). ``id:`` is the event's seq; with ``Last-Event-ID`` (or
  ``?last_event_id=``) the stream first replays matching events with a larger seq from the
  event log, then continues live with no gap and no duplicate. A ``: heartbeat`` comment is
  sent when idle. A client that falls ``sse_queue_size`` events behind is sent an
  ``event: overflow`` and disconnected: it reconnects with its last id and catches up from
  the log. The engine thread only appends to a bounded buffer; it never waits for a client.
  A client is written to at most every ``access.sse_flush_interval_s`` (default 20 ms): the
  events of that moment go in one write. The clients of one topic pattern share one bus
  subscription and the same encoded bytes (:class:`panel_app.sse.SseHub`).
* ``POST /api/command`` - ``{"command": ..., "args": {...}}`` as the caller (operators only;
  a refusal is audited as ``command_refused``).

Every endpoint needs a session cookie or ``Authorization: Bearer <token>`` (401 otherwise);
errors are JSON ``{"error": message}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from panel_app.auth import AccessGate, issue_command
from panel_app.facade import EngineFacade, Identity, StateStore
from panel_app.sse import FORCE_CLOSE_AFTER_S, SseClient, SseHub, dumps, replay
from streams import topics
from streams.errors import EventError

log = logging.getLogger(__name__)

KernelProvider = Callable[[], EngineFacade | None]
_MAX_BODY = 64 * 1024


def api_routes(
    kernel: KernelProvider, gate: AccessGate, prefix: str = "/api", hub: SseHub | None = None
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """Tornado routes for ``pn.serve(extra_patterns=...)`` / ``panel serve --plugins``.

    ``kernel`` is called per request and returns the process's engine. ``hub``: the SSE
    fan-out every ``/events`` client of the server shares (default: a new one).
    """
    opts = {"kernel": kernel, "gate": gate}
    if hub is None:
        hub = SseHub(gate.access.sse_flush_interval_s, gate.access.sse_queue_size)
    return [
        (f"{prefix}/state", StateHandler, opts),
        (f"{prefix}/health", HealthHandler, opts),
        (f"{prefix}/events", EventsHandler, {**opts, "hub": hub}),
        (f"{prefix}/command", CommandHandler, opts),
        (f"{prefix}/cluster", ClusterHandler, opts),
    ]


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose ``message`` is safe to show the client (it goes in the JSON)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code)
        self.message = message[:300]


class ApiHandler(tornado.web.RequestHandler):
    """Authenticates in ``prepare`` and turns every error into a JSON body."""

    def initialize(self, kernel: KernelProvider, gate: AccessGate) -> None:
        self._kernel_provider = kernel
        self.gate = gate
        self.identity: Identity | None = None

    def prepare(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.identity = self.gate.identify(self)
        if self.identity is None:
            raise ApiError(401, "authentication required")

    @property
    def kernel(self) -> Any:
        """The engine, or 503 if there is none."""
        try:
            kernel = self._kernel_provider()
        except Exception as exc:
            log.exception("api: no engine")
            raise ApiError(503, "engine unavailable") from exc
        if kernel is None:
            raise ApiError(503, "engine unavailable")
        return kernel

    def write_json(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON (non-finite floats become null)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Only the reason we chose (or the standard phrase): never exception text.
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="seamless"')
        self.set_header("Content-Type", "application/json; charset=utf-8")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, ApiError) else self._reason
        self.finish(json.dumps({"error": message, "status": status_code}))

    def bad_request(self, message: str) -> ApiError:
        """A 400 whose message names the parameter and the bad value."""
        return ApiError(400, message)


class StateHandler(ApiHandler):
    """``GET /api/state``: the consistent state snapshot with its seq, version and age."""

    def get(self) -> None:
        store = self.kernel.store
        path = self.get_query_argument("path", "")
        seq, version, state = store.snapshot()
        updated_ns = _updated_ns(store)
        body: dict[str, Any] = {
            "seq": seq,
            "version": version,
            "updated_at_ns": updated_ns or None,
            "age_s": round((time.time_ns() - updated_ns) / 1e9, 3) if updated_ns else None,
        }
        if path:
            if len(path) > 200 or not all(path.split(".")):
                raise self.bad_request(f"path: invalid value {path[:50]!r}")
            node: Any = state
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ApiError(404, f"no state at {path!r}")
                node = node[part]
            body["path"] = path
            body["value"] = node
        else:
            body["state"] = state
        self.write_json(body)


class HealthHandler(ApiHandler):
    """``GET /api/health``: the kernel's health report plus ``ok``; 503 when not ok (the event
    log cannot write or the runner faulted), so plain uptime monitors can alarm on status."""

    def get(self) -> None:
        report = dict(self.kernel.health())
        if "ok" not in report:
            event_log = report.get("event_log") or {}
            engine = report.get("engine") or {}
            report["ok"] = event_log.get("healthy") is not False and engine.get("runner") != (
                "faulted"
            )
        self.write_json(report, 200 if report["ok"] else 503)


class ClusterHandler(ApiHandler):
    """``GET /api/cluster``: every book of a shared log with its lease and account (mirror
    mode, see docs/scale-out.md); 404 when this server has no cluster view."""

    def get(self) -> None:
        cluster = getattr(self.kernel, "cluster", None)
        if cluster is None:
            raise ApiError(404, "no cluster view here: serve with --mirror and backend postgres")
        self.write_json({"books": cluster.summary()})


class CommandHandler(ApiHandler):
    """``POST /api/command``: issue a runner command as the authenticated caller."""

    def check_xsrf_cookie(self) -> None:
        return None  # JSON-only plus the Origin check below does the job for cookie sessions

    def post(self) -> None:
        assert self.identity is not None
        if "json" not in self.request.headers.get("Content-Type", ""):
            raise ApiError(415, "expected Content-Type: application/json")
        origin = self.request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != self.request.host:
            raise ApiError(403, "cross-origin command refused")
        if len(self.request.body) > _MAX_BODY:
            raise ApiError(413, "request body too large")
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deep to decode
            raise self.bad_request("body: expected a JSON object") from None
        command = body.get("command") if isinstance(body, dict) else None
        args = body.get("args", {}) if isinstance(body, dict) else None
        if not isinstance(command, str) or not command or not isinstance(args, dict):
            raise self.bad_request("body: expected {'command': str, 'args': {...}}")
        if not all(isinstance(k, str) and k.isidentifier() for k in args):
            raise self.bad_request("args: keys must be identifiers")
        try:
            accepted = issue_command(self.kernel, self.identity, command, **args)
        except EventError as exc:  # e.g. NaN in the args: nothing was published
            raise self.bad_request(f"args: {exc}") from None
        if not accepted:
            raise tornado.web.HTTPError(
                403, reason=f"role {self.identity.role!r} may not issue commands"
            )
        self.write_json({"accepted": True, "command": command, "actor": self.identity.user}, 202)


class EventsHandler(ApiHandler):
    """``GET /api/events``: the SSE stream (protocol in the module docstring; the fan-out to
    clients is :class:`panel_app.sse.SseHub`)."""

    def initialize(
        self, kernel: KernelProvider, gate: AccessGate, hub: SseHub | None = None
    ) -> None:
        super().initialize(kernel, gate)
        # api_routes passes the server's one hub; a hub of its own still works, unshared.
        self.hub = hub or SseHub(gate.access.sse_flush_interval_s, gate.access.sse_queue_size)
        self._client: SseClient | None = None
        self._closed = False

    def on_connection_close(self) -> None:
        self._closed = True
        if self._client is not None:
            self._client.close()

    async def get(self) -> None:
        pattern = self.get_query_argument("topic", topics.ALL_TOPICS)
        try:
            topics.validate_pattern(pattern)
        except EventError as exc:
            raise self.bad_request(f"topic: {exc}") from None
        last_id = self._last_event_id()
        kernel = self.kernel
        loop = IOLoop.current()
        # Join before reading the log, so nothing falls between replay and live.
        client = self._client = self.hub.join(kernel.bus, pattern, self)
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            self.write(f"retry: 2000\n: seamless events {pattern}\n\n")
            await self.flush()
            last_sent = 0
            if last_id is not None:
                last_sent = await self._catch_up(kernel, pattern, last_id, client)
            client.go_live(last_sent, loop.time())
            await self._serve(client, self.gate.access.sse_heartbeat_s)
        except StreamClosedError:
            pass
        finally:
            self.hub.leave(kernel.bus, pattern, client)
        if not self._finished and not self._closed:
            self.finish()

    def _last_event_id(self) -> int | None:
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", ""
        )
        if not raw:
            return None
        if not raw.isdigit() or len(raw) > 19:
            raise self.bad_request(f"Last-Event-ID: expected a non-negative seq, got {raw[:40]!r}")
        return int(raw)

    async def _catch_up(
        self, kernel: EngineFacade, pattern: str, last_id: int, client: SseClient
    ) -> int:
        # The log holds everything a full buffer drops, so overflow while replaying only means
        # "read the log again" - the client is not slow, the replay is long.
        last_sent = last_id
        while True:
            last_sent = await replay(
                self, kernel.log.read, pattern, last_sent, lambda: self._closed
            )
            if not client.overflowed:
                return last_sent
            client.reset()

    async def _serve(self, client: SseClient, heartbeat_s: float) -> None:
        """Live: the hub writes the events; here only heartbeats, overflow and the end."""
        loop = IOLoop.current()
        while not (self._closed or client.closed):
            try:
                await asyncio.wait_for(client.wake.wait(), timeout=heartbeat_s)
            except TimeoutError:
                if loop.time() - client.last_write >= heartbeat_s * 0.9:
                    self.write(": heartbeat\n\n")
                    client.last_write = loop.time()
                    await self.flush()
                continue
            client.wake.clear()
            if client.overflowed and not client.closed:
                self.write('event: overflow\ndata: {"error": "client too slow; reconnect"}\n\n')
                # A blocked flush only ends when the connection does: close it if nothing drains.
                loop.call_later(FORCE_CLOSE_AFTER_S, self._force_close)
                await self.flush()
                return

    def _force_close(self) -> None:
        if not self._finished and self.request.connection is not None:
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                stream.close()


def _updated_ns(store: StateStore) -> int:
    updated_at = getattr(store, "updated_at", None)
    if callable(updated_at):
        return int(updated_at(""))
    return int(getattr(store, "last_update_ns", 0) or 0)
