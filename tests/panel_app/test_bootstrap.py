"""The dashboard's one start-up: address rules, the ``panel serve`` command line, the holder."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from engine.config import AccessConfig
from panel_app import bootstrap
from panel_app.bootstrap import (
    LOOPBACK_ONLY,
    NO_LOGIN_PAGE,
    DashboardBootstrap,
    ServeOptions,
    check_listen_address,
    is_loopback,
    panel_serve_options,
)
from streams.errors import ConfigError
from testkit.access_server import make_access

DEV = AccessConfig()  # the embedded default: dev mode


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_loopback(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "", None, "192.168.1.5", "example.com"])
def test_every_other_address_is_not(address: str | None) -> None:
    assert not is_loopback(address)


def test_dev_mode_is_refused_off_loopback_naming_the_address() -> None:
    with pytest.raises(ConfigError) as refused:
        check_listen_address(DEV, "0.0.0.0")

    assert str(refused.value) == f"--address '0.0.0.0': {LOOPBACK_ONLY}"
    check_listen_address(DEV, "127.0.0.1")
    check_listen_address(make_access(), "0.0.0.0")  # not dev mode: any address


def test_no_address_means_every_interface_and_is_refused_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match=r"--address not given \(every interface\)"):
        check_listen_address(DEV, None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["panel", "serve", "app.py", "--address", "0.0.0.0"], ServeOptions("0.0.0.0", None, 1)),
        (["/x/panel/__main__.py", "serve", "--address=::1", "a.py"], ServeOptions("::1", None, 1)),
        (["bokeh", "serve", "app.py", "--num-procs", "4"], ServeOptions(None, None, 4)),
        (["panel", "serve", "app.py", "--unix-socket", "/run/s"], ServeOptions(None, "/run/s", 1)),
        # after --args, the words are the app's, not the server's
        (
            ["panel", "serve", "app.py", "--args", "--address", "0.0.0.0"],
            ServeOptions(None, None, 1),
        ),
    ],
)
def test_the_panel_serve_command_line_is_read_with_panels_own_arguments(
    argv: list[str], expected: ServeOptions
) -> None:
    assert panel_serve_options(argv) == expected


def test_a_process_not_started_by_panel_serve_has_no_known_address() -> None:
    assert panel_serve_options(["python", "-m", "pytest"]) is None
    assert panel_serve_options(["panel"]) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (None, r"--address unknown \(not started by `panel serve`\)"),
        (ServeOptions(None, "/run/s", 1), r"--unix-socket '/run/s'"),
        (ServeOptions("0.0.0.0", None, 1), r"--address '0.0.0.0'"),
    ],
)
def test_panel_serve_in_dev_mode_must_listen_on_loopback(
    options: ServeOptions | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message + ": access.dev_mode is INSECURE"):
        DashboardBootstrap(object(), access=DEV).check_panel_serve(options)


def test_panel_serve_runs_one_engine_so_one_process() -> None:
    options = ServeOptions("127.0.0.1", None, 2)

    with pytest.raises(ConfigError, match=r"--num-procs 2: .*one engine per server process"):
        DashboardBootstrap(object(), access=make_access()).check_panel_serve(options)
    DashboardBootstrap(object(), access=DEV).check_panel_serve(ServeOptions("::1", None, 1))


def test_a_server_whose_login_was_never_consulted_builds_no_dashboard() -> None:
    built: list[Any] = []
    boot = DashboardBootstrap(object(), access=DEV)

    page = boot.page(lambda *args: built.append(args))

    assert built == []
    assert NO_LOGIN_PAGE in page.objects[0].object
    assert boot.session_identity() is None


def test_the_holder_survives_a_reload_of_the_dashboard_modules() -> None:
    from panel_app import services

    holder = services.process_holder()
    kernel = holder.kernel

    reloaded = importlib.reload(services)
    importlib.reload(bootstrap)

    assert reloaded.process_holder() is holder
    assert reloaded.current_engine() is kernel
    assert bootstrap.current_engine is reloaded.current_engine
