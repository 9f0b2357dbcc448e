"""The Seamless login and ``/api`` routes for plain ``panel serve``, as ``seamless serve`` has.

Usage (from the repository root)::

    SEAMLESS_CONFIG=config/config.yaml panel serve panel_app/app.py --address 127.0.0.1 \\
        --auth-module panel_app/serve_hooks.py --plugins panel_app.serve_hooks

``--auth-module`` (Bokeh) reads ``get_user``, ``login_url``, ``LoginHandler``, ``logout_url``
and ``LogoutHandler`` from this module; ``--plugins`` (Panel) reads ``ROUTES``. Those APIs take
module attributes, so this module -- unlike the rest of the dashboard -- starts the dashboard
when it is loaded, through :func:`panel_app.bootstrap.for_panel_serve` (once per process,
however often it is loaded): the same gate, checks, engine and services as ``seamless serve``.

``panel serve`` then refuses to start (exit 1, the ConfigError message) where ``seamless
serve`` refuses to: dev mode (``access.dev_mode: true``, the default) on anything but a loopback
``--address`` -- ``panel serve`` without ``--address`` listens on every interface --, a non-dev
config without a cookie secret or users, ``--num-procs`` other than 1. The cookie secret is the
gate's (``SEAMLESS_COOKIE_SECRET`` or ``access.cookie_secret``): do not pass ``--cookie-secret``.
Do not combine these hooks with Panel's ``--basic-auth`` or ``--oauth-provider``: the dashboard
serves only users this login signed in.

Without these flags ``panel serve panel_app/app.py`` serves no dashboard, only a page saying
how to serve it (:func:`panel_app.bootstrap.session_page`).
"""

from __future__ import annotations

from panel_app.bootstrap import for_panel_serve

_bootstrap = for_panel_serve()
_provider = _bootstrap.auth_provider()

get_user = _provider.get_user
login_url = _provider.login_url
LoginHandler = _provider.login_handler
logout_url = _provider.logout_url
LogoutHandler = _provider.logout_handler
ROUTES = _bootstrap.api_routes()
