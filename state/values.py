"""The generic-values fold: ``StateChanged`` sets the value at any non-domain path.

Paths are dotted (``risk.limits.max_position``) and live in the same tree as the domain
sections, so ``get_state`` reads them the same way. The domain sections
(:data:`~state.model.DOMAIN_SECTIONS`) change only through their own events: a
``StateChanged`` under one of them is ignored here and refused earlier by
``StateStore.update_state``.
"""

from __future__ import annotations

from typing import Any

from state.model import DOMAIN_SECTIONS, EMPTY, State, assoc_in, freeze
from streams.events import StateChanged


def is_generic_path(path: str) -> bool:
    """True if ``path`` is well formed and outside the domain sections (writable by actors)."""
    if not path:
        return False
    segments = path.split(".")
    if any(not seg or seg == "*" for seg in segments):
        return False
    return segments[0] not in DOMAIN_SECTIONS


def apply_state_changed(state: State, event: StateChanged) -> dict[str, Any]:
    """Set ``event.value`` (frozen) at ``event.path``; missing parents are created."""
    if not is_generic_path(event.path):
        return {}
    segments = event.path.split(".")
    head = segments[0]
    value = freeze(event.value)
    if len(segments) == 1:
        return {head: value}
    parent = state.get(head)
    return {head: assoc_in(parent if isinstance(parent, dict) else EMPTY, segments[1:], value)}
