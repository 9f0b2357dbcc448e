"""Supervision: systemd's notify protocol and the probe status of one engine process.

``seamless run`` and ``seamless serve`` run a :class:`Supervisor` (docs/operations.md,
"Running under systemd"). It speaks the ``sd_notify`` protocol over ``$NOTIFY_SOCKET`` (an
``AF_UNIX`` datagram socket; a leading ``@`` is the abstract namespace) without libsystemd:

* ``READY=1`` once the engine has started: restored from its log, reconciled with the broker;
* ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` while the process is live (the dispatch loop is
  running and no dispatch round has run longer than the stall limit), and never while it
  stalls, so systemd's watchdog kills and restarts a hung engine;
* ``STOPPING=1`` when a clean stop begins (an explicit :meth:`Supervisor.stopping`, or the
  engine going from ready to not ready);
* ``STATUS=...`` when the status words change (``systemctl status`` shows them).

Without ``$NOTIFY_SOCKET`` the supervisor does nothing. ``$WATCHDOG_PID`` naming another
process turns the watchdog off (``sd_watchdog_enabled``'s rule).

:func:`engine_status` is the same judgement for the dashboard's ``/livez`` and ``/readyz``: it
reads only the bus's liveness figures and the kernel's lifecycle, never trading state.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: The stall limit when ``bus.stall_warn_s`` is 0 (the report is off, the watchdog is not).
DEFAULT_STALL_S = 5.0
#: How often the supervisor thread looks at the engine (READY/STOPPING latency).
POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class ProbeStatus:
    """What a probe may say about the process: no trading data, only these flags and words.

    ``live``: the process is up and its dispatch loop is not stalled (restart it otherwise).
    ``ready``: the engine has started (restored, reconciled) and is not stopping.
    ``words``: ``ok``, ``starting``, ``stopping``, ``stalled`` or ``dispatch stopped``.
    """

    live: bool
    ready: bool
    words: str


STARTING = ProbeStatus(live=True, ready=False, words="starting")


def stall_limit_s(kernel: Any) -> float:
    """The dispatch-round length past which the engine counts as stalled: ``bus.stall_warn_s``,
    or :data:`DEFAULT_STALL_S` when that report is switched off (0)."""
    config = getattr(kernel, "config", None)
    limit = float(getattr(getattr(config, "bus", None), "stall_warn_s", 0.0) or 0.0)
    return limit if limit > 0 else DEFAULT_STALL_S


def engine_status(kernel: Any | None) -> ProbeStatus:
    """Liveness and readiness of ``kernel`` (None: not built yet, still restoring).

    Any thread may call it: it reads the kernel's ``ready``/``stopping`` flags, whether the
    bus's dispatcher thread runs, and how long its current round has taken.
    """
    if kernel is None:
        return STARTING
    if getattr(kernel, "stopping", False):
        return ProbeStatus(live=True, ready=False, words="stopping")
    ready = bool(getattr(kernel, "ready", True))  # a mirror is served only once it started
    bus = getattr(kernel, "bus", None)
    if bus is not None and ready:
        if not getattr(bus, "dispatcher_alive", True):
            return ProbeStatus(live=False, ready=ready, words="dispatch stopped")
        if bus.dispatch_busy_s > stall_limit_s(kernel):
            return ProbeStatus(live=False, ready=ready, words="stalled")
    return ProbeStatus(live=True, ready=ready, words="ok" if ready else "starting")


class SdNotifier:
    """A minimal ``sd_notify`` client: one datagram per message to ``$NOTIFY_SOCKET``.

    ``address`` is the variable's value (a path, or ``@name`` for the abstract namespace);
    None or ``""`` makes every call a no-op. A send that fails is logged, never raised: the
    engine must not stop because its supervisor went away.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._target: str | bytes | None = None
        self._sock: socket.socket | None = None
        if self.address is None:
            return
        if self.address.startswith("@"):
            self._target = b"\0" + self.address[1:].encode()
        elif self.address.startswith("/"):
            self._target = self.address
        else:  # vsock and other schemes are not ours to speak
            log.warning("NOTIFY_SOCKET %r: not a unix socket path; not notifying", self.address)
            self.address = None
            return
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=ok"``) as one message; True if sent."""
        sock, target = self._sock, self._target
        if sock is None or target is None:
            return False
        try:
            sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            log.warning("sd_notify %s to %s failed: %s", fields, self.address, exc)
            return False
        return True

    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (how often to ping), or None for no watchdog:
    unset, not a positive integer, or ``$WATCHDOG_PID`` naming another process."""
    raw = env.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) <= 0:
        if raw:
            log.warning("WATCHDOG_USEC=%r: expected a positive integer; watchdog off", raw)
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(raw) / 2_000_000


class Supervisor:
    """Notifies systemd about one engine process from its own thread (see the module doc).

    ``status`` is called every :data:`POLL_S` from that thread; it must be cheap and safe off
    the engine thread (:func:`engine_status` of the current kernel is). ``env`` defaults to
    ``os.environ``. Use :meth:`from_env`, then :meth:`start`; :meth:`stopping` when a clean
    stop begins and :meth:`close` at the end.
    """

    def __init__(
        self,
        status: Callable[[], ProbeStatus],
        notifier: SdNotifier,
        watchdog_s: float | None,
    ) -> None:
        self._status = status
        self.notifier = notifier
        #: Seconds between two ``WATCHDOG=1`` (half ``WATCHDOG_USEC``), or None.
        self.watchdog_s = watchdog_s
        self.pings = 0
        self.withheld = 0  # polls at which a ping was due but the engine was not live
        self._ready_sent = False
        self._stopping_sent = False
        self._words = ""
        self._next_ping = 0.0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(
        cls, status: Callable[[], ProbeStatus], env: Mapping[str, str] | None = None
    ) -> Supervisor:
        """A supervisor for ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (inert without them)."""
        env = os.environ if env is None else env
        return cls(status, SdNotifier(env.get("NOTIFY_SOCKET")), watchdog_interval_s(env))

    def start(self) -> Supervisor:
        """Start the thread (nothing to start without a socket)."""
        if self.notifier.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sd-notify", daemon=True)
            self._thread.start()
        return self

    def stopping(self) -> None:
        """A clean stop begins: ``STOPPING=1`` (once). The watchdog keeps pinging until
        :meth:`close`, so a long final snapshot is not mistaken for a hang."""
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notifier.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.notifier.close()

    def poll(self) -> None:
        """One look at the engine: READY, STOPPING, STATUS and a due WATCHDOG ping."""
        status = self._status()
        if status.ready and not self._ready_sent:
            self._ready_sent = True
            self.notifier.notify("READY=1", f"STATUS={status.words}")
            self._words = status.words
        elif self._ready_sent and not status.ready:
            self.stopping()  # ready only ends when a stop begins
        if status.words != self._words and not self._stopping_sent:
            self._words = status.words
            self.notifier.notify(f"STATUS={status.words}")
            if not status.live:
                log.error("engine not live (%s): withholding WATCHDOG=1", status.words)
        now = time.monotonic()
        if self.watchdog_s is None or now < self._next_ping:
            return
        if status.live:
            if self.notifier.notify("WATCHDOG=1"):
                self.pings += 1
            self._next_ping = now + self.watchdog_s
        else:
            self.withheld += 1

    def _run(self) -> None:
        tick = min(POLL_S, self.watchdog_s) if self.watchdog_s else POLL_S
        while True:
            try:
                self.poll()
            except Exception:  # the supervisor must outlive any odd kernel state
                log.exception("supervisor poll failed")
            if self._closing.wait(tick):
                return
