"""The built-in channels: webhooks (``json`` or ``slack`` bodies) and Telegram's Bot API, and
how every channel, built-in or a plugin's, is built: a ``seamless.notifiers`` entry point names
a factory ``(ChannelConfig, NotifierContext) -> Notifier`` (:func:`build_notifiers`).

Every request carries the event's ``event_id`` as ``Idempotency-Key`` (and a JSON body also
in its ``event_id`` field), so a receiver can drop the duplicates at-least-once delivery may
bring. Telegram's ``sendMessage`` has no idempotency key: after a crash between a send and its
cursor write, the chat may see a message twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from engine import plugins
from engine.config import SeamlessConfig, TelegramConfig, WebhookConfig
from engine.config.notify import ChannelConfig, parse_selector
from engine.config.schema import build
from engine.notify.base import DeliveryFailed, Notifier, post_json
from streams.errors import ConfigError, PluginError
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


@dataclasses.dataclass(frozen=True)
class NotifierContext:
    """What a ``seamless.notifiers`` factory is given besides its :class:`ChannelConfig`:
    ``where`` (the channel's key path, to start error messages with), the engine's name, the
    HTTP timeout and the environment (secrets come from it, never from the file)."""

    where: str
    engine_name: str
    timeout_s: float
    env: Mapping[str, str]


#: A ``seamless.notifiers`` entry point: builds one channel; ConfigError naming the bad option.
NotifierFactory = Callable[[ChannelConfig, NotifierContext], Notifier]


def webhook_channel(channel: ChannelConfig, context: NotifierContext) -> Notifier:
    """The built-in ``webhook`` kind; options ``url``, ``headers``, ``format``."""
    hook = build(WebhookConfig, {**channel.options, "topics": channel.topics}, context.where)
    return WebhookNotifier(
        channel.name, hook, timeout_s=context.timeout_s, engine_name=context.engine_name
    )


def telegram_channel(channel: ChannelConfig, context: NotifierContext) -> Notifier:
    """The built-in ``telegram`` kind; options ``chat_id``, ``token_env``, ``api_url`` (the
    bot token is read from the environment variable ``token_env`` names)."""
    telegram = build(TelegramConfig, {**channel.options, "topics": channel.topics}, context.where)
    if not telegram.enabled:
        raise ConfigError(f"{context.where}.chat_id: a telegram channel needs a chat, got ''")
    token = context.env.get(telegram.token_env, "")
    if not token:
        raise ConfigError(
            f"{context.where}.token_env: environment variable {telegram.token_env} is not"
            " set (it must hold the bot token of this telegram channel)"
        )
    return TelegramNotifier(
        telegram,
        token,
        timeout_s=context.timeout_s,
        engine_name=context.engine_name,
        name=channel.name,
    )


def build_notifiers(config: SeamlessConfig, env: Mapping[str, str] | None = None) -> list[Notifier]:
    """The channels ``config.notify`` names (webhooks, telegram, then ``channels``), each
    built by its kind's ``seamless.notifiers`` factory. ConfigError naming the key if a
    channel's options are wrong (e.g. Telegram's token variable is not set); PluginError
    naming the entry point if a kind fails to load or to build its channel."""
    notify = config.notify
    env = os.environ if env is None else env
    notifiers: list[Notifier] = []
    for where, channel in notify.all_channels():
        notifier = plugins.call_factory(
            plugins.NOTIFIERS,
            channel.kind,
            channel,
            NotifierContext(where, config.engine.name, notify.timeout_s, env),
            where=where,
            what=f"channel {channel.name!r}",
        )
        if not isinstance(notifier, Notifier):
            raise PluginError(
                f"{where}: {plugins.describe(plugins.NOTIFIERS, channel.kind)} returned"
                f" {type(notifier).__name__}, not an engine.Notifier"
            )
        notifiers.append(notifier)
    return notifiers
