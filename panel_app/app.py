"""The Seamless dashboard: ``seamless serve``, or ``panel serve panel_app/app.py`` with the hooks
of :mod:`panel_app.serve_hooks` (without them it serves only a page saying how to serve it).

Each browser session of a signed-in user gets a :class:`DashboardSession` built from the
process's one engine (:mod:`panel_app.bootstrap`). The session owns a
:class:`~panel_app.push.SessionBridge` through which every subscription on the shared bus and
store is made; when Panel destroys the session, ``on_session_destroyed`` disposes of all of
them, so the engine's subscriber counts return to where they were. :func:`create_app` is what
the server and tests call.

Offline by construction: every stylesheet and script is served by this server. Panel's
components name their stylesheets by CDN URL and rewrite them to the server's
``static/extensions/panel/`` only when the document says where that is; the session sets it
before building anything (:func:`_serve_assets_locally`). The Fast design's Google font is
dropped (:class:`OfflineFast`); the page uses the system font stack instead.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import panel as pn
from panel.io.callbacks import PeriodicCallback
from panel.io.resources import CDN_DIST, LOCAL_DIST
from panel.theme.fast import Fast

from engine.config import DashboardConfig
from panel_app.facade import EngineFacade, dashboard_config, studies_dir
from panel_app.prefs import UiPrefsStore
from panel_app.push import SessionBridge
from panel_app.push_support import one_message
from panel_app.services import services_for
from panel_app.toasts import ToastStack
from panel_app.views.analytics import AnalyticsView
from panel_app.views.backtests import BacktestsView
from panel_app.views.cluster import ClusterView
from panel_app.views.controls import OPERATOR, ControlsView
from panel_app.views.dashboard import DashboardView
from panel_app.views.studies import StudiesView

log = logging.getLogger(__name__)

TABS = ("Dashboard", "Controls", "Analytics", "Backtests", "Cluster")

SYSTEM_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

#: Square corners on the template's main card. Rounded corners clip the card's content, and
#: clipping the charts' canvases (composited layers) to a rounded shape makes the browser draw
#: the whole card again through a mask on every frame: in software compositing (headless, or
#: no GPU) that was 3 ms of a page's CPU per update (docs/benchmarks.md, "Page cost").
PAGE_CSS = ".pn-wrapper { border-radius: 0 !important; }"


class OfflineFast(Fast):
    """Panel's Fast design without its Google-hosted Open Sans (this server may be offline)."""

    _resources = {
        **Fast._resources,
        "font": {},
        # Relative entries resolve under the class's name; point at Fast's bundled file.
        "js_modules": {
            **Fast._resources["js_modules"],
            "fast-design": f"{CDN_DIST}bundled/fast/js/fast_design.js",
        },
    }


pn.extension(
    "tabulator",
    design=OfflineFast,
    notifications=True,
    disconnect_notification="Connection to the Seamless server lost: reload when it is back.",
    ready_notification="",
)


def _serve_assets_locally(doc: Any) -> None:
    """Make Panel resolve component stylesheets to this server instead of its CDN.

    Panel reads the document's ``dist_url`` template variable when it builds a model; it only
    sets it while rendering the page, after the app built its models with CDN URLs (and
    ``pn.state.rel_path`` is the prefix of a server mounted below ``/``).
    """
    if doc is None:
        return
    rel = pn.state.rel_path
    doc._template_variables["dist_url"] = f"{rel}/{LOCAL_DIST}" if rel else f"/{LOCAL_DIST}"


