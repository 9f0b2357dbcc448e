"""Every book of a shared PostgreSQL log at a glance: who trades it, and its account, live.

A :class:`ClusterView` keeps one read-only :class:`~engine.mirror.Mirror` per book (restored
from the log, then following live: JetStream or log polling) and joins it with the book's
lease (owner node, epoch, time left). A dashboard on any host (``seamless serve --mirror``)
shows it in its Cluster tab and at ``/api/cluster``; a notebook can call :meth:`summary`.
New books (a node that starts trading a new stream) are picked up on :meth:`refresh`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.config import SeamlessConfig
from engine.mirror import Mirror, start_mirror
from persistence.pg.lease import LeaseLeft, books_and_leases
from streams.errors import PersistenceError

log = logging.getLogger(__name__)


def book_config(config: SeamlessConfig, book: str) -> SeamlessConfig:
    """``config`` with ``storage.stream`` set to ``book``."""
    return dataclasses.replace(config, storage=dataclasses.replace(config.storage, stream=book))


class ClusterView:
    """Read-only mirrors of every book in ``config.storage.postgres_dsn``, with their leases.

    ``mirror_factory`` builds a started mirror for a book's config (default
    :func:`~engine.mirror.start_mirror`); ``refresh`` finds new books and re-reads leases.
    """

    def __init__(
        self,
        config: SeamlessConfig,
        *,
        mirror_factory: Callable[[SeamlessConfig], Mirror] = start_mirror,
    ) -> None:
        if config.storage.backend != "postgres":
            raise PersistenceError(
                f"a cluster view needs storage.backend 'postgres', got {config.storage.backend!r}"
            )
        self.config = config
        self._factory = mirror_factory
        self._lock = threading.Lock()
        self.mirrors: dict[str, Mirror] = {}
        self._leases: dict[str, LeaseLeft] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float = 2.0) -> ClusterView:
        """Refresh now, then every ``interval_s`` in a daemon thread (errors are logged)."""
        self.refresh()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="seamless-cluster-view", daemon=True
        )
        self._thread.start()
        return self

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except PersistenceError as exc:
                log.warning("%s", exc)

    def refresh(self) -> list[str]:
        """Mirror books that appeared since the last call and re-read the leases; the books."""
        books, leases = books_and_leases(self.config.storage.postgres_dsn)
        with self._lock:
            self._leases = leases
            for book in books:
                if book not in self.mirrors:
                    self.mirrors[book] = self._factory(book_config(self.config, book))
            return sorted(self.mirrors)

    def summary(self) -> list[dict[str, Any]]:
        """One row per book: lease owner/epoch/seconds left, seq, trading state, account, P&L
        and open positions (as of the mirror's last followed event)."""
        with self._lock:
            mirrors = dict(self.mirrors)
            leases = dict(self._leases)
        return [_row(book, mirrors[book], leases.get(book)) for book in sorted(mirrors)]

    def close(self, *, keep: Mirror | None = None) -> None:
        """Stop refreshing and stop every mirror (but ``keep``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._lock:
            mirrors, self.mirrors = list(self.mirrors.values()), {}
        for mirror in mirrors:
            if mirror is not keep:
                mirror.stop()


def _row(book: str, mirror: Mirror, lease: LeaseLeft | None) -> dict[str, Any]:
    state = mirror.store.get_state("")
    account: Mapping[str, Any] = state.get("account") or {}
    pnl: Mapping[str, Any] = state.get("pnl") or {}
    positions: Mapping[str, Any] = state.get("positions") or {}
    lease = lease if lease is not None else LeaseLeft("", 0, 0.0)
    return {
        "book": book,
        "owner": lease.owner,
        "epoch": lease.epoch,
        "lease_left_s": round(lease.left_s, 1),
        "seq": int(state.get("meta", {}).get("seq", 0)),
        "trading": (state.get("trading") or {}).get("state", "active"),
        "cash": account.get("cash", 0.0),
        "equity": pnl.get("equity", 0.0),
        "realized": pnl.get("realized", 0.0),
        "unrealized": pnl.get("unrealized", 0.0),
        "positions": {s: p.get("qty", 0.0) for s, p in positions.items() if p.get("qty")},
    }


def start_cluster_mirror(config: SeamlessConfig) -> Mirror:
    """The mirror ``seamless serve --mirror`` serves: book ``storage.stream``, plus (with
    PostgreSQL) a started :class:`ClusterView` of every book as ``mirror.cluster``."""
    primary = start_mirror(config)
    if config.storage.backend != "postgres":
        return primary

    def factory(book_cfg: SeamlessConfig) -> Mirror:
        if book_cfg.storage.stream == config.storage.stream:
            return primary
        return start_mirror(book_cfg)

    primary.cluster = ClusterView(config, mirror_factory=factory).start()
    return primary
