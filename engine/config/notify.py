"""The ``notify`` section: webhooks and Telegram told about fills, risk breaches, runner halts
and errors, from the committed event log (the delivery itself: :mod:`engine.notify`).

What a channel is told is a list of *selectors*, one string each::

    PATTERN[:TYPE[,TYPE...]][[FIELD=VALUE[,VALUE...]]]

``PATTERN`` is a topic pattern (``*`` one segment, trailing ``>`` the rest, as everywhere);
``:TYPE,...`` keeps only those event types (wire names); ``[FIELD=V1,V2]`` keeps only events
whose ``FIELD`` is one of the values. The defaults (:data:`DEFAULT_TOPICS`) are every fill, every
risk event (``daily_loss_breached``, ``trading_state_changed``), a runner that halts or faults
(``runner_status_changed`` to ``halted``/``faulted`` on ``system.runner``) and every error.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit

from engine.config.schema import setting
from streams import topics
from streams.errors import EventError

#: Body formats of a webhook: the event's dict plus a ``text`` summary, or Slack's ``{"text"}``.
NOTIFY_FORMATS = ("json", "slack")

#: Fills, risk breaches and trading-state changes, runner halts/faults, errors.
DEFAULT_TOPICS = (
    topics.ALL_FILLS,
    topics.RISK,
    "system.runner:runner_status_changed[status=halted,faulted]",
    topics.ERRORS,
)

TELEGRAM_TOKEN_ENV = "SEAMLESS_TELEGRAM_TOKEN"

_SELECTOR = re.compile(
    r"^(?P<pattern>[^:\[\]]+)"
    r"(?::(?P<types>[a-z0-9_,]+))?"
    r"(?:\[(?P<field>[a-z_][a-z0-9_]*)=(?P<values>[^\[\]]+)\])?$"
)
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+$")


@dataclasses.dataclass(frozen=True)
class Selector:
    """One parsed selector: a topic pattern, optional event types and an optional field test."""

    text: str
    pattern: str
    types: tuple[str, ...] = ()
    field: str = ""
    values: tuple[str, ...] = ()

    def matches(self, event: Any) -> bool:
        """True if ``event`` (any :class:`~streams.events.Event`) is selected."""
        if not topics.matches(self.pattern, event.topic):
            return False
        if self.types and event.type not in self.types:
            return False
        return not self.field or str(getattr(event, self.field, None)) in self.values


def parse_selector(text: str) -> Selector:
    """A :class:`Selector` from its string form; ValueError saying what is wrong."""
    from streams.events import event_types  # the registry of every event type

    found = _SELECTOR.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError(
            f"{text!r} is not a selector: expected PATTERN[:TYPE[,TYPE]][[FIELD=VALUE[,VALUE]]]"
            ", e.g. 'fills.*' or 'system.runner:runner_status_changed[status=halted]'"
        )
    pattern = found["pattern"].strip()
    try:
        topics.validate_pattern(pattern)
    except EventError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    known = event_types()
    types = tuple(t for t in (found["types"] or "").split(",") if t)
    unknown = [t for t in types if t not in known]
    if unknown:
        raise ValueError(f"{text!r}: unknown event type {unknown[0]!r}")
    field, values = (
        found["field"] or "",
        tuple(v.strip() for v in (found["values"] or "").split(",")),
    )
    if field:
        if not types:
            raise ValueError(f"{text!r}: a [{field}=...] test needs event types (':TYPE')")
        for name in types:
            names = {f.name for f in dataclasses.fields(known[name])}
            if field not in names:
                raise ValueError(f"{text!r}: event type {name!r} has no field {field!r}")
        if not all(values):
            raise ValueError(f"{text!r}: empty value in [{field}=...]")
    return Selector(text, pattern, types, field, values if field else ())


def check_url(url: str, what: str = "url") -> None:
    """ValueError unless ``url`` is an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ValueError(f"{what}: malformed URL {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"{what}: expected an http:// or https:// URL with a host, got {url!r}")


def _check_topics(selectors: tuple[str, ...]) -> None:
    if not selectors:
        raise ValueError("topics: expected at least one selector, got []")
    for i, text in enumerate(selectors):
        try:
            parse_selector(text)
        except ValueError as exc:
            raise ValueError(f"topics[{i}]: {exc}") from None


def _topics_field() -> Any:
    return setting(
        DEFAULT_TOPICS,
        help="selectors of what to send: PATTERN[:TYPE,...][[FIELD=VALUE,...]] (a topic"
        " pattern, optional event types, an optional field test)",
    )


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """One webhook: an http(s) URL that is POSTed each selected event."""

    url: str = setting("", help="http:// or https:// URL")
    name: str = setting("", help="channel name ('' = webhook-<n>, n from 1)")
    topics: tuple[str, ...] = _topics_field()
    headers: dict[str, str] = setting(factory=dict, help="extra HTTP headers, e.g. Authorization")
    format: str = setting(
        "json", choices=NOTIFY_FORMATS, help="json = the event plus 'text'; slack = {'text': ...}"
    )

    def __post_init__(self) -> None:
        check_url(self.url)
        if self.name and not _CHANNEL_NAME.match(self.name):
            raise ValueError(
                f"name: expected lowercase letters, digits, '-', '_', got {self.name!r}"
            )
        _check_topics(self.topics)
        for key, value in self.headers.items():
            if not _HEADER_NAME.match(key) or any(c in value for c in "\r\n"):
                raise ValueError(f"headers.{key}: not a valid HTTP header name or value")


@dataclasses.dataclass(frozen=True)
class TelegramConfig:
    """A Telegram chat told through the Bot API's ``sendMessage`` (off while chat_id is '')."""

    chat_id: str | int = setting("", help="chat to send to ('' = no Telegram channel)")
    token_env: str = setting(
        TELEGRAM_TOKEN_ENV, help="environment variable holding the bot token (never in the file)"
    )
    topics: tuple[str, ...] = _topics_field()
    api_url: str = setting("https://api.telegram.org", help="Bot API base URL (tests: a fake)")

    @property
    def enabled(self) -> bool:
        """True when a chat is configured."""
        return self.chat_id != ""

    def __post_init__(self) -> None:
        check_url(self.api_url, "api_url")
        _check_topics(self.topics)
        if self.enabled and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.token_env):
            raise ValueError(
                f"token_env: expected an environment variable name, got {self.token_env!r}"
            )


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """A channel of any installed kind: a ``seamless.notifiers`` entry point (built in:
    ``webhook``, ``telegram``) whose factory builds it from ``options``."""

    kind: str = setting(
        "webhook", help="webhook, telegram or a plugin's (a seamless.notifiers entry point)"
    )
    name: str = setting("", help="channel name ('' = <kind>-<n>, n counting the kind's channels)")
    topics: tuple[str, ...] = _topics_field()
    options: dict[str, Any] = setting(
        factory=dict,
        help="the kind's own settings (webhook: url, headers, format; telegram: chat_id,"
        " token_env, api_url)",
    )

    def __post_init__(self) -> None:
        from engine import plugins

        problem = plugins.not_installed(plugins.NOTIFIERS, self.kind, "notifier kind")
        if problem is not None:
            raise ValueError(f"kind: {problem}")
        if self.name and not _CHANNEL_NAME.match(self.name):
            raise ValueError(
                f"name: expected lowercase letters, digits, '-', '_', got {self.name!r}"
            )
        _check_topics(self.topics)


