"""Dashboard tabs as plugins (``seamless.panels``, ``dashboard.panels``): a session shows the
configured tabs after the built-in ones; a tab whose factory fails shows the error instead;
a configured tab plugin that cannot be imported stops the engine's start-up, naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import panel as pn
import pytest

from streams.errors import PluginError
from testkit.dashboard import engine_config
from tests.engine.test_plugins import _distribution, plugins_on_path

TABS = """
import panel as pn


class Greeting(pn.viewable.Viewer):
    def __init__(self, engine, **params):
        super().__init__(**params)
        self.engine = engine

    def __panel__(self):
        return pn.pane.Markdown(f"hello from {self.engine.config.engine.name}")


def greeting(engine):
    return Greeting(engine)


def failing(engine):
    raise RuntimeError("tab factory broke")


def not_a_view(engine):
    return 42
"""


@pytest.fixture
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("tabs_site")
    (root / "tab_plugin.py").write_text(TABS)
    (root / "tab_exploding.py").write_text("raise ImportError('tab module is broken')\n")
    _distribution(
        root,
        "tab-plugin",
        "2.0.0",
        {
            "seamless.panels": {
                "greeting": "tab_plugin:greeting",
                "failing": "tab_plugin:failing",
                "not_a_view": "tab_plugin:not_a_view",
                "exploding_tab": "tab_exploding:factory",
            }
        },
    )
    with plugins_on_path(root):
        yield root


def test_configured_tabs_follow_the_built_in_ones(installed: Path, tmp_path: Path) -> None:
    from engine.kernel import Kernel
    from panel_app.app import DashboardSession
    from panel_app.services import release_services

    config = engine_config(tmp_path, panels=["greeting", "failing", "not_a_view"])
    kernel = Kernel.from_config(config).start()
    try:
        session = DashboardSession(kernel, "erin", "operator")
        try:
            tabs = dict(zip(session.tab_names, session.tabs.objects, strict=True))
            assert session.tab_names[-3:] == ["greeting", "failing", "not_a_view"]
            assert session.tab_names[0] == "Dashboard"
            greeting: Any = tabs["greeting"]  # the Viewer, rendered by the tabs
            assert "hello from seamless-paper" in greeting.object
            failing = tabs["failing"]
            assert isinstance(failing, pn.pane.Alert)
            assert "'failing'" in failing.object and "tab-plugin 2.0.0" in failing.object
            assert "RuntimeError: tab factory broke" in failing.object
            assert "returned int, not a Panel Viewer" in tabs["not_a_view"].object
        finally:
            session.dispose()
    finally:
        release_services(kernel)
        kernel.stop()


def test_a_broken_configured_tab_stops_start_up_naming_it(installed: Path, tmp_path: Path) -> None:
    from engine.kernel import Kernel

    config = engine_config(tmp_path, panels=["exploding_tab"])

    with pytest.raises(PluginError, match=r"'exploding_tab'.*tab-plugin 2.0.0.*tab module is"):
        Kernel.from_config(config)
    assert not Path(config.storage.db_path).exists()


def test_an_unknown_tab_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    from streams.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dashboard.panels\[0\]: expected an installed panel"):
        engine_config(tmp_path, panels=["nope"])
