"""What occupies the server's event loop: every asyncio callback timed, grouped by what it runs.

``python -m bench load --loop-profile`` installs :class:`LoopProfile` before the server starts.
It wraps ``asyncio.events.Handle._run`` (every callback, task step and socket handler of every
loop in the process goes through it) and records, per callback kind, how many ran, their wall
time and their thread CPU time. Wall minus CPU is mostly the wait for the GIL (held by the engine's
dispatch thread, the writer, the SSE encoder) plus the odd page fault. The report says how busy
each loop thread was and which callbacks took that time, so "the session waited ~50 ms for the
loop" can be split into "the loop was running X" and "X was waiting for the GIL".

Kinds are named from what Tornado and asyncio wrap: ``IOLoop._run_callback(partial(f))`` is
reported as ``f``, a task step as its coroutine, a socket handler as ``IOLoop._handle_events``.
The wrapper costs two clock reads per callback; the figures are for comparison within a run.

``python -m bench load --drain-profile`` installs :class:`DrainProfile`: cProfile of the session
drains alone, the largest share of the loop.
"""

from __future__ import annotations

import asyncio.events
import cProfile
import functools
import io
import pstats
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass
class CallbackStats:
    """Totals of one kind of callback on one thread."""

    count: int = 0
    wall_ns: int = 0
    cpu_ns: int = 0
    max_wall_ns: int = 0


def _name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def callback_kind(handle: asyncio.events.Handle) -> str:
    """A short stable name for what ``handle`` runs (unwrapping Tornado's callback wrapper)."""
    fn, args = handle._callback, handle._args  # type: ignore[attr-defined]
    name = _name(fn)
    if name.endswith("IOLoop._run_callback") and args:
        return _name(args[0])
    return name


class LoopProfile:
    """Times every asyncio callback in the process from :meth:`install` until :meth:`remove`."""

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], CallbackStats] = defaultdict(CallbackStats)
        self._original = asyncio.events.Handle._run
        self._lock = threading.Lock()
        self._started = 0

    def install(self) -> None:
        original, stats, lock = self._original, self.stats, self._lock
        wall, cpu = time.perf_counter_ns, time.thread_time_ns

        def timed_run(handle: asyncio.events.Handle) -> None:
            w0, c0 = wall(), cpu()
            try:
                original(handle)
            finally:
                dw, dc = wall() - w0, cpu() - c0
                key = (threading.current_thread().name, callback_kind(handle))
                with lock:
                    s = stats[key]
                    s.count += 1
                    s.wall_ns += dw
                    s.cpu_ns += dc
                    s.max_wall_ns = max(s.max_wall_ns, dw)

        self.reset()
        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        """Forget what was recorded (e.g. while the pages were opening)."""
        with self._lock:
            self.stats.clear()
            self._started = time.perf_counter_ns()

    def remove(self) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]

    def report(self, top: int = 12) -> list[str]:
        """Lines: per loop thread its busy share of the wall time, then its costliest kinds."""
        elapsed = max(time.perf_counter_ns() - self._started, 1)
        with self._lock:
            items = list(self.stats.items())
        threads: dict[str, list[tuple[str, CallbackStats]]] = defaultdict(list)
        for (thread, kind), s in items:
            threads[thread].append((kind, s))
        lines = []
        for thread, kinds in sorted(
            threads.items(), key=lambda t: -sum(s.wall_ns for _, s in t[1])
        ):
            wall_ns = sum(s.wall_ns for _, s in kinds)
            cpu_ns = sum(s.cpu_ns for _, s in kinds)
            lines.append(
                f"  loop thread {thread!r}: busy {100 * wall_ns / elapsed:.0f} % of the wall time"
                f" (CPU {100 * cpu_ns / elapsed:.0f} %, the rest mostly waiting for the GIL),"
                f" {sum(s.count for _, s in kinds):,} callbacks"
            )
            for kind, s in sorted(kinds, key=lambda k: -k[1].wall_ns)[:top]:
                lines.append(
                    f"    {100 * s.wall_ns / elapsed:5.1f} % {s.count:>8,} x"
                    f" mean {s.wall_ns / s.count / 1e3:7.0f} us"
                    f" (CPU {s.cpu_ns / s.count / 1e3:6.0f})"
                    f" max {s.max_wall_ns / 1e6:6.1f} ms  {kind}"
                )
        return lines


class DrainProfile:
    """cProfile of the sessions' drains only (``SessionBridge._drain``, on the loop thread).

    A drain applies a session's queued updates and sends its Bokeh patch; profiling only them
    shows where that cost goes (param watchers, Bokeh's serializer, HTML building, the socket)
    without the rest of the process. cProfile roughly doubles what it measures: compare shares,
    not absolute times.
    """

    def __init__(self) -> None:
        from panel_app.push import SessionBridge

        self.profile = cProfile.Profile()
        self.drains = 0
        self._bridge = SessionBridge
        self._original = SessionBridge._drain

    def install(self) -> None:
        original, profile = self._original, self.profile

        def profiled_drain(bridge: Any) -> None:
            self.drains += 1
            profile.enable()
            try:
                original(bridge)
            finally:
                profile.disable()

        self._bridge._drain = profiled_drain  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        """Forget what was recorded (e.g. while the pages were opening)."""
        self.profile.clear()
        self.drains = 0

    def remove(self) -> None:
        self._bridge._drain = self._original  # type: ignore[method-assign]

    def report(self, top: int = 25) -> list[str]:
        """Lines: the functions that took the drains' time, by own time and by cumulative time."""
        lines = [f"  {self.drains:,} drains profiled (cProfile: shares, not absolute times)"]
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(self.profile, stream=out)
            stats.strip_dirs().sort_stats(order).print_stats(top)
            body = out.getvalue().split("\n")
            start = next((i for i, line in enumerate(body) if "ncalls" in line), 0)
            lines.append(f"  by {order}:")
            lines.extend(f"    {line}" for line in body[start:] if line.strip())
        return lines
