"""The built-in channels: webhooks (``json`` or ``slack`` bodies) and Telegram's Bot API.

Every request carries the event's ``event_id`` as ``Idempotency-Key`` (and a JSON body also
in its ``event_id`` field), so a receiver can drop the duplicates at-least-once delivery may
bring. Telegram's ``sendMessage`` has no idempotency key: after a crash between a send and its
cursor write, the chat may see a message twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.config import SeamlessConfig, TelegramConfig, WebhookConfig
from engine.config.notify import parse_selector
from engine.notify.base import DeliveryFailed, Notifier, post_json
from streams.errors import ConfigError
from streams.events import Event

#: Telegram refuses longer messages.
TELEGRAM_MAX_TEXT = 4_096


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: its path and query may hold a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def delivery_headers(event: Event) -> dict[str, str]:
    """Headers sent with every delivery: the idempotency key and the event's place."""
    return {
        "Idempotency-Key": event.event_id,
        "X-Seamless-Seq": str(event.seq),
        "X-Seamless-Type": event.type,
    }


class WebhookNotifier(Notifier):
    """POSTs each event to ``url``: ``json`` = ``event.to_dict()`` plus ``text``; ``slack`` =
    ``{"text": ...}`` (Slack's incoming webhooks)."""

    kind = "webhook"

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        timeout_s: float,
        engine_name: str = "",
    ) -> None:
        super().__init__(
            name,
            [parse_selector(s) for s in config.topics],
            format=config.format,
            engine_name=engine_name,
        )
        self.url = config.url
        self.headers = dict(config.headers)
        self.timeout_s = timeout_s

    @property
    def target(self) -> str:
        return _origin(self.url)

    def body(self, event: Event) -> dict[str, Any]:
        """What is POSTed for ``event``."""
        text = self.text(event)
        if self.format == "slack":
            return {"text": text}
        return {**event.to_dict(), "text": text}

    def send(self, event: Event) -> None:
        post_json(
            self.url,
            self.body(event),
            headers={**self.headers, **delivery_headers(event)},
            timeout_s=self.timeout_s,
            label=f"webhook {self.name} ({self.target})",
        )


class TelegramNotifier(Notifier):
    """Sends each event's summary to a Telegram chat with the Bot API's ``sendMessage``."""

    kind = "telegram"

    def __init__(
        self,
        config: TelegramConfig,
        token: str,
        *,
        timeout_s: float,
        engine_name: str = "",
        name: str = "telegram",
    ) -> None:
        super().__init__(
            name,
            [parse_selector(s) for s in config.topics],
            format="telegram",
            engine_name=engine_name,
        )
        self.chat_id = config.chat_id
        self.api_url = config.api_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    @property
    def target(self) -> str:
        return _origin(self.api_url)

    def send(self, event: Event) -> None:
        label = f"telegram ({self.target})"
        raw = post_json(
            f"{self.api_url}/bot{self._token}/sendMessage",
            {
                "chat_id": self.chat_id,
                "text": self.text(event)[:TELEGRAM_MAX_TEXT],
                "disable_web_page_preview": True,
            },
            headers=delivery_headers(event),
            timeout_s=self.timeout_s,
            label=label,
        )
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            raise DeliveryFailed(f"{label}: not a Bot API answer: {raw[:200]!r}") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            description = answer.get("description") if isinstance(answer, dict) else answer
            raise DeliveryFailed(f"{label}: sendMessage refused: {description}")


def build_notifiers(config: SeamlessConfig, env: Mapping[str, str] | None = None) -> list[Notifier]:
    """The channels ``config.notify`` names, webhooks first. ConfigError if Telegram is
    configured but its token's environment variable is not set."""
    notify = config.notify
    env = os.environ if env is None else env
    names = notify.channel_names()
    engine_name = config.engine.name
    notifiers: list[Notifier] = [
        WebhookNotifier(name, hook, timeout_s=notify.timeout_s, engine_name=engine_name)
        for name, hook in zip(names, notify.webhooks, strict=False)
    ]
    telegram = notify.telegram
    if telegram.enabled:
        token = env.get(telegram.token_env, "")
        if not token:
            raise ConfigError(
                f"notify.telegram.token_env: environment variable {telegram.token_env} is not"
                " set (it must hold the bot token while notify.telegram.chat_id is set)"
            )
        notifiers.append(
            TelegramNotifier(telegram, token, timeout_s=notify.timeout_s, engine_name=engine_name)
        )
    return notifiers
