"""Login and ``/api`` routes for plain ``panel serve``, the same as ``seamless serve`` installs.

Usage (from the repository root)::

    SEAMLESS_CONFIG=config/config.yaml panel serve panel_app/app.py \\
        --auth-module panel_app/serve_hooks.py --plugins panel_app.serve_hooks

``--auth-module`` (Bokeh) reads ``get_user``, ``login_url``, ``LoginHandler``, ``logout_url``
and ``LogoutHandler`` from this module; ``--plugins`` (Panel) reads ``ROUTES``. Those APIs
take module attributes, so this module -- unlike the rest of the dashboard -- resolves the
``access`` config when it is loaded, and hands the cookie secret to Panel (do not also pass
``--cookie-secret``; use ``SEAMLESS_COOKIE_SECRET``). A non-dev config without a cookie
secret makes ``panel serve`` fail at start with the ConfigError message.

Without these flags ``panel serve panel_app/app.py`` has no login: ``current_role()`` is None
and the dashboard is read-only.
"""

from __future__ import annotations

import os
from typing import Any

import panel as pn

from engine.access import make_authorizer
from engine.config import load_config
from panel_app import engine_instance
from panel_app.api import api_routes
from panel_app.auth import AccessGate, SeamlessAuthProvider

_config = load_config(os.environ.get(engine_instance.CONFIG_ENV) or None)
_gate = AccessGate.from_config(_config)
pn.config.cookie_secret = _gate.cookie_secret  # type: ignore[misc]
_provider = SeamlessAuthProvider(_gate)


def _engine() -> Any:
    kernel = engine_instance.get_engine()
    if hasattr(kernel, "set_authorizer"):
        kernel.set_authorizer(make_authorizer(_gate.access, _gate.directory))
    return kernel


get_user = _provider.get_user
login_url = _provider.login_url
LoginHandler = _provider.login_handler
logout_url = _provider.logout_url
LogoutHandler = _provider.logout_handler
ROUTES = api_routes(_engine, _gate)
