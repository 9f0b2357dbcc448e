"""``/metrics``: the engine's figures as Prometheus text, read at scrape time.

:class:`EngineCollector` is a ``prometheus_client`` custom collector over one kernel and one
dashboard server. It keeps nothing and costs nothing between scrapes: each scrape reads the
counters the engine keeps anyway (the bus's per-topic dispatch counts, the event log's commit
timings, the inbox, the housekeeping watchdog, the notification channels) and the server's
sessions and SSE clients. The metric names are listed in docs/operations.md ("Probes and
metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from panel_app.facade import EngineFacade, engine_status

#: What ``/metrics`` answers with (Prometheus text exposition format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EngineCollector(Collector):
    """The figures of ``kernel`` (None: not started yet) plus the server's ``sessions()`` and
    ``sse_clients()`` counts, collected when Prometheus scrapes."""

    def __init__(
        self,
        kernel: EngineFacade | None,
        *,
        sessions: Callable[[], int] = lambda: 0,
        sse_clients: Callable[[], int] = lambda: 0,
    ) -> None:
        self.kernel = kernel
        self.sessions = sessions
        self.sse_clients = sse_clients

    def collect(self) -> Iterator[Metric]:
        """Every metric family, read now."""
        status = engine_status(self.kernel)
        yield _gauge(
            "seamless_live", "1 while the dispatch loop runs and is not stalled", status.live
        )
        yield _gauge("seamless_ready", "1 once restored and reconciled, until a stop", status.ready)
        yield _gauge("seamless_sessions", "open dashboard (Bokeh) sessions", self.sessions())
        yield _gauge("seamless_sse_clients", "connected /api/events clients", self.sse_clients())
        kernel = self.kernel
        if kernel is None:
            return
        yield from _bus_metrics(kernel)
        yield from _commit_metrics(kernel)
        yield from _notify_metrics(kernel)


def render(collector: Collector) -> bytes:
    """``collector``'s metrics in the text format, through a registry of its own (never the
    process-global default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _bus_metrics(kernel: EngineFacade) -> Iterator[Metric]:
    bus = kernel.bus
    stats = bus.stats
    by_topic = CounterMetricFamily(
        "seamless_events", "events dispatched on the bus, by topic", labels=["topic"]
    )
    for topic, count in sorted(dict(stats.by_topic).items()):
        by_topic.add_metric([topic], float(count))
    yield by_topic
    yield _counter("seamless_events_published", "events handed to the bus", stats.published)
    yield _counter(
        "seamless_subscriber_errors", "subscriber failures (isolated)", stats.errors_total
    )
    inbox = bus.inbox
    yield _gauge("seamless_inbox_depth", "events waiting in the engine's inbox", len(inbox))
    yield _counter(
        "seamless_inbox_blocked_puts",
        "publishes that waited for room in a full inbox",
        getattr(inbox, "blocked_puts", 0),
    )
    yield _gauge(
        "seamless_dispatch_busy_seconds",
        "how long the dispatch round now running has taken (0 when idle)",
        bus.dispatch_busy_s,
    )
    housekeeping = getattr(kernel, "housekeeping", None)
    yield _counter(
        "seamless_dispatch_stalls",
        "dispatch rounds that ran longer than bus.stall_warn_s",
        getattr(housekeeping, "stalls", 0),
    )


def _commit_metrics(kernel: EngineFacade) -> Iterator[Metric]:
    timings = getattr(kernel.log, "commit_timings", None)
    if timings is None:
        return  # an in-memory journal commits nothing
    counts, total = timings.snapshot()
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*timings.bounds, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    yield HistogramMetricFamily(
        "seamless_commit_latency_seconds",
        "event-log group commits, from taking the rows to durable (retries included)",
        buckets=buckets,
        sum_value=total,
    )
    yield _gauge(
        "seamless_event_log_healthy", "1 while the event log writes", bool(kernel.log.healthy)
    )


def _notify_metrics(kernel: EngineFacade) -> Iterator[Metric]:
    notifications = getattr(kernel, "notifications", None)
    if notifications is None:
        return
    stats: dict[str, dict[str, Any]] = notifications.stats()
    lag = GaugeMetricFamily(
        "seamless_notify_lag_events",
        "committed events a notification channel has not yet handled",
        labels=["channel"],
    )
    age = GaugeMetricFamily(
        "seamless_notify_oldest_undelivered_seconds",
        "age of a channel's oldest undelivered notification (0 when none)",
        labels=["channel"],
    )
    delivered = CounterMetricFamily(
        "seamless_notify_delivered", "notifications delivered", labels=["channel"]
    )
    failures = CounterMetricFamily(
        "seamless_notify_failures", "failed delivery attempts", labels=["channel"]
    )
    for name, channel in sorted(stats.items()):
        lag.add_metric([name], float(channel.get("lag_seq") or 0))
        age.add_metric([name], float(channel.get("oldest_undelivered_age_s") or 0.0))
        delivered.add_metric([name], float(channel.get("delivered") or 0))
        failures.add_metric([name], float(channel.get("failures") or 0))
    yield from (lag, age, delivered, failures)