@dataclasses.dataclass(frozen=True)
class NotifyConfig:
    """Notifications delivered from the committed log: at-least-once, keyed by event_id."""

    webhooks: tuple[WebhookConfig, ...] = setting(
        (), help="webhooks: url, name, topics, headers, format (json or slack)"
    )
    telegram: TelegramConfig = dataclasses.field(default_factory=TelegramConfig)
    channels: tuple[ChannelConfig, ...] = setting(
        (), help="channels of any kind: kind, name, topics, options (docs/plugins.md)"
    )
    poll_interval_s: float = setting(
        0.25, min=0.01, max=60.0, help="how often a channel reads the log"
    )
    timeout_s: float = setting(10.0, min=0.1, max=300.0, help="timeout of one HTTP request")
    retry_initial_s: float = setting(0.5, min=0.01, max=3_600.0, help="first wait after a failure")
    retry_max_s: float = setting(
        60.0, min=0.01, max=3_600.0, help="the wait doubles per failure up to this"
    )
    lag_warn_s: float = setting(
        60.0, min=1.0, max=86_400.0, help="a channel whose oldest undelivered event is older lags"
    )
    stop_drain_s: float = setting(
        2.0, min=0.0, max=600.0, help="a clean stop waits this long for deliveries"
    )
    cursor_dir: str = setting(
        "",
        help="folder of the delivery cursors ('' = beside the DuckDB file:"
        " <db_path>.notify-<channel>.json)",
    )

    def channel_names(self) -> list[str]:
        """Every configured channel's name: the webhooks', ``telegram``, then ``channels``'."""
        return [channel.name for _, channel in self.all_channels()]

    def all_channels(self) -> list[tuple[str, ChannelConfig]]:
        """Every configured channel with its key path, named, as one kind of record: the
        ``webhooks`` and ``telegram`` sections are shorthands for ``webhook``/``telegram``
        channels, built through the same entry points as a plugin's."""
        found = [
            (
                f"notify.webhooks[{i - 1}]",
                ChannelConfig(
                    "webhook",
                    hook.name or f"webhook-{i}",
                    hook.topics,
                    {"url": hook.url, "headers": dict(hook.headers), "format": hook.format},
                ),
            )
            for i, hook in enumerate(self.webhooks, 1)
        ]
        telegram = self.telegram
        if telegram.enabled:
            options = {
                "chat_id": telegram.chat_id,
                "token_env": telegram.token_env,
                "api_url": telegram.api_url,
            }
            found.append(
                ("notify.telegram", ChannelConfig("telegram", "telegram", telegram.topics, options))
            )
        for i, channel in enumerate(self.channels):
            n = 1 + sum(1 for _, c in found if c.kind == channel.kind)
            named = dataclasses.replace(channel, name=channel.name or f"{channel.kind}-{n}")
            found.append((f"notify.channels[{i}].options", named))
        return found

    def __post_init__(self) -> None:
        names = self.channel_names()
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"webhooks: channel name {duplicate!r} is used twice")
