"""Availability: ``seamless run`` (or ``serve``) restarted as systemd would, under random faults.

Run: ``python -m bench availability [--faults 50] [--serve] [--seed 1] [--json]``.

The bench plays systemd for a ``Type=notify`` unit with ``Restart=always``, ``RestartSec=0.1``
and ``WatchdogSec`` (``--watchdog-s``, 1 s): each incarnation gets its own ``NOTIFY_SOCKET``
(a datagram socket the bench reads) and ``WATCHDOG_USEC``. Readiness is probed every 100 ms:
``READY=1`` on the notify socket for ``seamless run``, ``GET /readyz`` answering 200 for
``seamless serve``. After ``--min-s``..``--max-s`` s of readiness it injects one fault, in a
shuffled order with ``--hang-share`` (0.3) of them hangs:

* ``kill`` -- SIGKILL (a crash): detected at once, as systemd sees the process exit;
* ``hang`` -- SIGSTOP (a hung process): detected when no ``WATCHDOG=1`` came for the watchdog
  interval, then SIGKILL, as systemd's watchdog does.

Time to ready after a fault = detection + RestartSec + process start to ready. The checks the
bench runs between incarnations (below) are not counted: systemd would not run them.

After each fault the crash loop's checks run (``bench/crash_loop.py``): every event
acknowledged before the fault (printed after its commit by ``seamless run --print-events
critical``, or received on the SSE stream of ``seamless serve``) is in the log with its seq;
seqs are gapless; restore equals a full replay. The last incarnation is stopped with SIGTERM
and must send ``STOPPING=1``.

Availability at one fault every 30 minutes: ``1 - mean(time to ready) / 1800 s``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bench_parser, report
from testkit.crash_loop import RunTarget, ServeTarget, Tally, check_kill
from testkit.engine_process import write_config
from testkit.measure import percentile

RESTART_SEC = 0.1  # systemd's default RestartSec
PROBE_EVERY_S = 0.1
FAULT_INTERVAL_S = 1800.0  # availability is stated at one fault every 30 minutes


class NotifySocket(threading.Thread):
    """A ``NOTIFY_SOCKET`` for one incarnation: records each message with its arrival time."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="notify-socket")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._closing = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode("utf-8", "replace").splitlines():
                self.messages.append((now, line))

    def first(self, message: str) -> float | None:
        """When ``message`` (e.g. ``READY=1``) first arrived, or None."""
        return next((t for t, m in list(self.messages) if m == message), None)

    def last(self, message: str) -> float | None:
        return next((t for t, m in reversed(list(self.messages)) if m == message), None)

    def close(self) -> None:
        self._closing.set()
        self.join(1.0)
        self.sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Figures:
    """What the loop measured."""

    downtime: dict[str, list[float]] = field(default_factory=lambda: {"kill": [], "hang": []})
    start_to_ready: list[float] = field(default_factory=list)
    watchdog_false_kills: int = 0
    stopping_sent: bool = False


class Supervisor:
    """Starts incarnations of a crash-loop target with a notify socket and probes readiness."""

    def __init__(self, target: RunTarget | ServeTarget, watchdog_s: float, folder: Path) -> None:
        self.target = target
        self.watchdog_s = watchdog_s
        self.folder = folder
        self.notify: NotifySocket | None = None
        self.incarnation = 0

    def start(self) -> float:
        """Start one incarnation and wait until it is ready; returns start-to-ready seconds."""
        self.incarnation += 1
        path = self.folder / f"notify-{self.incarnation}.sock"
        self.notify = NotifySocket(path)
        os.environ["NOTIFY_SOCKET"] = str(path)
        os.environ["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1_000_000))
        began = time.monotonic()
        self._spawn()
        deadline = began + 90
        while time.monotonic() < deadline:
            if self._ready():
                ready = time.monotonic() - began
                if isinstance(self.target, ServeTarget):
                    assert self.target.server is not None
                    self.target.server.recorder.start()  # acknowledged = received on SSE
                return ready
            self._check_alive()
            time.sleep(PROBE_EVERY_S)
        raise RuntimeError(f"{self.target.name} not ready after 90 s")

    def _spawn(self) -> None:
        if isinstance(self.target, RunTarget):
            from testkit.engine_process import run_engine

            out, err = self.folder / "out.jsonl", self.folder / "err.txt"
            self.target.proc = run_engine(self.target.config, out, err)
        else:
            from testkit.serve_target import ServeProcess

            self.target.server = ServeProcess(
                self.target.config, self.target.token, self.folder / "err.txt"
            )

    def _process(self) -> subprocess.Popen[bytes]:
        if isinstance(self.target, RunTarget):
            assert self.target.proc is not None
            return self.target.proc
        assert self.target.server is not None
        return self.target.server.proc

    def _check_alive(self) -> None:
        code = self._process().poll()
        if code is not None:
            err = (self.folder / "err.txt").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"{self.target.name} exited with {code} while starting:\n{err}")

    def _ready(self) -> bool:
        if isinstance(self.target, RunTarget):
            assert self.notify is not None
            return self.notify.first("READY=1") is not None
        assert self.target.server is not None
        return _http_status(self.target.server.port, "/readyz") == 200

    def watch(self, seconds: float) -> bool:
        """Let the incarnation run ``seconds``, as systemd's watchdog would: False (and the
        process killed) if no ``WATCHDOG=1`` came for the watchdog interval."""
        assert self.notify is not None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(PROBE_EVERY_S)
            last = self.notify.last("WATCHDOG=1") or self.notify.first("READY=1") or 0.0
            if time.monotonic() - last > self.watchdog_s:
                self.target.stop(signal.SIGKILL)
                return False
        return True

    def fault(self, kind: str) -> float:
        """Inject ``kind`` and return the seconds until the supervisor detected it and the
        process is gone."""
        assert self.notify is not None
        proc = self._process()
        began = time.monotonic()
        if kind == "kill":
            self.target.stop(signal.SIGKILL)
            return time.monotonic() - began
        proc.send_signal(signal.SIGSTOP)
        while True:  # the watchdog: WATCHDOG_USEC without a ping
            time.sleep(PROBE_EVERY_S / 10)
            last = self.notify.last("WATCHDOG=1") or began
            if time.monotonic() - max(last, began) > self.watchdog_s:
                break
        detected = time.monotonic() - began
        self.target.stop(signal.SIGKILL)
        return detected

    def stop_clean(self) -> bool:
        """SIGTERM; True if the incarnation said STOPPING=1."""
        self.target.stop(signal.SIGTERM)
        assert self.notify is not None
        time.sleep(0.1)
        return self.notify.first("STOPPING=1") is not None

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None


