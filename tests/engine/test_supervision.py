"""systemd's notify protocol (engine/supervision.py): a real ``seamless run`` process sends
READY=1, WATCHDOG=1 and STOPPING=1 to the socket the test binds, as its main process; a
real kernel whose dispatch loop is blocked by a subscriber gets no WATCHDOG=1 until it is
released."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.supervision import (
    STARTING,
    SdNotifier,
    Supervisor,
    engine_status,
    watchdog_interval_s,
)
from streams.events import Heartbeat
from testkit.access_server import make_kernel
from testkit.engine_process import NotifyListener, write_config


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    found = NotifyListener(str(tmp_path / "notify.sock"))
    yield found
    found.close()


# -- the real process ---------------------------------------------------------------------------
def test_seamless_run_sends_ready_watchdog_and_stopping_from_its_main_process(
    tmp_path: Path,
) -> None:
    # The abstract namespace ('@'), as systemd itself uses.
    listener = NotifyListener(f"@seamless-test-{uuid.uuid4().hex}")
    config = write_config(tmp_path, rate=50)
    proc = listener.start("run", "--config", str(config), folder=tmp_path, watchdog_usec=400_000)
    try:
        ready_at, ready_pid, ready = listener.wait_for("READY=1", timeout=60)
        listener.wait_for("WATCHDOG=1", timeout=5, after=ready_at)
        time.sleep(1.0)  # about five more pings at 0.2 s (half of WATCHDOG_USEC)
        proc.send_signal(signal.SIGTERM)
        stop_at, stop_pid, _ = listener.wait_for("STOPPING=1", timeout=30)
        assert proc.wait(30) == 0, (tmp_path / "err.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()

    assert ready_pid == stop_pid == proc.pid  # NotifyAccess=main accepts them
    assert "STATUS=ok" in ready.split("\n")
    pings = [t for t in listener.times("WATCHDOG=1") if ready_at < t < stop_at]
    assert len(pings) >= 4, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 0.4, gaps  # never as long as WATCHDOG_USEC itself
    assert not any(t > stop_at for t in listener.times("READY=1"))


# -- the watchdog against a real dispatch loop ---------------------------------------------------
def test_the_watchdog_stops_pinging_while_a_subscriber_blocks_the_dispatch_loop(
    tmp_path: Path, listener: NotifyListener
) -> None:
    kernel = make_kernel(tmp_path, bus={"stall_warn_s": 0.3})  # stalled after 0.3 s
    release = threading.Event()
    kernel.bus.subscribe("system.stall_probe", lambda _e: release.wait(10), name="test.blocker")
    supervisor = Supervisor.from_env(
        lambda: engine_status(kernel),
        env={"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "100000"},
    ).start()
    try:
        listener.wait_for("READY=1", timeout=5)
        listener.wait_for("WATCHDOG=1", timeout=5)

        blocked_at = time.monotonic()
        kernel.bus.publish(Heartbeat(component="stall_probe", count=1, ts_event=time.time_ns()))
        listener.wait_for("STATUS=stalled", timeout=5, after=blocked_at)
        during = engine_status(kernel)
        time.sleep(1.0)
        released_at = time.monotonic()
        release.set()
        resumed_at, _, _ = listener.wait_for("WATCHDOG=1", timeout=5, after=released_at)
        assert kernel.bus.join(5)
        after = engine_status(kernel)

        kernel.stop()
        listener.wait_for("STOPPING=1", timeout=5, after=resumed_at)
    finally:
        release.set()
        supervisor.close()
        kernel.stop()

    assert (during.live, during.ready, during.words) == (False, True, "stalled")
    assert (after.live, after.ready, after.words) == (True, True, "ok")
    # 0.3 s to count as stalled, then at most one ping already on its way; none after that.
    pings_while_stalled = [
        t for t in listener.times("WATCHDOG=1") if blocked_at + 0.45 < t < released_at
    ]
    assert pings_while_stalled == []
    assert supervisor.withheld >= 5
    assert resumed_at - released_at < 1.0
    assert engine_status(kernel).words == "stopping"


# -- the pieces ---------------------------------------------------------------------------------
def test_without_notify_socket_the_supervisor_does_nothing() -> None:
    supervisor = Supervisor.from_env(lambda: STARTING, env={"WATCHDOG_USEC": "100000"}).start()

    assert not supervisor.notifier.enabled
    assert supervisor.notifier.notify("READY=1") is False
    supervisor.stopping()
    supervisor.close()


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    mine = str(os.getpid())

    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 1.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_s({}) is None


def test_a_notifier_sends_to_a_path_socket(listener: NotifyListener) -> None:
    notifier = SdNotifier(listener.address)

    assert notifier.notify("STATUS=hello", "READY=1")
    message = listener.wait_for("READY=1", timeout=5)
    notifier.close()

    assert message[2] == "STATUS=hello\nREADY=1"
    assert message[1] == os.getpid()
    assert notifier.notify("READY=1") is False  # closed: a no-op


def test_a_notify_socket_that_is_gone_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SdNotifier(str(tmp_path / "nobody-listens.sock"))

    assert notifier.notify("WATCHDOG=1") is False
    notifier.close()


def test_a_kernel_still_restoring_is_live_but_not_ready() -> None:
    assert engine_status(None) == STARTING
    assert STARTING.live and not STARTING.ready


# -- the unit files -----------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["seamless-run.service", "seamless-serve.service"])
def test_the_unit_files_supervise_with_notify_and_a_watchdog(unit: str) -> None:
    import configparser
    import shlex

    from panel_app.cli import build_parser

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(Path(__file__).parents[2] / "deploy" / "systemd" / unit, encoding="utf-8")
    service = parser["Service"]

    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "always"
    assert service["WatchdogSec"] == "10"
    program, *argv = shlex.split(service["ExecStart"])
    assert program.endswith("/bin/seamless")
    args = build_parser().parse_args(argv)  # every flag exists
    assert args.command == unit.removeprefix("seamless-").removesuffix(".service")
