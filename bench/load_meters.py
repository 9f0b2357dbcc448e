"""What the ``load`` benchmark measures in the server process (a helper module, not a
benchmark): when each session's message carrying a probe fill was written, stage by stage
(:class:`PushTimes`), the bus inbox depth and RSS over time (:class:`Sampler`), who had the CPU
(:func:`cpu_budget`), and the percentile lines the figures are printed as.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import Any

from testkit.measure import percentile, rss_kib


class PushTimes:
    """When each session's message carrying a probe fill was written (bench instrumentation).

    Wraps the dashboard's ``_flush_trades`` (which takes the fills queued for a session) and
    ``SessionBridge._drain`` (whose end sends the session's one Bokeh message, the socket
    write included) so the server side of publish -> page can be told from the page's own
    share: ``written[fill_id]`` holds one wall time (ms) per session that sent it. For the
    same drains ``stages[fill_id]`` holds when (ms) the session's first update since its last
    drain was posted (the bus dispatching to the session), its drain was handed to the loop
    (the end of the dispatch round), and the drain started."""

    STAGES = ("posted", "handed to the loop", "drain started", "written")

    def __init__(self) -> None:
        from panel_app.push import SessionBridge
        from panel_app.views.dashboard import DashboardView

        self.written: dict[str, list[float]] = {}
        self.stages: dict[str, list[tuple[float, float, float, float]]] = {}
        flush_trades, drain = DashboardView._flush_trades, SessionBridge._drain
        post, schedule = SessionBridge.post, SessionBridge._schedule
        times = self

        def timed_flush(view: Any) -> None:
            ids = [e.fill_id for e in view._pending_trades]
            flush_trades(view)
            view.bridge.__dict__.setdefault("_bench_fills", []).extend(ids)

        def timed_post(bridge: Any, update: Any, *, key: object = None) -> None:
            bridge.__dict__.setdefault("_bench_posted", time.time() * 1000)
            post(bridge, update, key=key)

        def timed_schedule(bridge: Any) -> None:
            bridge.__dict__["_bench_handed"] = time.time() * 1000
            schedule(bridge)

        def timed_drain(bridge: Any) -> None:
            started = time.time() * 1000
            posted = bridge.__dict__.pop("_bench_posted", started)
            handed = bridge.__dict__.get("_bench_handed", posted)
            drain(bridge)
            ids = bridge.__dict__.pop("_bench_fills", None)
            if ids:
                now = time.time() * 1000
                for fill in ids:
                    times.written.setdefault(fill, []).append(now)
                    times.stages.setdefault(fill, []).append((posted, handed, started, now))

        DashboardView._flush_trades = timed_flush  # type: ignore[method-assign,assignment]
        SessionBridge._drain = timed_drain  # type: ignore[method-assign,assignment]
        SessionBridge.post = timed_post  # type: ignore[method-assign,assignment]
        SessionBridge._schedule = timed_schedule  # type: ignore[method-assign,assignment]

    def latencies(self, sent: dict[str, float]) -> list[float]:
        """Server push latency (ms) of every (probe, session) pair that was written."""
        return [t - sent[f] for f, ts in self.written.items() if f in sent for t in ts]

    def stage_latencies(self, sent: dict[str, float]) -> list[list[float]]:
        """Per stage (``STAGES``), ms after publication, of every (probe, session) pair."""
        rows = [
            [t - sent[f] for t in stage]
            for f, stages in self.stages.items()
            if f in sent
            for stage in stages
        ]
        return [list(column) for column in zip(*rows, strict=True)] if rows else []


class Sampler(threading.Thread):
    """Inbox depth (``health()['bus']['queue_depth']``) and RSS every ``period`` seconds."""

    def __init__(self, kernel: Any, stop: threading.Event, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.kernel, self.stop, self.period = kernel, stop, period
        self.depths: list[int] = []
        self.rss_mib: list[float] = []

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.depths.append(int(self.kernel.health()["bus"]["queue_depth"]))
            self.rss_mib.append(rss_kib() / 1024)


def cpu_budget(
    server_s: float,
    kinds0: dict[str, float],
    kinds1: dict[str, float],
    machine0: tuple[float, float],
    machine1: tuple[float, float],
    wall: float,
) -> str:
    """Who had the CPU while measuring, in % of one core: this process (server, engine and,
    without the child options, the SSE clients and the page driver), each kind of descendant
    process (``testkit/measure.py``), and the machine's busy and idle time over all cores."""
    parts = [f"server process {100 * server_s / wall:.0f} %"]
    for kind in sorted(set(kinds0) | set(kinds1)):
        used = kinds1.get(kind, 0.0) - kinds0.get(kind, 0.0)
        parts.append(f"{kind} {100 * used / wall:.0f} %")
    busy, idle = (machine1[i] - machine0[i] for i in (0, 1))
    cores = os.cpu_count() or 1
    return (
        f"CPU, % of one core: {', '.join(parts)}; machine busy {100 * busy / wall:.0f} %,"
        f" idle {100 * idle / wall:.0f} % of {100 * cores} %"
    )


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float]) -> str:
    """p50, p95 and p99 of ``values`` (ms), as one line prints them."""
    p = [percentile(values, q) for q in (50, 95, 99)]
    return f"p50 {p[0]:.1f} ms  p95 {p[1]:.1f} ms  p99 {p[2]:.1f} ms"


def pct_figures(values: list[float]) -> dict[str, Any]:
    """p50, p95, p99 (ms) and the sample count of ``values``, for ``--json``."""
    return {f"p{q}_ms": percentile(values, q) for q in (50, 95, 99)} | {"samples": len(values)}
