"""The notifier contract, the text summary of an event and the one HTTP POST every built-in
notifier makes.

A :class:`Notifier` is a channel: a ``name`` (unique; it names the channel's delivery cursor),
a body ``format``, the :class:`~engine.config.notify.Selector` list of what it is told, and
``send(event)``, which delivers one event or raises (any exception counts as a failed
delivery, retried with backoff by :class:`~engine.notify.outbox.Outbox`). ``send`` is called
from the channel's own thread, one event at a time, in seq order, at least once per selected
committed event: a receiver deduplicates by ``event.event_id``. This is the plugin point for
other channels (issue 26: ``seamless.notifiers`` entry points).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from engine.config.notify import Selector
from streams.errors import TransportError
from streams.events import Event

log = logging.getLogger(__name__)

USER_AGENT = "seamless-notify/1"


class DeliveryFailed(TransportError):
    """A notification was not delivered; ``retry_after_s`` is the receiver's wish, if any."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Notifier:
    """A notification channel (see the module doc); subclasses implement :meth:`send`."""

    #: What kind of channel this is (health reports it).
    kind: ClassVar[str] = "notifier"

    def __init__(
        self, name: str, selectors: Iterable[Selector], *, format: str, engine_name: str = ""
    ) -> None:
        self.name = name
        self.format = format
        self.selectors = tuple(selectors)
        self.engine_name = engine_name

    def selects(self, event: Event) -> bool:
        """True if this channel is told about ``event``."""
        return any(s.matches(event) for s in self.selectors)

    @property
    def target(self) -> str:
        """Where it sends, without secrets (for health and logs)."""
        return ""

    def send(self, event: Event) -> None:
        """Deliver ``event``; raise (preferably :class:`DeliveryFailed`) if it was not."""
        raise NotImplementedError

    def text(self, event: Event) -> str:
        """The one-line summary sent with ``event``."""
        return summarize(event, self.engine_name)


def summarize(event: Event, engine_name: str = "") -> str:
    """A one-line human summary of ``event``, prefixed with ``[engine_name]``."""
    prefix = f"[{engine_name}] " if engine_name else ""
    try:
        return prefix + _summary(event)
    except Exception:  # a summary must never block a delivery
        return f"{prefix}{event.type} on {event.topic} (seq {event.seq})"


def _summary(event: Event) -> str:
    d: dict[str, Any] = event.to_dict()
    kind = event.type
    if kind == "trade_executed":
        return (
            f"fill: {str(d['side']).upper()} {d['qty']:g} {d['symbol']} @ {d['price']:,.4f}"
            f" ({d['strategy']}, seq {event.seq})"
        )
    if kind == "daily_loss_breached":
        return (
            f"risk: daily loss limit breached: daily P&L {d['daily_pnl']:,.2f} below"
            f" {d['limit']:,.2f}, action {d['action']}"
        )
    if kind == "trading_state_changed":
        by = f" by {d['actor']}" if d.get("actor") else ""
        why = f": {d['reason']}" if d.get("reason") else ""
        return f"risk: trading {d['state']} (was {d['previous'] or '?'}){by}{why}"
    if kind == "runner_status_changed":
        why = f": {d['reason']}" if d.get("reason") else ""
        return f"{d['component']}: {d['previous'] or '?'} -> {d['status']}{why}"
    if kind == "error_raised":
        return f"error in {d['component']}: {d['message']}"
    fields = ", ".join(f"{k}={v}" for k, v in event.payload().items())
    return f"{kind} on {event.topic}: {fields}"[:1_000]


def post_json(
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    label: str,
) -> bytes:
    """POST ``body`` as JSON; the response body, or DeliveryFailed (a non-2xx status, a
    refused connection, a timeout). ``label`` names the target in messages instead of the URL,
    which may hold a secret."""
    data = json.dumps(body, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        detail = _read_quietly(exc)
        raise DeliveryFailed(
            f"{label}: HTTP {exc.code} {exc.reason}{': ' + detail if detail else ''}",
            retry_after_s=_retry_after(exc.headers.get("Retry-After")),
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryFailed(f"{label}: {reason}") from None


def _read_quietly(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(300).decode("utf-8", "replace").strip()
    except Exception:
        return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
