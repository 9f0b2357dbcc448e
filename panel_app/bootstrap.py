"""The dashboard's start-up, written once for every way of serving it.

``seamless serve`` (:mod:`panel_app.server`), plain ``panel serve`` with the hooks
(:mod:`panel_app.serve_hooks`) and the page of :mod:`panel_app.app` all start here.
:class:`DashboardBootstrap` turns a config into what a dashboard server needs, in this order:

1. the access gate: users, API tokens and the cookie secret (a non-dev config without a
   secret or without users is refused), and no viewer named like a trusted runner actor;
2. where it may listen: dev mode (INSECURE built-in users, public cookie secret) only on a
   loopback address (:func:`check_listen_address`, the same error for both commands);
3. the login (:meth:`~DashboardBootstrap.auth_provider`) and the ``/api`` routes;
4. the engine: ``Kernel.from_config`` (or a read-only mirror), the gate's authorizer
   installed, and the services every session shares built once.

One engine per server process, held by :mod:`panel_app.services` (autoreload-proof, stopped
once at exit or on SIGTERM).

A page is built only for a user the Seamless login signed in (:meth:`~DashboardBootstrap.page`):
the login must be the one guarding this server (Bokeh consulted it for the request) and the
session's signed ``user`` cookie must name a configured user. Anyone else -- every visitor of a
plain ``panel serve panel_app/app.py`` without the hooks -- gets a page that only says how to
serve the dashboard, and no engine is started for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tornado.web
from tornado.web import decode_signed_value

from engine.config import VIEWER, AccessConfig, SeamlessConfig, load_config
from panel_app.api import api_routes
from panel_app.auth import USER_COOKIE, AccessGate, SeamlessAuthProvider
from panel_app.facade import (
    DEV_MODE_WARNING,
    EngineFacade,
    Identity,
    make_authorizer,
    start_engine,
    tune_process,
)
from panel_app.probes import probe_routes
from panel_app.services import (
    current_engine,
    get_engine,
    process_holder,
    services_for,
    set_engine,
)
from panel_app.sse import SseHub
from streams.errors import ConfigError

log = logging.getLogger(__name__)

#: Builds one session's page from the engine, the user and the role (``app.create_app``).
PageBuilder = Callable[[EngineFacade, str, str], Any]

#: The config file plain ``panel serve`` reads (``seamless serve`` takes ``--config``).
CONFIG_ENV = "SEAMLESS_CONFIG"
LOOPBACK_ONLY = (
    "access.dev_mode is INSECURE and only serves on loopback (127.0.0.1, ::1, localhost); "
    "set access.dev_mode: false, users and SEAMLESS_COOKIE_SECRET to listen on other addresses"
)
SERVE_HOOKS_FLAGS = "--auth-module panel_app/serve_hooks.py --plugins panel_app.serve_hooks"
#: What a visitor of a server without the Seamless login sees instead of the dashboard.
NO_LOGIN_PAGE = f"""# Seamless

**This server has no Seamless login, so it shows no dashboard.**

Serve the dashboard with its login and API:

```
seamless serve --config FILE
```

or, with plain `panel serve`, give it the Seamless login and API:

```
SEAMLESS_CONFIG=FILE panel serve panel_app/app.py --address 127.0.0.1 \\
    {SERVE_HOOKS_FLAGS}
```
"""
NOT_SIGNED_IN_PAGE = "# Seamless\n\nYou are not signed in. [Sign in](/login)"


def installed() -> DashboardBootstrap | None:
    """The bootstrap whose login guards this ``panel serve`` process, or None (no hooks)."""
    bootstrap: DashboardBootstrap | None = process_holder().bootstrap
    return bootstrap


# -- where a server may listen -------------------------------------------------------------------
def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; None or ``""`` (every interface) is not."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_listen_address(access: AccessConfig, address: str | None, flag: str = "") -> None:
    """Refuse dev mode unless the server listens on loopback only (ConfigError).

    ``address`` None means every interface (``panel serve`` without ``--address``). ``flag``
    names what was given when it was not ``--address`` (e.g. ``--unix-socket '/run/x'``).
    """
    if access.dev_mode and not is_loopback(address):
        if not flag:
            given = address is not None
            flag = f"--address {address!r}" if given else "--address not given (every interface)"
        raise ConfigError(f"{flag}: {LOOPBACK_ONLY}")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """What ``panel serve`` (or ``bokeh serve``) was told on its command line."""

    address: str | None
    unix_socket: str | None
    num_procs: int


def panel_serve_options(argv: Sequence[str] | None = None) -> ServeOptions | None:
    """The server options of this process's ``panel serve``/``bokeh serve`` command line.

    Parsed with Panel's own ``serve`` argument definitions, from ``sys.argv`` as Panel's
    ``main`` left it. None when the process was not started by that command (then nobody can
    tell where it listens).
    """
    args = list(sys.argv if argv is None else argv)
    if len(args) < 2 or args[1] != "serve":
        return None
    from panel.command.serve import Serve

    parser = argparse.ArgumentParser(prog="serve", add_help=False, exit_on_error=False)
    Serve(parser=parser)
    try:
        parsed, _ = parser.parse_known_args(args[2:])
    except (argparse.ArgumentError, SystemExit):
        return None
    return ServeOptions(parsed.address, parsed.unix_socket, int(parsed.num_procs))


# -- the bootstrap ------------------------------------------------------------------------------
class _ConsultedAuthProvider(SeamlessAuthProvider):
    """The Seamless login, telling its bootstrap whenever the server consults it."""

    def __init__(self, gate: AccessGate, consulted: Callable[[], None]) -> None:
        self._consulted = consulted
        super().__init__(gate)

    @property
    def get_user(self) -> Any:
        check = super().get_user

        def get_user(handler: tornado.web.RequestHandler) -> str | None:
            self._consulted()
            return check(handler)

        return get_user


class DashboardBootstrap:
    """Gate, login, routes, engine and shared services of one dashboard server, from config.

    ``access`` overrides ``config.access`` (tests); ``mirror`` serves a read-only mirror of
    ``storage.stream`` instead of running an engine. Raises ConfigError, before anything is
    started, when the access settings are unsafe.
    """

    def __init__(
        self, config: SeamlessConfig, *, access: AccessConfig | None = None, mirror: bool = False
    ) -> None:
        self.config = config
        self.mirror = mirror
        self.gate = AccessGate.from_config(config, warn=False, access=access)
        _check_operator_actors(config, self.gate)
        #: True once the server consulted this bootstrap's login for a request: proof that
        #: the login guards the server's pages (a plain ``panel serve`` never consults it).
        self.login_in_use = False

    @property
    def access(self) -> AccessConfig:
        """The access settings in force."""
        return self.gate.access

    def check_address(self, address: str | None, flag: str = "") -> None:
        """Refuse to serve dev mode on anything but loopback (see :func:`check_listen_address`)."""
        check_listen_address(self.gate.access, address, flag)

    def check_panel_serve(self, options: ServeOptions | None) -> None:
        """Refuse a ``panel serve`` command line this dashboard must not run under."""
        if options is None:
            self.check_address(None, "--address unknown (not started by `panel serve`)")
            return
        if options.num_procs != 1:
            raise ConfigError(
                f"--num-procs {options.num_procs}: the dashboard runs one engine per server "
                "process over one event log; serve with --num-procs 1"
            )
        if options.unix_socket:
            self.check_address(None, f"--unix-socket {options.unix_socket!r}")
        else:
            self.check_address(options.address)

    def auth_provider(self) -> SeamlessAuthProvider:
        """The login that guards every page and websocket of the server."""
        return _ConsultedAuthProvider(self.gate, self._consulted)

    def _consulted(self) -> None:
        self.login_in_use = True

    def api_routes(self, hub: SseHub | None = None) -> list[Any]:
        """The ``/api`` routes over the process engine (never built by a request), and the
        probes and metrics (``/livez``, ``/readyz``, ``/metrics``: :mod:`panel_app.probes`)."""
        if hub is None:
            hub = SseHub(self.gate.access.sse_flush_interval_s, self.gate.access.sse_queue_size)
        return [
            *api_routes(current_engine, self.gate, hub=hub),
            *probe_routes(current_engine, self.gate, hub),
        ]

    def start(self, kernel: EngineFacade | None = None, *, tune: bool = False) -> EngineFacade:
        """The process engine, started on first call, with the gate's authorizer installed.

        ``kernel``: an engine built elsewhere to serve instead (tests, notebooks, benches).
        ``tune``: tune this Python process once the engine has started (entry points only).
        """
        if self.gate.access.dev_mode:
            log.warning("%s", DEV_MODE_WARNING)
        if kernel is not None:
            set_engine(kernel)
        else:
            kernel = get_engine(self._build_kernel)
        self._authorize(kernel)  # also over an engine an earlier server of this process left
        if tune:
            tune_process(self.config.engine)
        return kernel

    def engine(self) -> EngineFacade:
        """The process engine (built, authorized and equipped with services on first use)."""
        return get_engine(self._build_kernel)

    def _build_kernel(self) -> EngineFacade:
        kernel = start_engine(self.config, mirror=self.mirror)
        try:
            self._authorize(kernel)
            services_for(kernel)  # shared subscriptions made once, before any session
        except BaseException:
            kernel.stop()
            raise
        return kernel

    def _authorize(self, kernel: EngineFacade) -> None:
        if hasattr(kernel, "set_authorizer"):
            kernel.set_authorizer(make_authorizer(self.gate.access, self.gate.directory))

    def session_identity(self) -> Identity | None:
        """Who the Seamless login signed in for the current Panel session, or None.

        None unless this bootstrap's login guards the server and the session's request carried
        a ``user`` cookie signed with the gate's secret, unexpired, naming a configured user
        (whose role is taken from the config, not from the browser).
        """
        if not self.login_in_use:
            return None
        import panel as pn

        raw = pn.state.cookies.get(USER_COOKIE)
        if not raw:
            return None
        value = decode_signed_value(
            self.gate.cookie_secret,
            USER_COOKIE,
            raw,
            max_age_days=self.gate.access.session_expiry_days,
        )
        if not value:
            return None
        user = value.decode("utf-8", "replace")
        account = self.gate.directory.users.get(user)
        return Identity(user, account.role) if account is not None else None

    def page(self, build: PageBuilder) -> Any:
        """The current session's page: ``build(engine, user, role)`` for a signed-in user,
        else only a message (no engine is built for it)."""
        identity = self.session_identity()
        if identity is None:
            return _message(NOT_SIGNED_IN_PAGE if self.login_in_use else NO_LOGIN_PAGE)
        return build(self.engine(), identity.user, identity.role)


def for_panel_serve(argv: Sequence[str] | None = None) -> DashboardBootstrap:
    """The bootstrap of this ``panel serve`` process: built, checked, started and installed once.

    Reads ``$SEAMLESS_CONFIG`` (embedded defaults without it), refuses what ``seamless serve``
    refuses (ConfigError: ``panel serve`` exits non-zero with the message), hands the gate's
    cookie secret to Panel and starts the engine. Later calls (the module is loaded twice, by
    ``--auth-module`` and by ``--plugins``, and again by ``--dev`` reloads) return the same one.
    """
    holder = process_holder()
    with holder.lock:
        found = installed()
        if found is not None:
            return found
        import panel as pn

        bootstrap = DashboardBootstrap(load_config(os.environ.get(CONFIG_ENV) or None))
        bootstrap.check_panel_serve(panel_serve_options(argv))
        pn.config.cookie_secret = bootstrap.gate.cookie_secret  # type: ignore[misc]
        bootstrap.start(tune=True)
        holder.bootstrap = bootstrap
        return bootstrap


def session_page(build: PageBuilder) -> Any:
    """The page of a session of ``panel serve panel_app/app.py``: the dashboard from
    ``build(engine, user, role)`` for a signed-in user of the installed login, else a message.

    Without the hooks nothing is installed: every visitor gets :data:`NO_LOGIN_PAGE`.
    """
    bootstrap = installed()
    if bootstrap is None:
        holder = process_holder()
        if not getattr(holder, "warned_no_login", False):
            holder.warned_no_login = True
            log.warning(
                "panel serve without the Seamless login: serving no dashboard; use "
                "`seamless serve` or add %s",
                SERVE_HOOKS_FLAGS,
            )
        return _message(NO_LOGIN_PAGE)
    return bootstrap.page(build)


def _message(text: str) -> Any:
    import panel as pn

    return pn.Column(
        pn.pane.Markdown(text, sizing_mode="stretch_width"),
        name="Seamless",
        sizing_mode="stretch_width",
        css_classes=["sl-no-dashboard"],
    )


def _check_operator_actors(config: SeamlessConfig, gate: AccessGate) -> None:
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
