"""Login for the dashboard and its API: a Bokeh auth provider over hashed passwords.

:class:`SeamlessAuthProvider` serves ``/login`` and ``/logout`` and guards every page and
websocket of the server: a session exists only for a user with a valid signed ``user``
cookie who is still configured. The login handler verifies the password hash off the IOLoop
and writes the signed ``user`` cookie plus Panel's ``id_token`` (``{"user", "role"}``), so a
session reads its user with ``pn.state.user`` and its role with :func:`current_role`.

The role in the page decides only what is *shown*; every control is re-checked on the
engine thread by ``engine.access.make_authorizer`` and refusals are audited as
``command_refused`` events (see :func:`command_as_current_user`).

``seamless serve`` installs the provider itself (``panel_app.server``); for ``panel serve``
use ``--auth-module panel_app/serve_hooks.py`` (see that module).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import json
import logging
from typing import Any, ClassVar

import tornado.web
from bokeh.server.auth_provider import AuthProvider
from tornado.ioloop import IOLoop

from engine.config import OPERATOR, ROLES, AccessConfig, SeamlessConfig
from panel_app.facade import (
    DEV_MODE_WARNING,
    AccessDirectory,
    EngineFacade,
    Identity,
    authorize_command,
    resolve_cookie_secret,
)
from streams.events import CommandRefused

log = logging.getLogger(__name__)

LOGIN_URL = "/login"
LOGOUT_URL = "/logout"
USER_COOKIE = "user"
ID_TOKEN_COOKIE = "id_token"


@dataclasses.dataclass(frozen=True)
class AccessGate:
    """Everything a request handler needs to authenticate: directory, secret, lifetimes."""

    access: AccessConfig
    directory: AccessDirectory
    cookie_secret: str

    @classmethod
    def from_config(
        cls, config: SeamlessConfig, *, warn: bool = True, access: AccessConfig | None = None
    ) -> AccessGate:
        """Resolve ``access`` or else ``config.access`` (defaults if there is no such section).

        Raises ConfigError when a non-dev configuration lacks a cookie secret or users.
        """
        if access is None:
            access = getattr(config, "access", None)
        if not isinstance(access, AccessConfig):
            access = AccessConfig()
        secret = resolve_cookie_secret(access)
        directory = AccessDirectory.from_config(access)
        if access.dev_mode and warn:
            log.warning("%s", DEV_MODE_WARNING)
        return cls(access, directory, secret)

    def identify(self, handler: tornado.web.RequestHandler) -> Identity | None:
        """The caller of ``handler``: a bearer token, else the signed session cookie."""
        header = handler.request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            return self.directory.identify_token(token.strip())
        raw = handler.get_secure_cookie(USER_COOKIE, max_age_days=self.access.session_expiry_days)
        if not raw:
            return None
        user = raw.decode("utf-8", "replace")
        account = self.directory.users.get(user)  # password users only, never token names
        return Identity(user, account.role) if account is not None else None


class SeamlessAuthProvider(AuthProvider):
    """Guards the whole server with the login page below (Bokeh ``AuthProvider`` API)."""

    def __init__(self, gate: AccessGate) -> None:
        self.gate = gate
        self._login = type("BoundLoginHandler", (LoginHandler,), {"gate": gate})
        self._logout = type("BoundLogoutHandler", (LogoutHandler,), {"gate": gate})
        super().__init__()

    @property
    def get_user(self) -> Any:
        """Bokeh calls this with each request handler: the user name, or None."""

        def get_user(handler: tornado.web.RequestHandler) -> str | None:
            identity = self.gate.identify(handler)
            return identity.user if identity is not None else None

        return get_user

    @property
    def login_url(self) -> str:
        return LOGIN_URL

    @property
    def login_handler(self) -> type[tornado.web.RequestHandler]:
        return self._login

    @property
    def logout_url(self) -> str:
        return LOGOUT_URL

    @property
    def logout_handler(self) -> type[tornado.web.RequestHandler]:
        return self._logout


class LoginHandler(tornado.web.RequestHandler):
    """``GET /login`` shows the form; ``POST /login`` checks the password hash."""

    gate: ClassVar[AccessGate]

    def get(self) -> None:
        self._page(self.get_query_argument("next", "/"), "")

    async def post(self) -> None:
        username = self.get_body_argument("username", "")[:200]
        password = self.get_body_argument("password", "")[:1000]
        next_url = _safe_next(self.get_body_argument("next", "/"))
        directory = self.gate.directory
        identity = await IOLoop.current().run_in_executor(
            None, directory.verify, username, password
        )
        if identity is None:
            log.warning("failed login for %r from %s", username, self.request.remote_ip)
            await asyncio.sleep(self.gate.access.login_failure_delay_s)
            self.set_status(401)
            self._page(next_url, "Invalid username or password.")
            return
        log.info("login: %s (%s) from %s", identity.user, identity.role, self.request.remote_ip)
        set_session_cookies(self, identity, self.gate.access.session_expiry_days)
        self.redirect(next_url)

    def _page(self, next_url: str, error: str) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(render_login_page(_safe_next(next_url), error, self.gate.access.dev_mode))


class LogoutHandler(tornado.web.RequestHandler):
    """``GET /logout`` clears the session cookies and goes back to the login page."""

    gate: ClassVar[AccessGate]

    def get(self) -> None:
        for name in (USER_COOKIE, ID_TOKEN_COOKIE, "access_token", "refresh_token"):
            self.clear_cookie(name)
        self.redirect(LOGIN_URL)


def set_session_cookies(
    handler: tornado.web.RequestHandler, identity: Identity, expires_days: float
) -> None:
    """Write the signed ``user`` cookie and Panel's ``id_token`` carrying user and role."""
    options: dict[str, Any] = {"expires_days": expires_days, "httponly": True, "samesite": "Lax"}
    handler.set_signed_cookie(USER_COOKIE, identity.user, **options)
    token = json.dumps({"user": identity.user, "username": identity.user, "role": identity.role})
    handler.set_signed_cookie(
        ID_TOKEN_COOKIE, base64.urlsafe_b64encode(token.encode()).rstrip(b"="), **options
    )


