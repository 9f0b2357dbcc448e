"""``seamless serve``: the dashboard, its login and its HTTP API in one Tornado server.

:func:`serve` blocks until the server is stopped (Ctrl-C, SIGTERM) and then stops the engine
cleanly (runner stopped, final snapshot, run marked ended). :class:`DashboardServer` is the
same thing as an object, startable in a background thread for tests and notebooks.

Security defaults: the server binds to loopback, accepts websocket connections only from the
origin it serves (plus ``access.allowed_websocket_origins``), requires a login for every page,
websocket and ``/api`` route, and refuses to start without a cookie secret outside dev mode.
Dev mode (INSECURE, the embedded default) is refused on a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.access import DEV_MODE_WARNING, make_authorizer
from engine.config import VIEWER, AccessConfig
from engine.process_tuning import tune_process
from panel_app import engine_instance
from panel_app.api import api_routes
from panel_app.auth import AccessGate, SeamlessAuthProvider, current_role, current_user
from panel_app.sse import SseHub
from streams.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PORT = 5006


class DashboardServer:
    """One dashboard server over the process's one engine.

    ``kernel``: an engine to serve (tests); by default the process engine of
    :mod:`panel_app.engine_instance`, built from ``config``. ``app``: a Panel app factory for
    ``/``; by default ``panel_app.app.create_app``. ``access``: overrides ``config.access``.
    Raises ConfigError before anything starts if the access settings are unsafe.
    """

    def __init__(
        self,
        config: Any,
        *,
        port: int = DEFAULT_PORT,
        address: str = "127.0.0.1",
        show: bool = False,
        dev: bool = False,
        kernel: Any = None,
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
        self.gate = AccessGate.from_config(config, warn=False, access=access)
        access = self.gate.access
        if access.dev_mode and not _is_loopback(address):
            raise ConfigError(
                f"--address {address!r}: access.dev_mode is INSECURE and only serves on "
                "loopback (127.0.0.1, ::1, localhost); set access.dev_mode: false, users and "
                "SEAMLESS_COOKIE_SECRET to listen on other addresses"
            )
        _check_operator_actors(config, self.gate)
        self._kernel = kernel
        self._app = app
        #: The fan-out of ``/api/events`` to every SSE client of this server.
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
        if self._kernel is not None:
            engine_instance.set_engine(self._kernel)
            kernel = self._kernel
        else:
            kernel = engine_instance.get_engine(self._build_kernel)
        if hasattr(kernel, "set_authorizer"):
            kernel.set_authorizer(make_authorizer(self.gate.access, self.gate.directory))
        return kernel

    def _build_kernel(self) -> Any:
        if self.mirror:
            from engine.cluster import start_cluster_mirror

            return start_cluster_mirror(self.config)
        from engine.kernel import Kernel

        return Kernel.from_config(self.config).start()

    def serve_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pn.serve`` (routes, auth, cookie secret, origins)."""
        return {
            "port": self.port,
            "address": self.address,
            "websocket_origin": self.websocket_origins(),
            "extra_patterns": api_routes(
                engine_instance.current_engine, self.gate, hub=self.sse_hub
            ),
            "auth_provider": SeamlessAuthProvider(self.gate),
            "cookie_secret": self.gate.cookie_secret,
            "title": "Seamless",
            "show": self.show,
            "verbose": True,
        }

    def websocket_origins(self) -> list[str]:
        """The served ``host:port`` (and loopback aliases) plus configured extra origins."""
        hosts = {self.address}
        if _is_loopback(self.address):
            hosts |= {"localhost", "127.0.0.1"}
        elif self.address in ("0.0.0.0", "::", ""):
            hosts |= {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}
        origins = sorted(f"{h}:{self.port}" for h in hosts if h)
        return origins + [o for o in self.gate.access.allowed_websocket_origins if o not in origins]

    def _panels(self) -> dict[str, Callable[[], Any]]:
        return {"/": self._app or _app_factory()}

    def _prepare(self) -> dict[str, Any]:
        import panel as pn

        if self.gate.access.dev_mode:
            log.warning("%s", DEV_MODE_WARNING)
        if self.dev:
            pn.config.autoreload = True
        self.engine()
        return self.serve_kwargs()

    def run(self) -> None:
        """Serve in this thread until interrupted, then stop the engine cleanly."""
        import panel as pn

        kwargs = self._prepare()
        if self._kernel is None:  # the process's own engine (`seamless serve`), started
            tune_process(self.config.engine)
        log.info("Seamless dashboard at %s", self.url)
        try:
            self._server = pn.serve(self._panels(), start=True, **kwargs)
        finally:
            self.stop()

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
            engine_instance.shutdown_engine()


def serve(
    config: Any,
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


def _app_factory() -> Callable[[], Any]:
    try:
        from panel_app.app import create_app
    except ImportError:
        log.warning("panel_app.app.create_app is not available; serving a placeholder page")
        return _placeholder

    def app() -> Any:
        # Always authenticated here: the auth provider guards every page of this server.
        user, role = current_user() or "anonymous", current_role() or VIEWER
        return create_app(engine_instance.get_engine(), user, role)

    return app


def _placeholder() -> Any:
    import panel as pn

    return pn.pane.Markdown(
        f"# Seamless\n\nSigned in as **{current_user()}** ({current_role()})."
        "\n\nThe dashboard app is not installed."
    )


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check_operator_actors(config: Any, gate: AccessGate) -> None:
    """A viewer must not share a name with an actor the kernel always trusts."""
    runner = getattr(config, "runner", None)
    trusted: tuple[str, ...] = tuple(getattr(runner, "operators", ()) or ())
    users: Mapping[str, Any] = gate.directory.users
    for name in trusted:
        user = users.get(name)
        if user is not None and user.role == VIEWER:
            raise ConfigError(
                f"access.users.{name}: role viewer, but {name!r} is in runner.operators "
                "(always allowed to command); rename the user or remove it from runner.operators"
            )
