"""``jsonl_file``: a notification channel appending one JSON line per selected event::

notify:
  channels: [{kind: jsonl_file, name: audit, options: {path: audit.jsonl}}]
"""

from __future__ import annotations

import json
from pathlib import Path

from engine import ChannelConfig, ConfigError, Event, Notifier, NotifierContext, parse_selector


class JsonLinesNotifier(Notifier):
    """Appends ``{"event_id", "type", "seq", "text"}`` per event to a file (at-least-once:
    after a crash a line may repeat; ``event_id`` tells the repeats)."""

    kind = "jsonl_file"

    def __init__(self, channel: ChannelConfig, context: NotifierContext, path: Path) -> None:
        super().__init__(
            channel.name,
            [parse_selector(s) for s in channel.topics],
            format="jsonl",
            engine_name=context.engine_name,
        )
        self.path = path

    @property
    def target(self) -> str:
        return str(self.path)

    def send(self, event: Event) -> None:
        line = {"event_id": event.event_id, "type": event.type, "seq": event.seq}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({**line, "text": self.text(event)}) + "\n")


def jsonl_file(channel: ChannelConfig, context: NotifierContext) -> Notifier:
    """The ``jsonl_file`` entry point: ConfigError naming the option if ``path`` is missing."""
    path = channel.options.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{context.where}.path: expected a file path, got {path!r}")
    return JsonLinesNotifier(channel, context, Path(path))