def _safe_next(value: str) -> str:
    # Only same-site paths: no scheme, host, protocol-relative '//' or backslash tricks.
    if not value.startswith("/") or value.startswith("//") or "\\" in value or ":" in value:
        return "/"
    return value


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Seamless - sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:flex;
justify-content:center;align-items:center;min-height:100vh;margin:0}}
form{{background:#1e293b;padding:2rem;border-radius:8px;width:20rem}}
h1{{font-size:1.3rem;margin-top:0}} label{{display:block;margin:.8rem 0 .2rem}}
input{{width:100%;padding:.5rem;box-sizing:border-box;border-radius:4px;border:1px solid #475569}}
button{{margin-top:1.2rem;width:100%;padding:.6rem;background:#2563eb;color:#fff;border:0;
border-radius:4px;font-size:1rem}} .error{{color:#fca5a5}}
.insecure{{background:#7f1d1d;color:#fee2e2;padding:.6rem;border-radius:4px;font-size:.85rem}}
</style></head><body>
<form method="post" action="{action}">
<h1>Seamless trading engine</h1>
{warning}{error}
<label for="username">User</label>
<input id="username" name="username" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>
"""


def render_login_page(next_url: str, error: str, dev_mode: bool) -> str:
    """The login form; in dev mode it says loudly that the setup is insecure."""
    warning = f'<p class="insecure">{html.escape(DEV_MODE_WARNING)}</p>' if dev_mode else ""
    return _LOGIN_PAGE.format(
        action=LOGIN_URL,
        warning=warning,
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        next=html.escape(next_url, quote=True),
    )


# -- inside a Panel session ---------------------------------------------------------------------
def current_user() -> str | None:
    """The logged-in user of the current Panel session (``pn.state.user``), or None."""
    import panel as pn

    user = pn.state.user
    return user if user and user != "guest" else None


def current_role() -> str | None:
    """The role of the current session's user (from its signed ``id_token``), or None.

    None means not logged in (e.g. ``panel serve`` without ``--auth-module``): treat the
    session as read-only.
    """
    import panel as pn

    if current_user() is None:
        return None
    info = pn.state.user_info or {}
    role = info.get("role")
    return role if role in ROLES else None


def is_operator() -> bool:
    """True if the current session may use Controls (display only; the engine re-checks)."""
    return current_role() == OPERATOR


def command_as_current_user(kernel: EngineFacade, command: str, **args: Any) -> bool:
    """Issue ``command`` as the session's user, or audit a ``command_refused`` if it may not.

    The engine re-checks the actor too, so a forged message that reaches the kernel is still
    refused there. Returns True if the command was handed to the engine.
    """
    user = current_user() or "anonymous"
    return issue_command(kernel, Identity(user, current_role() or ""), command, **args)


def issue_command(kernel: EngineFacade, identity: Identity, command: str, **args: Any) -> bool:
    """Hand ``command`` to the engine as ``identity``, or publish an audited refusal."""
    if authorize_command(identity.user, identity.role, command):
        kernel.command(command, identity.user, **args)
        return True
    reason = f"user {identity.user!r} with role {identity.role or 'none'!r} may not {command!r}"
    log.warning("refused command: %s", reason)
    kernel.bus.publish(
        CommandRefused(
            command=str(command)[:100],
            actor=identity.user,
            reason=reason,
            ts_event=_now_ns(kernel),
        )
    )
    return False


def _now_ns(kernel: EngineFacade) -> int:
    clock = getattr(kernel, "clock", None)
    if clock is not None and hasattr(clock, "now_ns"):
        return int(clock.now_ns())
    import time

    return time.time_ns()
