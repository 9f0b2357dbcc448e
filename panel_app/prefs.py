"""Per-user UI preferences (theme, selected tab, ...): small JSON files, never the event log."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class UiPrefsStore:
    """Reads and writes ``{folder}/{user}.json``; a missing or broken file means defaults."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, user: str) -> Path:
        name = _SAFE.sub("_", user or "anonymous")[:64] or "anonymous"
        return self.folder / f"{name}.json"

    def load(self, user: str) -> dict[str, Any]:
        """The stored preferences of ``user`` (empty when none or unreadable)."""
        try:
            data = json.loads(self._path(user).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, user: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the stored preferences (atomic replace); returns them."""
        prefs = {**self.load(user), **changes}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(prefs, fh, indent=1, sort_keys=True)
            os.replace(tmp, self._path(user))
        except OSError as exc:  # preferences are a comfort, never a reason to fail
            log.warning("cannot save UI preferences of %s: %s", user, exc)
        return prefs
