"""Crash-safe notifications: webhooks and Telegram fed from the committed event log.

- :mod:`engine.notify.base` - the :class:`Notifier` contract (a plugin point), the text
  summary of an event and the HTTP POST;
- :mod:`engine.notify.channels` - webhooks (``json``, ``slack``) and Telegram;
- :mod:`engine.notify.outbox` - one channel's delivery thread and its durable cursor file;
- :mod:`engine.notify.service` - :class:`Notifications`, what the kernel builds, starts,
  stops and reports in ``health()``.

Configuration: the ``notify`` section (:mod:`engine.config.notify`); operations:
``docs/operations.md``, "Notifications".
"""

from engine.notify.base import DeliveryFailed, Notifier, summarize
from engine.notify.channels import (
    NotifierContext,
    TelegramNotifier,
    WebhookNotifier,
    build_notifiers,
)
from engine.notify.outbox import CursorFile, Outbox
from engine.notify.service import Notifications, build_notifications, cursor_path

__all__ = [
    "CursorFile",
    "DeliveryFailed",
    "Notifications",
    "Notifier",
    "NotifierContext",
    "Outbox",
    "TelegramNotifier",
    "WebhookNotifier",
    "build_notifications",
    "build_notifiers",
    "cursor_path",
    "summarize",
]
