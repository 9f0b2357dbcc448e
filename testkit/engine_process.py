"""The ``seamless`` CLI as a child process, trading the crash tests' fast synthetic config.

Used by the crash tests (``tests/engine/test_cli_crash.py`` and the serve, notify and
process-tuning tests) and the crash-loop benchmark (``python -m bench crash_loop``): write the
config, start ``seamless run --print-events critical``, wait for its first printed event, read
what it printed (each line is printed only after its event is committed) and reduce a state to
the books (positions and cash) that a restart must restore. The CLI tests run one command to
its end with :func:`seamless`; tests that write configs of their own take the no-limits
``risk`` section and the SMA strategy entry from here (:data:`NO_LIMITS`, :func:`sma_strategy`).

:class:`NotifyListener` is the systemd side of the notify protocol the engine speaks
(docs/operations.md, "Running under systemd"): a datagram socket that records what the child
sends to ``$NOTIFY_SOCKET``, with credentials on (``SO_PASSCRED``), so each message comes with
the sender's pid, as systemd sees it when it applies ``NotifyAccess=main``.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

#: The ``seamless`` console script of the running interpreter's environment.
SEAMLESS = str(Path(sys.executable).parent / "seamless")


def env() -> dict[str, str]:
    """This process's environment without ``SEAMLESS_*`` overrides (a child reads only its
    config file), unbuffered so that a kill never leaves printed events in a buffer."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    clean["PYTHONUNBUFFERED"] = "1"
    return clean


def seamless(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``seamless ARGS...`` in ``cwd`` with :func:`env` to its end, its output captured as
    text; the exit status is for the caller to check."""
    return subprocess.run(
        [SEAMLESS, *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: A config ``risk`` section with every limit off (0): the strategies trade as often as they like.
NO_LIMITS = {
    "max_position": 0,
    "max_order_notional": 0,
    "max_orders_per_second": 0,
    "daily_loss_limit": 0,
}


def sma_strategy(name: str, symbol: str, fast: int, slow: int, qty: float) -> dict[str, Any]:
    """A config ``strategies`` entry: an SMA crossover of ``fast`` and ``slow`` bars trading
    ``qty`` of ``symbol``."""
    params = {"fast": fast, "slow": slow, "qty": qty}
    return {"name": name, "strategy": "sma_crossover", "symbols": [symbol], "params": params}


def write_config(folder: Path, rate: float = 2000) -> Path:
    """``folder/crash.yaml``: a synthetic feed of ``rate`` ticks/s on AAPL and MSFT, two quick
    SMA crossovers that trade often, snapshots every second, no risk limits; the DuckDB log
    (``crash.duckdb``) and the broker's account (``broker.json``) in ``folder``."""
    config = {
        "storage": {"db_path": str(folder / "crash.duckdb"), "snapshot_interval_s": 1.0},
        "broker": {"account_path": str(folder / "broker.json")},
        "feed": {"kind": "synthetic", "symbols": ["AAPL", "MSFT"], "rate": rate, "seed": 11},
        "strategies": [
            sma_strategy("sma_aapl", "AAPL", fast=2, slow=5, qty=10),
            sma_strategy("sma_msft", "MSFT", fast=3, slow=8, qty=4),
        ],
        "risk": NO_LIMITS,
        "runner": {"heartbeat_interval_s": 0.2},
    }
    path = folder / "crash.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_engine(config: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    """Start ``seamless run --print-events critical`` on ``config``; stdout to ``out``."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [SEAMLESS, "run", "--config", str(config), "--print-events", "critical"],
            cwd=config.parent,
            env=env(),
            stdout=stdout,
            stderr=stderr,
        )


def wait_for_output(proc: subprocess.Popen[bytes], out: Path, err: Path, timeout: float) -> None:
    """Wait until the engine printed something; fail (with its stderr) if it exits first or
    prints nothing within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0:
            return
        assert proc.poll() is None, f"engine exited early: {err.read_text()}"
        time.sleep(0.05)
    raise AssertionError(f"engine printed nothing within {timeout} s: {err.read_text()}")


def printed_events(out: Path) -> list[dict[str, Any]]:
    """Complete JSON lines only: the kill may cut the last one."""
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # whatever follows the last newline is incomplete
    return [json.loads(line) for line in lines if line]


def books(state: dict[str, Any]) -> dict[str, Any]:
    """The books of a state dict (``state_to_dict``): open positions and cash, rounded so that
    float noise never counts as a difference."""
    positions = {
        sym: round(pos["qty"], 9)
        for sym, pos in state["positions"].items()
        if abs(pos["qty"]) > 1e-9
    }
    return {"positions": positions, "cash": round(state["account"]["cash"], 6)}


class NotifyListener:
    """The systemd side: a datagram socket recording (arrival, sender pid, message) triples."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, int, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        creds_size = struct.calcsize("3i")
        while not self._closed.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds_size))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = array.array("i", payload[:creds_size])[0]
            self.messages.append((time.monotonic(), pid, data.decode()))

    def wait_for(self, field: str, timeout: float, after: float = 0.0) -> tuple[float, int, str]:
        """The first message carrying ``field`` that arrived after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if message[0] > after and field in message[2].split("\n"):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no {field} within {timeout} s; got {self.messages}")

    def times(self, field: str) -> list[float]:
        return [t for t, _, text in list(self.messages) if field in text.split("\n")]

    def start(self, *args: str, folder: Path, watchdog_usec: int) -> subprocess.Popen[bytes]:
        """Start ``seamless ARGS`` in ``folder`` as systemd starts a ``Type=notify`` service:
        this socket as its ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` set; stderr to
        ``folder/err.txt``."""
        child_env = {**env(), "NOTIFY_SOCKET": self.address, "WATCHDOG_USEC": str(watchdog_usec)}
        with (folder / "err.txt").open("wb") as err:
            return subprocess.Popen(
                [SEAMLESS, *args], cwd=folder, env=child_env, stdout=subprocess.DEVNULL, stderr=err
            )

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()