class DashboardSession:
    """Everything one browser session holds; :meth:`dispose` releases its subscriptions."""

    def __init__(self, kernel: EngineFacade, user: str, role: str) -> None:
        self.kernel = kernel
        self.user = user
        self.role = role
        self.config: DashboardConfig = dashboard_config(kernel)
        self.prefs_store = UiPrefsStore(self.config.prefs_dir)
        self.prefs = self.prefs_store.load(user)
        doc = pn.state.curdoc
        self.doc = doc if doc is not None and doc.session_context is not None else None
        _serve_assets_locally(self.doc)
        if self.doc is not None and self.prefs.get("theme", self.config.default_theme) == "dark":
            # Session-local: every component of this session is built in the dark theme
            # (the template's theme alone leaves Panel's widgets and panes light).
            setattr(pn.config, "theme", "dark")  # noqa: B010 (a read-only property to mypy)
        self.toasts = ToastStack()
        # Held toasts join the 1 s tick's message instead of costing one of their own.
        self.bridge = SessionBridge(
            self.doc,
            name=f"{user}@{id(self):x}",
            notifier=self.toasts.show,
            held_toast_timer=False,
        )
        self.services = services_for(kernel)
        self.dashboard = DashboardView(
            kernel,
            self.bridge,
            self.services.aggregates,
            self.config,
            streams=self.services.streams,
            recent=self.services.recent,
            history=self.services.history,
            prefs=self.prefs,
            save_prefs=lambda **changes: self.prefs_store.update(user, **changes),
        )
        self.controls = ControlsView(kernel, user, role, post=self.bridge.post)
        self.bridge.own(self.controls)
        self.analytics = AnalyticsView(
            self.services, self.bridge, self.config.history_page_size, kernel=kernel
        )
        self.backtests = BacktestsView(self.services.backtests, self.bridge)
        # parameter searches written by `seamless optimize` beside this engine's event log
        self.studies = StudiesView(studies_dir(getattr(kernel, "config", None)))
        tabs: list[tuple[str, Any]] = [
            ("Dashboard", self.dashboard),
            ("Controls", self.controls),
            ("Analytics", self.analytics),
            ("Backtests", pn.Column(self.backtests, self.studies, sizing_mode="stretch_width")),
        ]
        cluster = getattr(kernel, "cluster", None)
        self.cluster = ClusterView(cluster) if cluster is not None else None
        if self.cluster is not None:
            tabs.append(("Cluster", self.cluster))
        tabs.extend((name, plugin_tab(name, kernel)) for name in self.config.panels)
        self.tab_names = [name for name, _ in tabs]
        self.tabs = pn.Tabs(
            *tabs,
            dynamic=True,
            sizing_mode="stretch_width",
            css_classes=["sl-tabs"],
        )
        selected = self.prefs.get("tab")
        if selected in self.tab_names and (selected != "Controls" or role == OPERATOR):
            self.tabs.active = self.tab_names.index(selected)
        self.tabs.param.watch(self._on_tab, "active")
        self.template = self._template()
        self._periodic: Any = None
        self.dashboard.connect()
        if self.tabs.active == self.tab_names.index("Analytics"):
            self.analytics.activate()

    def _template(self) -> pn.template.BaseTemplate:
        theme = self.prefs.get("theme", self.config.default_theme)
        theme_pick = pn.widgets.RadioButtonGroup(
            label="Theme", options=["default", "dark"], value=theme
        )
        theme_pick.param.watch(self._on_theme, "value")
        user_box = pn.pane.HTML(
            f'<span data-testid="user" data-role="{self.role}">{self.user} ({self.role})</span>'
        )
        template = pn.template.FastListTemplate(
            title="Seamless",
            theme="dark" if theme == "dark" else "default",
            design=OfflineFast,
            font=SYSTEM_FONT,
            sidebar=[user_box, "Theme (applies on reload)", theme_pick],
            # The status line (runner, trading state, heartbeat, staleness) stays visible on
            # every tab; only the active tab is rendered (dynamic tabs load faster).
            main=[
                pn.Column(
                    self.dashboard.status_pane,
                    self.tabs,
                    self.toasts,
                    sizing_mode="stretch_width",
                )
            ],
            collapsed_sidebar=True,
            # Panel's busy state is process-wide: with an indicator in every session, any
            # session's callback would update all of them. Push updates need none.
            busy_indicator=None,
            raw_css=[PAGE_CSS],
        )
        return template

    def _on_tab(self, event: Any) -> None:
        name = self.tab_names[event.new]
        self.prefs = self.prefs_store.update(self.user, tab=name)
        if name == "Analytics":
            self.analytics.activate()

    def _on_theme(self, event: Any) -> None:
        self.prefs = self.prefs_store.update(self.user, theme=event.new)

    def start(self) -> None:
        """Register the session hooks (inside a served session)."""
        if self.doc is None:
            return
        # background: a periodic callback otherwise toggles Panel's process-wide busy state,
        # which updates the busy indicator of every open session (N sessions: N^2 messages).
        self._periodic = PeriodicCallback(callback=self._tick, period=1000, background=True)
        self._periodic.start()
        pn.state.on_session_destroyed(lambda _ctx: self.dispose())

    def _tick(self) -> None:
        # One message for everything the tick changes (status line, markers, toasts).
        with one_message(self.doc):
            self.dashboard.tick()
            if self.cluster is not None:
                self.cluster.tick()
            self.toasts.prune()
            self.bridge.flush_held_toasts()

    def dispose(self) -> None:
        """Release the session's subscriptions and timers (idempotent)."""
        if self._periodic is not None:
            with contextlib.suppress(Exception):  # the loop may already be gone
                self._periodic.stop()
            self._periodic = None
        self.bridge.dispose()


def plugin_tab(name: str, kernel: EngineFacade) -> Any:
    """The tab ``dashboard.panels`` names: its ``seamless.panels`` factory called with the
    engine. A factory that fails, or returns nothing Panel can show, gets a tab naming the
    plugin and the error instead: one broken tab never takes the dashboard down."""
    from panel_app.facade import plugins

    try:
        view = plugins.load(plugins.PANELS, name)(kernel)
        if not isinstance(view, pn.viewable.Viewable | pn.viewable.Viewer):
            raise TypeError(f"returned {type(view).__name__}, not a Panel Viewer")
        return view
    except Exception as exc:  # a plugin's factory may raise anything: show it, keep serving
        where = plugins.describe(plugins.PANELS, name)
        log.error("dashboard tab %s failed: %s", where, exc)
        return pn.pane.Alert(f"{where} failed: {type(exc).__name__}: {exc}", alert_type="danger")


def create_session(kernel: EngineFacade, user: str, role: str) -> DashboardSession:
    """Build and start one session's dashboard for ``user`` with ``role`` on ``kernel``."""
    session = DashboardSession(kernel, user, role)
    session.start()
    return session


def create_app(kernel: EngineFacade, user: str, role: str) -> pn.template.BaseTemplate:
    """The servable page of one session (used by ``seamless serve`` and the tests)."""
    return create_session(kernel, user, role).template


if pn.state.served:
    # `panel serve panel_app/app.py`: the dashboard only for a user the Seamless login signed
    # in (the hooks of panel_app/serve_hooks.py); otherwise only how to serve it.
    from panel_app.bootstrap import session_page

    session_page(create_app).servable(title="Seamless")
