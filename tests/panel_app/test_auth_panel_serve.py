"""Plain ``panel serve`` with ``panel_app/serve_hooks.py``: the same login and /api routes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.access import hash_password
from engine.config import COOKIE_SECRET_ENV, SeamlessConfig
from tests.panel_app.access_server import Client, free_port

ROOT = Path(__file__).resolve().parents[2]
PANEL = Path(sys.executable).parent / "panel"
APP = """
import panel as pn
from panel_app.auth import current_role, current_user
pn.pane.Markdown(f"whoami={current_user()}/{current_role()}").servable()
"""
HAS_ACCESS_SECTION = "access" in {f.name for f in dataclasses.fields(SeamlessConfig)}


def write_config(tmp_path: Path, access: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{db_path: '{tmp_path / 'seamless.duckdb'}'}}\n"
        "feed: {kind: none}\n"
        "runner: {autostart: false}\n"
        f"broker: {{account_path: '{tmp_path / 'broker.json'}'}}\n" + access
    )
    return config


def panel_serve(tmp_path: Path, config: Path, port: int) -> subprocess.Popen[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if k != COOKIE_SECRET_ENV}
    env.update(SEAMLESS_CONFIG=str(config), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [
            str(PANEL), "serve", str(app), "--port", str(port), "--address", "127.0.0.1",
            "--auth-module", "panel_app/serve_hooks.py", "--plugins", "panel_app.serve_hooks",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_until_serving(proc: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"panel serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if Client(port).request("GET", "/login", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("panel serve did not start")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Client, subprocess.Popen[str]]]:
    port = free_port()
    proc = panel_serve(tmp_path, write_config(tmp_path), port)
    try:
        wait_until_serving(proc, port)
        yield Client(port), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_panel_serve_with_the_hooks_requires_login_for_pages_and_api(
    served: tuple[Client, subprocess.Popen[str]],
) -> None:
    client, _ = served

    page = client.request("GET", "/app")
    api = client.request("GET", "/api/state")

    assert page.status == 302 and "login" in page.headers["Location"]
    assert api.status == 401


def test_panel_serve_with_the_hooks_logs_in_the_dev_operator(
    served: tuple[Client, subprocess.Popen[str]],
) -> None:
    client, _ = served

    login = client.login("operator", "operator")
    state = client.request("GET", "/api/state")

    assert login.status == 302
    assert state.status == 200 and state.json()["seq"] >= 1


@pytest.mark.skipif(not HAS_ACCESS_SECTION, reason="SeamlessConfig has no access section yet")
def test_panel_serve_refuses_a_non_dev_config_without_cookie_secret(tmp_path: Path) -> None:
    access = (
        "access:\n  dev_mode: false\n  users:\n"
        f"    alice: {{role: operator, password_hash: '{hash_password('pw')}'}}\n"
    )
    proc = panel_serve(tmp_path, write_config(tmp_path, access), free_port())

    output, _ = proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert "SEAMLESS_COOKIE_SECRET" in output and "refusing to start" in output
