"""Probes and metrics next to the dashboard: ``/livez``, ``/readyz`` and ``/metrics``.

* ``GET /livez`` - no login. 200 ``ok`` while the process is up and its dispatch loop is not
  stalled (also while the engine is still starting or stopping); 503 ``stalled`` or
  ``dispatch stopped`` otherwise: restart the process.
* ``GET /readyz`` - no login. 200 ``ready`` once the engine has restored and reconciled, until
  a stop begins; 503 ``not ready: starting``, ``not ready: stopping`` or ``not ready:
  stalled`` otherwise: send no traffic.
* ``GET /metrics`` - Prometheus text (:mod:`panel_app.metrics`), behind the same login as
  ``/api`` (a session cookie or ``Authorization: Bearer <token>``; 401 otherwise).

The probes answer with those status words only, as ``text/plain``: never trading data, never
an error text. They judge with :func:`engine.supervision.engine_status`, the same judgement
``seamless run`` and ``seamless serve`` send systemd as ``READY=1`` and ``WATCHDOG=1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import tornado.web

from panel_app.api import ApiHandler
from panel_app.auth import AccessGate
from panel_app.facade import EngineFacade, ProbeStatus, engine_status
from panel_app.metrics import CONTENT_TYPE, EngineCollector, render
from panel_app.sse import SseHub

log = logging.getLogger(__name__)

KernelProvider = Callable[[], EngineFacade | None]


def probe_routes(
    kernel: KernelProvider, gate: AccessGate, hub: SseHub
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """Tornado routes of ``/livez``, ``/readyz`` and ``/metrics``. ``kernel`` returns the
    process's engine or None (not built yet); ``hub`` is the server's SSE fan-out (its
    clients are counted in ``/metrics``)."""
    return [
        ("/livez", LivezHandler, {"kernel": kernel}),
        ("/readyz", ReadyzHandler, {"kernel": kernel}),
        ("/metrics", MetricsHandler, {"kernel": kernel, "gate": gate, "hub": hub}),
    ]


class _ProbeHandler(tornado.web.RequestHandler):
    """A probe: no login, a status word and a status code."""

    def initialize(self, kernel: KernelProvider) -> None:
        self._kernel_provider = kernel

    def status(self) -> ProbeStatus:
        """The engine's status now (an engine that cannot be had counts as starting)."""
        try:
            kernel = self._kernel_provider()
        except Exception:
            log.exception("probe: no engine")
            kernel = None
        return engine_status(kernel)

    def answer(self, ok: bool, words: str) -> None:
        """Reply ``words`` with 200 if ``ok``, else 503."""
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(words + "\n")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{self._reason.lower()}\n")

    def head(self) -> None:
        self.get()

    def get(self) -> None:
        raise NotImplementedError


class LivezHandler(_ProbeHandler):
    """``GET /livez``: is the process up and its dispatch loop not stalled?"""

    def get(self) -> None:
        status = self.status()
        self.answer(status.live, "ok" if status.live else status.words)


class ReadyzHandler(_ProbeHandler):
    """``GET /readyz``: has the engine started (restored, reconciled), live and not stopping?"""

    def get(self) -> None:
        status = self.status()
        if status.ready and status.live:
            self.answer(True, "ready")
        else:
            self.answer(False, f"not ready: {status.words}")


class MetricsHandler(ApiHandler):
    """``GET /metrics``: Prometheus text, for any authenticated caller (viewer or operator)."""

    def initialize(
        self, kernel: KernelProvider, gate: AccessGate, hub: SseHub | None = None
    ) -> None:
        super().initialize(kernel, gate)
        self.hub = hub  # the server's SSE fan-out, whose clients are counted

    def _sse_clients(self) -> int:
        return self.hub.client_count() if self.hub is not None else 0

    def get(self) -> None:
        try:
            kernel = self._kernel_provider()
        except Exception:
            log.exception("metrics: no engine")
            kernel = None
        collector = EngineCollector(kernel, sessions=self._sessions, sse_clients=self._sse_clients)
        body = render(collector)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)

    def _sessions(self) -> int:
        """Open Bokeh sessions of every app this server serves (0 outside a Bokeh server)."""
        applications = getattr(self.application, "applications", None) or {}
        return sum(len(list(context.sessions)) for context in applications.values())