def _http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_EVERY_S)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            conn.close()


def fault_schedule(faults: int, hang_share: float, rng: random.Random) -> list[str]:
    """``faults`` fault kinds in random order, ``round(faults * hang_share)`` of them hangs."""
    hangs = round(faults * hang_share)
    kinds = ["hang"] * hangs + ["kill"] * (faults - hangs)
    rng.shuffle(kinds)
    return kinds


def availability_loop(
    sup: Supervisor,
    kinds: list[str],
    rng: random.Random,
    min_s: float,
    max_s: float,
    tally: Tally,
) -> Figures:
    """Start, run ``min_s``..``max_s`` s, inject the next fault of ``kinds``, restart, until
    every fault was injected; then a clean SIGTERM stop."""
    faults = len(kinds)
    figures = Figures()
    db = sup.folder / "crash.duckdb"
    figures.start_to_ready.append(sup.start())
    done = 0
    while done < faults:
        if not sup.watch(rng.uniform(min_s, max_s)):
            figures.watchdog_false_kills += 1
        else:
            kind = kinds[done]
            detected = sup.fault(kind)
            done += 1
            tally.cycles += 1
            check_kill(db, sup.target.acknowledged(), tally, done)
            sup.close()
            time.sleep(RESTART_SEC)
            ready = sup.start()
            figures.start_to_ready.append(ready)
            figures.downtime[kind].append(detected + RESTART_SEC + ready)
            if done % 10 == 0 or done == faults:
                print(
                    f"fault {done}/{faults}: {kind}, ready again after "
                    f"{figures.downtime[kind][-1]:.2f} s; {tally.acknowledged} acknowledged, "
                    f"{tally.lost} lost",
                    flush=True,
                )
            continue
        sup.close()
        time.sleep(RESTART_SEC)
        figures.start_to_ready.append(sup.start())
    figures.stopping_sent = sup.stop_clean()
    check_kill(db, sup.target.acknowledged(), tally, faults + 1)
    sup.close()
    return figures


def summarize(target: str, figures: Figures, tally: Tally, elapsed: float) -> dict[str, Any]:
    """The figures as one JSON-ready dict."""
    every = figures.downtime["kill"] + figures.downtime["hang"]

    def spread(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "n": len(values),
            "p50": round(percentile(values, 50), 3),
            "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3),
        }

    mean = statistics.fmean(every) if every else 0.0
    return {
        "target": target,
        "faults": len(every),
        "time_to_ready_s": spread(every),
        "after_kill_s": spread(figures.downtime["kill"]),
        "after_hang_s": spread(figures.downtime["hang"]),
        "process_start_to_ready_s": spread(figures.start_to_ready),
        "events_acknowledged": tally.acknowledged,
        "acknowledged_events_lost": tally.lost,
        "watchdog_false_kills": figures.watchdog_false_kills,
        "stopping_sent_on_sigterm": figures.stopping_sent,
        "availability_at_one_fault_per_30_min": round(1 - mean / FAULT_INTERVAL_S, 6),
        "failures": len(tally.failures),
        "elapsed_s": round(elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("availability", __doc__)
    parser.add_argument("--faults", type=int, default=50, help="faults to inject (50)")
    parser.add_argument("--serve", action="store_true", help="seamless serve instead of run")
    parser.add_argument("--watchdog-s", type=float, default=1.0, help="WatchdogSec (1.0)")
    parser.add_argument("--min-s", type=float, default=0.5, help="shortest uptime before a fault")
    parser.add_argument("--max-s", type=float, default=2.0, help="longest uptime before a fault")
    parser.add_argument("--rate", type=float, default=500.0, help="synthetic ticks per second")
    parser.add_argument("--hang-share", type=float, default=0.3, help="share of hangs (0.3)")
    parser.add_argument("--seed", type=int, default=1)
    tally = Tally()

    def measure(args: argparse.Namespace) -> dict[str, Any]:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="seamless-availability-") as tmp:
            folder = Path(tmp)
            config = write_config(folder, args.rate)
            target = ServeTarget(config) if args.serve else RunTarget(config)
            sup = Supervisor(target, args.watchdog_s, folder)
            try:
                rng = random.Random(args.seed)
                kinds = fault_schedule(args.faults, args.hang_share, rng)
                figures = availability_loop(sup, kinds, rng, args.min_s, args.max_s, tally)
            finally:
                sup.close()
                with contextlib.suppress(Exception):
                    target.stop(signal.SIGKILL)
        summary = summarize(target.name, figures, tally, time.monotonic() - started)
        print(json.dumps(summary, indent=2))
        for failure in tally.failures[:20]:
            print(failure)
        return summary

    report(parser.parse_args(argv), measure)
    return 1 if tally.failures or tally.lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
