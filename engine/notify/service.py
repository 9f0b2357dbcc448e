"""The kernel's notifications: every configured channel's :class:`Outbox`, started and
stopped together, with their figures for ``Kernel.health()`` and the dashboard's badge.

:func:`build_notifications` runs when a live or replay kernel is built, before it opens the
log: a missing Telegram token or an unwritable cursor folder is refused there
(:class:`~streams.errors.ConfigError`). ``start(recorder, start_seq)`` (after reconciliation)
begins delivering; ``stop()`` (after the kernel's final flush) gives the channels
``notify.stop_drain_s`` to deliver what is committed, then stops them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import SeamlessConfig
from engine.notify.base import Notifier
from engine.notify.channels import build_notifiers
from engine.notify.outbox import CursorFile, Outbox
from persistence.recorder import Recorder
from streams.errors import ConfigError

log = logging.getLogger(__name__)


def cursor_path(config: SeamlessConfig, channel: str) -> Path:
    """Where ``channel`` keeps its cursor: ``<db_path>.notify-<channel>.json`` for DuckDB,
    ``<cursor_dir>/<storage.stream>.notify-<channel>.json`` when ``notify.cursor_dir`` is set
    (and for PostgreSQL, beside ``storage.db_path`` under the stream's name without it)."""
    storage, folder = config.storage, config.notify.cursor_dir
    if folder:
        return Path(folder) / f"{storage.stream}.notify-{channel}.json"
    if storage.backend == "duckdb":
        return Path(f"{storage.db_path}.notify-{channel}.json")
    return Path(storage.db_path).parent / f"{storage.stream}.notify-{channel}.json"


class Notifications:
    """The channels of one kernel (see the module doc)."""

    def __init__(
        self, config: SeamlessConfig, notifiers: list[Notifier], cursors: Mapping[str, Path]
    ) -> None:
        self.config = config.notify
        self.notifiers = notifiers
        self.cursors = dict(cursors)
        self.outboxes: list[Outbox] = []

    def start(
        self, recorder: Recorder, start_seq: int, *, event_time_is_wall: bool = True
    ) -> Notifications:
        """Start one delivery thread per channel; a channel without a cursor begins after
        ``start_seq`` (the log's end when the kernel opened it)."""
        if self.outboxes:
            return self
        notify = self.config
        for notifier in self.notifiers:
            outbox = Outbox(
                notifier,
                recorder,
                CursorFile(self.cursors[notifier.name], notifier.name),
                start_seq=start_seq,
                poll_interval_s=notify.poll_interval_s,
                retry_initial_s=notify.retry_initial_s,
                retry_max_s=notify.retry_max_s,
                lag_warn_s=notify.lag_warn_s,
                event_time_is_wall=event_time_is_wall,
            )
            self.outboxes.append(outbox.start())
            log.info(
                "notify %s: %s to %s from seq %s",
                notifier.name,
                notifier.kind,
                notifier.target,
                outbox.seq,
            )
        return self

    def wait_caught_up(self, timeout_s: float, seq: int | None = None) -> bool:
        """Wait until every channel has delivered what is committed (or up to ``seq``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if all(o.caught_up(seq if seq is not None else o.committed()) for o in self.outboxes):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        """Give the channels ``notify.stop_drain_s`` to deliver what is committed, then stop."""
        if not self.outboxes:
            return
        if self.config.stop_drain_s > 0 and not self.wait_caught_up(self.config.stop_drain_s):
            behind = [o.name for o in self.outboxes if not o.caught_up(o.committed())]
            log.warning("notify: %s not caught up at stop: sent after the next start", behind)
        for outbox in self.outboxes:
            outbox.stop()

    def stats(self) -> dict[str, Any]:
        """Per channel: status, cursor and lag, pending count, oldest undelivered age,
        deliveries and failures (``Kernel.health()["notify"]``)."""
        return {o.name: o.stats() for o in self.outboxes}

    def alerts(self) -> list[str]:
        """Short texts for channels failing or lagging beyond ``notify.lag_warn_s``."""
        out = []
        for outbox in self.outboxes:
            status = outbox.status()
            if status == "failing":
                out.append(f"{outbox.name} failing ({outbox.consecutive_failures}x)")
            elif status == "lagging":
                age = outbox.oldest_undelivered_age_s() or 0.0
                out.append(f"{outbox.name} {age:.0f} s behind")
        return out


def build_notifications(
    config: SeamlessConfig, env: Mapping[str, str] | None = None
) -> Notifications | None:
    """The configured channels (not started), or None when there are none.

    ConfigError for a missing Telegram token variable or a cursor folder that cannot be
    created or written."""
    notifiers = build_notifiers(config, env)
    if not notifiers:
        return None
    cursors = {n.name: cursor_path(config, n.name) for n in notifiers}
    for name, path in cursors.items():
        key = "notify.cursor_dir" if config.notify.cursor_dir else "storage.db_path"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{key}: cannot create the folder of notify cursor {path} ({name}): {exc}"
            ) from exc
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(f"{key}: cannot write notify cursor {path} ({name})")
    return Notifications(config, notifiers, cursors)
