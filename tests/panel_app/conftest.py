"""Fixtures for the dashboard tests: a real engine on a temp DuckDB, a served dashboard and
headless Chromium from Debian's ``chromium`` package (installed when missing, testkit.dashboard)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testkit import free_port
from testkit.dashboard import CHROMIUM_ARGS, chromium_path, engine_config


class ServedDashboard:
    """A dashboard served in-process on a free port, over one real engine."""

    def __init__(self, kernel: Any, role_of: dict[str, str] | None = None) -> None:
        import panel as pn

        from panel_app.app import create_app

        self.kernel = kernel
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

        def app() -> Any:
            args = pn.state.session_args
            user = (args.get("user") or [b"operator"])[0].decode()
            role = (role_of or {}).get(user, "operator")
            return create_app(kernel, user, role)

        self.server = pn.serve(
            {"/": app},
            port=self.port,
            address="127.0.0.1",
            websocket_origin=[f"127.0.0.1:{self.port}"],
            threaded=True,
            show=False,
            start=True,
            # A session made by the page's GET must outlive the time the browser needs to
            # load the scripts and open the websocket, or Bokeh builds a second session for
            # the websocket (twice the work, slower pages). Closed sessions go within ~2.5 s.
            check_unused_sessions_milliseconds=250,
            unused_session_lifetime_milliseconds=2_000,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the dashboard server did not start")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_path()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from engine.kernel import Kernel
    from panel_app.services import release_services

    k = Kernel.from_config(engine_config(tmp_path_factory.mktemp("engine"))).start()
    yield k
    release_services(k)
    k.stop()


@pytest.fixture(scope="module")
def served(kernel: Any) -> Iterator[ServedDashboard]:
    from panel_app.services import services_for

    services_for(kernel)  # the per-engine aggregator subscribes once, before any session
    dash = ServedDashboard(kernel, role_of={"viewer": "viewer"})
    yield dash
    dash.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
