"""``seamless serve``: the dashboard, its login and its HTTP API in one Tornado server.

:func:`serve` blocks until the server is stopped (Ctrl-C, SIGTERM) and then stops the engine
cleanly (runner stopped, final snapshot, run marked ended). :class:`DashboardServer` is the
same thing as an object, startable in a background thread for tests and notebooks.

The start-up itself (access gate, address checks, login, ``/api`` routes, the engine and the
services sessions share) is :mod:`panel_app.bootstrap`'s, the same as plain ``panel serve`` with
:mod:`panel_app.serve_hooks`.

Security defaults: the server binds to loopback, accepts websocket connections only from the
origin it serves (plus ``access.allowed_websocket_origins``), requires a login for every page,
websocket and ``/api`` route, builds the dashboard only for a signed-in user, and refuses to
start without a cookie secret outside dev mode. Dev mode (INSECURE, the embedded default) is
refused on a non-loopback address.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.config import AccessConfig, SeamlessConfig
from panel_app import services
from panel_app.bootstrap import DashboardBootstrap, is_loopback
from panel_app.facade import STARTING, EngineFacade, ProbeStatus, Supervisor, engine_status
from panel_app.sse import SseHub

log = logging.getLogger(__name__)

DEFAULT_PORT = 5006


class DashboardServer:
    """One dashboard server over the process's one engine.

    Its start-up is :class:`~panel_app.bootstrap.DashboardBootstrap`'s, the same as plain
    ``panel serve`` with the hooks. ``kernel``: an engine to serve (tests, benches); by default
    the process engine, built from ``config`` (a read-only mirror with ``mirror``). ``app``: a
    Panel app factory for ``/`` (tests); by default the dashboard of ``panel_app.app``, built
    only for a signed-in user. ``access``: overrides ``config.access``. Raises ConfigError
    before anything starts if the access settings or the address are unsafe.
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        port: int = DEFAULT_PORT,
        address: str = "127.0.0.1",
        show: bool = False,
        dev: bool = False,
        kernel: EngineFacade | None = None,
        app: Callable[[], Any] | None = None,
        access: AccessConfig | None = None,
        mirror: bool = False,
    ) -> None:
        self.config = config
        self.mirror = mirror
        self.port = port
        self.address = address
        self.show = show
        self.dev = dev
        self.bootstrap = DashboardBootstrap(config, access=access, mirror=mirror)
        self.bootstrap.check_address(address)
        self.gate = self.bootstrap.gate
        self._kernel = kernel
        self._app = app
        #: The fan-out of ``/api/events`` to every SSE client of this server.
        access = self.gate.access
        self.sse_hub = SseHub(access.sse_flush_interval_s, access.sse_queue_size)
        self._thread: Any = None
        self._server: Any = None

    @property
    def url(self) -> str:
        """Where the dashboard is served."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def engine(self) -> Any:
        """The process engine (built and started on first use) with our authorizer installed."""
        return self.bootstrap.start(self._kernel)

    def serve_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pn.serve`` (routes, auth, cookie secret, origins)."""
        return {
            "port": self.port,
            "address": self.address,
            "websocket_origin": self.websocket_origins(),
            "extra_patterns": self.bootstrap.api_routes(hub=self.sse_hub),
            "auth_provider": self.bootstrap.auth_provider(),
            "cookie_secret": self.gate.cookie_secret,
            "title": "Seamless",
            "show": self.show,
            "verbose": True,
        }

    def websocket_origins(self) -> list[str]:
        """The served ``host:port`` (and loopback aliases) plus configured extra origins."""
        hosts = {self.address}
        if is_loopback(self.address):
            hosts |= {"localhost", "127.0.0.1"}
        elif self.address in ("0.0.0.0", "::", ""):
            hosts |= {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}
        origins = sorted(f"{h}:{self.port}" for h in hosts if h)
        return origins + [o for o in self.gate.access.allowed_websocket_origins if o not in origins]

    def _panels(self) -> dict[str, Callable[[], Any]]:
        if self._app is not None:
            return {"/": self._app}
        from panel_app.app import create_app  # imported (pn.extension) before any session

        return {"/": lambda: self.bootstrap.page(create_app)}

    def _prepare(self, *, tune: bool = False) -> dict[str, Any]:
        import panel as pn

        if self.dev:
            pn.config.autoreload = True
        # Tune only the process's own engine (`seamless serve`), never a test's or a bench's.
        self.bootstrap.start(self._kernel, tune=tune and self._kernel is None)
        return self.serve_kwargs()

    def run(self) -> None:
        """Serve in this thread until interrupted, then stop the engine cleanly.

        Under systemd (``$NOTIFY_SOCKET``) it sends ``WATCHDOG=1`` while the engine is live,
        ``READY=1`` once the engine has started and the server's loop runs, ``STOPPING=1``
        when the stop begins (:mod:`engine.supervision`)."""
        import panel as pn
        from tornado.ioloop import IOLoop

        listening = threading.Event()

        def status() -> ProbeStatus:
            return engine_status(services.current_engine()) if listening.is_set() else STARTING

        supervisor = Supervisor.from_env(status).start()
        try:
            kwargs = self._prepare(tune=True)
            log.info("Seamless dashboard at %s", self.url)
            # Runs once pn.serve has bound the port and started the loop.
            IOLoop.current().add_callback(listening.set)
            try:
                self._server = pn.serve(self._panels(), start=True, **kwargs)
            finally:
                supervisor.stopping()
                self.stop()
        finally:
            supervisor.close()

    def start_background(self, timeout: float = 30.0) -> DashboardServer:
        """Serve from a background thread; returns once the port accepts connections."""
        import panel as pn

        kwargs = self._prepare()
        self._thread = pn.serve(self._panels(), threaded=True, **kwargs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dashboard server did not start on {self.url} within {timeout}s")

    def stop(self, *, engine: bool = True) -> None:
        """Stop serving and, unless ``engine=False``, stop the engine cleanly (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
            thread.join(10)
        server, self._server = self._server, None
        if server is not None:
            try:
                server.stop()
            except Exception:  # already stopped with its loop
                log.debug("server stop", exc_info=True)
        if engine:
            services.shutdown_engine()


def serve(
    config: SeamlessConfig,
    *,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
    show: bool = False,
    dev: bool = False,
    mirror: bool = False,
) -> None:
    """Run the dashboard server until interrupted (``seamless serve``); stops the engine.

    ``mirror``: serve a read-only mirror of ``storage.stream`` from the shared log (and
    JetStream) instead of running an engine (a dashboard on another host; docs/scale-out.md)."""
    DashboardServer(config, port=port, address=address, show=show, dev=dev, mirror=mirror).run()
