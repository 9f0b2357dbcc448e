"""The engine's housekeeping thread and health figures: snapshots on schedule, the feed-stall
halt, the dispatch watchdog, and ``health()`` for monitors.

All of it runs on wall time (the kernel's ``wall_clock``), also during a replay whose trading
runs on the data's clock: a snapshot interval, a heartbeat's age and a quiet feed are about
the machine, not the market.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.process_tuning import GC_PAUSES
from streams.clock import NS_PER_S
from streams.errors import SeamlessError
from streams.events import ACTIVE, ErrorRaised, Event, Heartbeat
from streams.sources import FeedBase

if TYPE_CHECKING:
    from engine.kernel import Kernel

log = logging.getLogger(__name__)

#: How often the housekeeping thread wakes (snapshots, feed stall, dispatch watchdog).
HOUSEKEEPING_S = 0.25


class Housekeeping:
    """Watches one live or replaying kernel from its own thread (see the module doc)."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.last_heartbeat_ns = 0
        self.stall_halted = False  # a halt for the current feed stall was sent
        self._stall_reported = False  # the current long dispatch round was noticed
        self._stall_pending = 0.0  # its report, not yet published (the inbox was full)
        #: Dispatch rounds that ran past ``bus.stall_warn_s`` so far (``/metrics``).
        self.stalls = 0

    def on_system(self, event: Event) -> None:
        """Bus subscriber of ``system.*``: the wall time the last heartbeat was made."""
        if isinstance(event, Heartbeat):
            self.last_heartbeat_ns = event.ts_init

    def start(self) -> None:
        """Start the housekeeping thread."""
        self._thread = threading.Thread(target=self._run, name="kernel-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        """Snapshots on schedule, the feed-stall halt and the dispatch watchdog; logs while
        the event log cannot write.

        A storage fault holds the engine thread itself (see ``StateStore._wait_durable``):
        nothing trades until writes succeed again."""
        kernel = self._kernel
        while not self._stopping.wait(HOUSEKEEPING_S):
            try:
                if kernel.snapshotter is not None:
                    kernel.snapshotter.maybe_snapshot(kernel.wall_clock.now_ns())
            except Exception:
                log.exception("periodic snapshot failed; the log is intact, will retry")
            if not kernel.log.healthy:
                log.error("event log unhealthy (%s): trading must not go on", kernel.log.last_error)
            try:
                self._check_feed_stall()
                self._check_dispatch()
            except SeamlessError:
                return  # the bus is closed: the engine is stopping

    def _check_feed_stall(self) -> None:
        """Halt trading (a committed ``halt`` command through risk, on the engine thread) once
        the feed has been quiet for ``feed.halt_after_s``; once per stall."""
        kernel = self._kernel
        limit = kernel.config.feed.halt_after_s
        feed = kernel.runner.feed
        if limit <= 0 or not isinstance(feed, FeedBase) or feed.last_event_ns is None:
            return
        age_s = (kernel.wall_clock.now_ns() - feed.last_event_ns) / NS_PER_S
        if age_s < limit:
            self.stall_halted = False
            return
        if self.stall_halted or kernel.store.get_state("trading.state", ACTIVE) != ACTIVE:
            return
        self.stall_halted = True
        log.error("feed %s quiet for %.1f s: halting trading", feed.name, age_s)
        kernel.command("halt", "engine", reason=f"feed stalled: no data for {age_s:.1f} s")

    def dispatch_stalled(self) -> bool:
        """True while one dispatch round has run longer than ``bus.stall_warn_s``."""
        limit = self._kernel.config.bus.stall_warn_s
        return limit > 0 and self._kernel.bus.dispatch_busy_s > limit

    def _check_dispatch(self) -> None:
        """Watchdog: a dispatch round running longer than ``bus.stall_warn_s`` (a blocking or
        slow subscriber holds the one engine thread) is reported once as ``error_raised``;
        ``health()`` shows it meanwhile. The report waits for room in the inbox rather than
        block this thread behind the stalled engine; it is delivered when the round ends."""
        kernel = self._kernel
        if self.dispatch_stalled():
            if not self._stall_reported:
                self._stall_reported = True
                self.stalls += 1
                self._stall_pending = kernel.bus.dispatch_busy_s
                log.error(
                    "engine thread busy in one dispatch round for %.1f s", self._stall_pending
                )
        else:
            self._stall_reported = False
        inbox = kernel.bus.inbox
        if not self._stall_pending or inbox.full:
            return
        busy, self._stall_pending = self._stall_pending, 0.0
        kernel.bus.publish(
            ErrorRaised(
                component="kernel.watchdog",
                message=f"a dispatch round ran for over {busy:.1f} s "
                f"(bus.stall_warn_s {kernel.config.bus.stall_warn_s}): a subscriber blocks",
                error_type="DispatchStalled",
                details={"busy_s": round(busy, 3), "queue_depth": len(inbox)},
                ts_event=kernel.clock.now_ns(),
            )
        )


def health(kernel: Kernel, housekeeping: Housekeeping | None) -> dict[str, Any]:
    """Engine, bus, event log and feed status with heartbeat ages (wall time), for monitors."""
    now = kernel.wall_clock.now_ns()
    feed = kernel.runner.feed
    seq, version, _ = kernel.store.snapshot()
    feed_info: dict[str, Any] = {"status": "none"}
    if isinstance(feed, FeedBase):
        last = feed.last_event_ns
        age_s = (now - last) / NS_PER_S if last else None
        feed_info = {
            "status": feed.status,
            "last_event_age_s": age_s,
            "published": feed.published,
            "dropped": feed.dropped,
            "errors": feed.errors,
            "rejected": feed.validator.rejected_total,
            "stale": age_s is not None and age_s > kernel.config.feed.stale_after_s,
            "halted_by_stall": housekeeping is not None and housekeeping.stall_halted,
        }
    beat = housekeeping.last_heartbeat_ns if housekeeping is not None else 0
    stats = kernel.bus.stats
    inbox = kernel.bus.inbox
    relay: Callable[[], dict[str, Any]] | None = getattr(kernel.relay, "stats", None)
    return {
        "engine": {
            "name": kernel.config.engine.name,
            "mode": str(kernel.mode),
            "runner": kernel.runner.status,
            "trading": kernel.store.get_state("trading.state", ACTIVE),
            "heartbeat_age_s": (now - beat) / NS_PER_S if beat else None,
            "clock_ns": kernel.clock.now_ns(),
            "run_id": kernel.run_id,
        },
        "bus": {
            "queue_depth": len(inbox),
            "published": stats.published,
            "dispatched": stats.dispatched,
            "blocked_puts": inbox.blocked_puts,
            "subscriber_errors": stats.errors_total,
            "subscribers": kernel.bus.subscriber_count(),
            "dispatch_busy_s": round(kernel.bus.dispatch_busy_s, 3),
            "stalled": housekeeping is not None and housekeeping.dispatch_stalled(),
            "stalls": housekeeping.stalls if housekeeping is not None else 0,
        },
        "event_log": {
            "healthy": kernel.log.healthy,
            "last_error": kernel.log.last_error,
            "engine_held_by_fault": kernel.store.storage_fault,
            "last_seq": kernel.log.last_seq,
            "committed_seq": kernel.log.committed_seq,
        },
        "state": {"seq": seq, "version": version},
        "feed": feed_info,
        "process": GC_PAUSES.as_dict(),
        **({"relay": relay()} if relay is not None else {}),
        **({"notify": kernel.notifications.stats()} if kernel.notifications is not None else {}),
    }
