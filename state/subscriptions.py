"""Path subscriptions: who wants to hear about which state paths, and telling them.

Patterns are dotted paths where ``*`` matches one segment (``positions.*``,
``prices.*.last``). A subscriber hears only about real changes (old value != new value) at its
pattern's depth: a pattern shallower than the changed path reports the enclosing node
(``positions`` for a change of ``positions.AAPL``), a deeper one is expanded over both the old
and the new tree, so ``prices.*.last`` stays silent when only a quote's ``ts`` moved.

Subscribing and disposing are safe from any thread: the index is copied on write under a lock
and swapped whole, and notification (engine thread) reads whichever index is current.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from state.model import State, get_path, split_path
from streams.errors import EventError
from streams.events import Event

Callback = Callable[[str, Any, Event], object]
Reporter = Callable[[BaseException, str, Event], None]

#: "Nothing at this path" in change detection (distinct from every state value).
ABSENT: Any = object()


class Subscription:
    """A live path subscription; :meth:`dispose` ends it (idempotent, any thread)."""

    __slots__ = ("_registry", "callback", "pattern", "segments")

    def __init__(self, registry: SubscriptionRegistry, pattern: str, callback: Callback) -> None:
        self._registry: SubscriptionRegistry | None = registry
        self.pattern = pattern
        self.segments = split_path(pattern)
        self.callback = callback

    @property
    def disposed(self) -> bool:
        """True once :meth:`dispose` was called."""
        return self._registry is None

    def dispose(self) -> None:
        """Stop calling the callback. Safe to call twice and from inside the callback."""
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Subscription({self.pattern!r}, disposed={self.disposed})"


def matches_prefix(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """True if ``pattern`` (``*`` = any one segment) matches the first segments of ``path``."""
    if len(pattern) > len(path):
        return False
    return all(p == "*" or p == s for p, s in zip(pattern, path, strict=False))


def differs(old: Any, new: Any) -> bool:
    """True if two state values are different (identity first: unchanged nodes are shared)."""
    return old is not new and old != new


def changed_paths(old: State, new: State, touched: Sequence[str]) -> list[str]:
    """The ``touched`` paths whose value really differs between ``old`` and ``new``."""
    changed = []
    for path in touched:  # differs(), inlined: this runs for every event folded
        before, after = get_path(old, path, ABSENT), get_path(new, path, ABSENT)
        if before is not after and before != after:
            changed.append(path)
    return changed


def _child(node: Any, key: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(key, ABSENT)
    return ABSENT


def _walk(
    prefix: tuple[str, ...], rest: Sequence[str], old: Any, new: Any
) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Concrete paths under ``prefix`` matching ``rest`` in either tree, with both values."""
    if not rest:
        yield prefix, old, new
        return
    seg, tail = rest[0], rest[1:]
    if seg != "*":
        yield from _walk((*prefix, seg), tail, _child(old, seg), _child(new, seg))
        return
    keys: dict[str, None] = {}
    for node in (new, old):
        if isinstance(node, Mapping):
            keys.update(dict.fromkeys(node))
    for key in keys:
        yield from _walk((*prefix, key), tail, _child(old, key), _child(new, key))


class SubscriptionRegistry:
    """The live subscriptions, indexed by first segment so a tick only visits ``prices`` ones.

    ``report`` hears about every callback that raised, as ``(error, where, event)``.
    """

    def __init__(self, report: Reporter) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._by_head: dict[str, tuple[Subscription, ...]] = {}
        self._wild: tuple[Subscription, ...] = ()

    def __len__(self) -> int:
        return len(self._wild) + sum(len(v) for v in self._by_head.values())

    def add(self, pattern: str, callback: Callback) -> Subscription:
        """Start a subscription (any thread); ``""`` is the same as ``*``."""
        segments = split_path(pattern)
        if any(not seg for seg in segments):
            raise EventError(f"subscription path {pattern!r} has an empty segment")
        sub = Subscription(self, pattern or "*", callback)
        with self._lock:
            head = sub.segments[0]
            if head == "*":
                self._wild = (*self._wild, sub)
            else:
                index = dict(self._by_head)
                index[head] = (*index.get(head, ()), sub)
                self._by_head = index
        return sub

    def remove(self, sub: Subscription) -> None:
        """End a subscription (any thread); unknown ones are ignored."""
        with self._lock:
            head = sub.segments[0]
            if head == "*":
                self._wild = tuple(s for s in self._wild if s is not sub)
                return
            index = dict(self._by_head)
            remaining = tuple(s for s in index.get(head, ()) if s is not sub)
            if remaining:
                index[head] = remaining
            else:
                index.pop(head, None)
            self._by_head = index

    def notify(self, old: State, new: State, changed: Sequence[str], event: Event) -> None:
        """Call every subscriber whose pattern sees a real change among ``changed`` paths."""
        wild, index = self._wild, self._by_head
        if not wild and not index:
            return
        for sub in wild:
            self._deliver(sub, old, new, changed, event)
        for head in dict.fromkeys(p.partition(".")[0] for p in changed):
            for sub in index.get(head, ()):
                self._deliver(sub, old, new, changed, event)

    def _deliver(
        self, sub: Subscription, old: State, new: State, changed: Sequence[str], event: Event
    ) -> None:
        seen: set[tuple[str, ...]] = set()
        pattern = sub.segments
        for path in changed:
            segments = tuple(path.split("."))
            found: list[tuple[tuple[str, ...], Any, Any]]
            if len(pattern) <= len(segments):
                if not matches_prefix(pattern, segments):
                    continue
                target = segments[: len(pattern)]
                joined = ".".join(target)
                found = [(target, get_path(old, joined, ABSENT), get_path(new, joined, ABSENT))]
            else:
                if not matches_prefix(pattern[: len(segments)], segments):
                    continue
                old_node, new_node = get_path(old, path, ABSENT), get_path(new, path, ABSENT)
                found = list(_walk(segments, pattern[len(segments) :], old_node, new_node))
            for target, before, after in found:
                if sub.disposed:
                    return
                if target in seen or not differs(before, after):
                    continue
                seen.add(target)
                try:
                    sub.callback(".".join(target), None if after is ABSENT else after, event)
                except Exception as exc:
                    self._report(exc, f"subscriber {sub.pattern!r}", event)
