"""Plain ``panel serve panel_app/app.py`` keeps the rules of ``seamless serve`` (issue 22).

With the hooks (``--auth-module panel_app/serve_hooks.py --plugins panel_app.serve_hooks``):
a login for every page and ``/api`` route, viewers read-only, dev mode refused off loopback
with ``seamless serve``'s message, a non-dev config without a cookie secret refused. Without
them: no engine and no dashboard, only a page that says how to serve it -- also for a visitor
who forges a login cookie with dev mode's public secret. Real ``panel serve`` processes, real
HTTP, and each page's document read over the server's websocket as its browser would.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.web import create_signed_value

from engine.access import DEV_COOKIE_SECRET, hash_password
from engine.config import COOKIE_SECRET_ENV
from panel_app import cli
from panel_app.bootstrap import CONFIG_ENV, LOOPBACK_ONLY, SERVE_HOOKS_FLAGS
from testkit import free_port
from testkit.access_server import Client, document_models, pull_document

ROOT = Path(__file__).resolve().parents[2]
PANEL = Path(sys.executable).parent / "panel"
HOOKS = tuple(SERVE_HOOKS_FLAGS.split())
JSON = {"Content-Type": "application/json"}
COMMAND_LABELS = {"Start", "Pause", "Resume", "Stop", "Flatten all…", "Reset risk halt"}
TIMEOUT_MS = 20_000


@dataclasses.dataclass
class Served:
    """One ``panel serve`` process on a free port, with the folder of its config and files."""

    proc: subprocess.Popen[str]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.folder / "seamless.duckdb"


def write_config(folder: Path, access: str = "") -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f"storage: {{db_path: '{folder / 'seamless.duckdb'}'}}\n"
        "feed: {kind: none}\n"
        "runner: {autostart: false}\n"
        f"broker: {{account_path: '{folder / 'broker.json'}'}}\n"
        f"dashboard: {{prefs_dir: '{folder / 'ui_prefs'}'}}\n" + access
    )
    return config


def panel_serve(config: Path, port: int, *flags: str) -> subprocess.Popen[str]:
    """``panel serve panel_app/app.py --port port *flags`` from the repository root."""
    env = {k: v for k, v in os.environ.items() if k != COOKIE_SECRET_ENV}
    env.update({CONFIG_ENV: str(config), "PYTHONPATH": str(ROOT)})
    return subprocess.Popen(
        [str(PANEL), "serve", "panel_app/app.py", "--port", str(port), *flags],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def start(folder: Path, port: int, *flags: str) -> Served:
    """A served app, once its port answers (fails with the server's output if it exits)."""
    proc = panel_serve(write_config(folder), port, *flags)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"panel serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            Client(port).request("GET", "/", timeout=1)
            return Served(proc, port, folder)
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise AssertionError("panel serve did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def texts(doc: dict[str, Any]) -> str:
    """Every text, label, title and name of a document's models (HTML unescaped), one a line."""
    out = []
    for model in document_models(doc):
        attributes = model.get("attributes", {})
        out += [str(attributes[k]) for k in ("text", "label", "title", "name") if k in attributes]
    return html.unescape("\n".join(out))


def plain(doc: dict[str, Any]) -> str:
    """What a document's models say, as text (tags removed)."""
    return re.sub(r"<[^>]+>", "", texts(doc))


def command_buttons(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The attributes of the runner's command buttons in a document."""
    found = []
    for model in document_models(doc):
        attributes = model.get("attributes", {})
        label = attributes.get("label")
        if isinstance(label, str) and label in COMMAND_LABELS:
            found.append(attributes)
    return found


def runner_state(client: Client) -> Any:
    reply = client.request("GET", "/api/state?path=runner")
    assert reply.status == 200, reply.body
    return reply.json()["value"]


# -- with the hooks ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real app with the hooks, in dev mode (the default access config) on loopback."""
    port = free_port()
    origin = ("--allow-websocket-origin", f"127.0.0.1:{port}")  # for the browser test
    served = start(
        tmp_path_factory.mktemp("hooked"), port, "--address", "127.0.0.1", *origin, *HOOKS
    )
    yield served
    stop(served.proc)


def test_with_the_hooks_every_page_and_the_api_need_a_login(hooked: Served) -> None:
    client = Client(hooked.port)

    root = client.request("GET", "/")
    app = client.request("GET", "/app")
    state = client.request("GET", "/api/state")
    command = client.request("POST", "/api/command", b'{"command": "start"}', JSON)

    assert root.status == 302 and "/login" in root.headers["Location"]
    assert app.status == 302 and "/login" in app.headers["Location"]
    assert (state.status, command.status) == (401, 401)


def test_with_the_hooks_the_dev_operator_logs_in_to_the_dashboard(hooked: Served) -> None:
    client = Client(hooked.port)

    login = client.login("operator", "operator")
    state = client.request("GET", "/api/state")
    doc = pull_document(client, "/app")

    assert login.status == 302
    assert state.status == 200 and state.json()["seq"] >= 1
    assert 'data-role="operator"' in texts(doc)


def test_with_the_hooks_a_viewer_gets_a_read_only_dashboard_and_may_not_command(
    hooked: Served,
) -> None:
    viewer, operator = Client(hooked.port), Client(hooked.port)
    viewer.login("viewer", "viewer")
    operator.login("operator", "operator")
    before = runner_state(viewer)

    doc = pull_document(viewer, "/app")
    refused = viewer.request("POST", "/api/command", b'{"command": "start"}', JSON)
    after_refusal = runner_state(viewer)
    accepted = operator.request("POST", "/api/command", b'{"command": "start"}', JSON)
    operator.request("POST", "/api/command", b'{"command": "stop"}', JSON)

    shown = texts(doc)
    assert 'data-role="viewer"' in shown and "Dashboard" in shown
    assert all(button.get("disabled") for button in command_buttons(doc))
    assert refused.status == 403 and after_refusal == before
    assert accepted.status == 202  # the same API, for an operator: the engine is really there


@pytest.mark.browser
def test_with_the_hooks_a_viewer_signed_in_through_the_form_sees_no_working_controls(
    hooked: Served, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(hooked.url + "/app", wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        page.fill("#username", "viewer")
        page.fill("#password", "viewer")
        page.click("button[type=submit]")
        page.locator("[data-testid=user][data-role=viewer]").first.wait_for(timeout=TIMEOUT_MS)
        page.locator(".bk-tab", has_text="Controls").first.click(timeout=TIMEOUT_MS)
        buttons = [page.locator(f".sl-cmd-{c} button").first for c in ("start", "pause", "stop")]
        buttons[0].wait_for(timeout=TIMEOUT_MS)

        assert all(button.is_disabled() for button in buttons)
        assert page.get_by_text("read-only, controls are disabled").count() >= 1
    finally:
        context.close()


@pytest.mark.parametrize("address", ["0.0.0.0", None])
def test_with_the_hooks_dev_mode_off_loopback_is_refused_as_seamless_serve_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str | None
) -> None:
    config = write_config(tmp_path)
    address_flag = ("--address", address) if address else ()

    proc = panel_serve(config, free_port(), *address_flag, "--allow-websocket-origin=*", *HOOKS)
    output, _ = proc.communicate(timeout=60)
    seamless_rc = cli.main(["serve", "--config", str(config), "--address", "0.0.0.0"])
    seamless_error = capsys.readouterr().err.strip().removeprefix("seamless serve: error: ")

    assert proc.returncode != 0 and seamless_rc == 1
    assert seamless_error == f"--address '0.0.0.0': {LOOPBACK_ONLY}"
    if address:
        assert seamless_error in output  # word for word
    else:  # panel serve without --address listens on every interface
        assert f"--address not given (every interface): {LOOPBACK_ONLY}" in output
    assert not (tmp_path / "seamless.duckdb").exists()  # refused before any engine started


def test_with_the_hooks_a_non_dev_config_without_cookie_secret_is_refused(tmp_path: Path) -> None:
    access = (
        "access:\n  dev_mode: false\n  users:\n"
        f"    alice: {{role: operator, password_hash: '{hash_password('pw')}'}}\n"
    )
    config = write_config(tmp_path, access)

    proc = panel_serve(config, free_port(), "--address", "0.0.0.0", *HOOKS)
    output, _ = proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert "SEAMLESS_COOKIE_SECRET" in output and "refusing to start" in output


# -- without the hooks -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real app without the hooks, as issue 22 found it: every interface, any origin."""
    served = start(
        tmp_path_factory.mktemp("bare"),
        free_port(),
        "--address", "0.0.0.0", "--allow-websocket-origin=*",
    )  # fmt: skip
    yield served
    stop(served.proc)


def forged_dev_login(user: str, role: str) -> dict[str, str]:
    """Login cookies signed with dev mode's public cookie secret, as anyone can make them."""
    token = json.dumps({"user": user, "username": user, "role": role}).encode()
    return {
        "user": create_signed_value(DEV_COOKIE_SECRET, "user", user).decode(),
        "id_token": create_signed_value(
            DEV_COOKIE_SECRET, "id_token", base64.urlsafe_b64encode(token).rstrip(b"=")
        ).decode(),
    }


@pytest.mark.parametrize("cookies", [{}, forged_dev_login("operator", "operator")])
def test_without_the_hooks_a_visitor_gets_only_how_to_serve_the_dashboard(
    bare: Served, cookies: dict[str, str]
) -> None:
    client = Client(bare.port, dict(cookies))

    doc = pull_document(client, "/app")

    shown = plain(doc)
    names = {m["name"] for m in document_models(doc)}
    assert "no Seamless login" in shown and "seamless serve --config FILE" in shown
    assert SERVE_HOOKS_FLAGS in shown
    assert not {"Tabs", "Button", "DataTabulator", "Figure"} & names
    assert "data-testid" not in texts(doc) and "operator" not in shown


def test_without_the_hooks_no_engine_runs_and_there_is_no_api(bare: Served) -> None:
    client = Client(bare.port)

    pull_document(client, "/app")  # a session was served
    state = client.request("GET", "/api/state")
    command = client.request("POST", "/api/command", b'{"command": "start"}', JSON)

    assert (state.status, command.status) == (404, 404)
    assert not bare.db.exists()  # the event log was never opened
