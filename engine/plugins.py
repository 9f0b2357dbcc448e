"""Extension points: strategies, feeds, brokers, notifiers and dashboard tabs found through
Python entry points, the built-ins included (the project's own ``pyproject.toml`` declares them).

Groups (:data:`GROUPS`) and what an entry point of each must name:

- ``seamless.strategies`` - a :class:`~engine.strategy.Strategy` subclass;
- ``seamless.feeds`` - a :class:`~engine.feeds.FeedKind` instance (``replay``, ``load``,
  ``build``);
- ``seamless.brokers``, ``seamless.notifiers``, ``seamless.panels`` - a factory (callable).

A group's entry points are read through :mod:`importlib.metadata` the first time a name of it
is needed and cached; a plugin is imported only when it is used (or listed by
``seamless plugins``). Every failure is a :class:`~streams.errors.PluginError` naming the
group, the entry point, its distribution and the cause, so a broken plugin that is configured
stops start-up with a clear message, and one that is not configured affects nothing.
:func:`clear_cache` forgets what was read (after installing a plugin into a running process).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from importlib import metadata
from typing import Any, TextIO

from streams.errors import PluginError, SeamlessError

STRATEGIES = "seamless.strategies"
FEEDS = "seamless.feeds"
BROKERS = "seamless.brokers"
NOTIFIERS = "seamless.notifiers"
PANELS = "seamless.panels"

#: Every extension group, in the order ``seamless plugins`` lists them.
GROUPS = (STRATEGIES, FEEDS, BROKERS, NOTIFIERS, PANELS)

#: A protocol check: None if the loaded object fits its group, else what is wrong with it.
Check = Callable[[Any], "str | None"]


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """One installed entry point as ``seamless plugins`` reports it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str
    loads: bool | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``seamless plugins --json``)."""
        return dataclasses.asdict(self)


def _check_strategy(obj: Any) -> str | None:
    from engine.strategy import Strategy

    if isinstance(obj, type) and issubclass(obj, Strategy):
        return None
    return f"expected a subclass of engine.Strategy, got {_describe(obj)}"


def _check_feed(obj: Any) -> str | None:
    from engine.feeds import FeedKind

    if not isinstance(obj, type) and isinstance(obj, FeedKind):
        return None
    return (
        "expected a FeedKind instance (attribute 'replay', methods 'load' and 'build'), "
        f"got {_describe(obj)}"
    )


def _check_factory(obj: Any) -> str | None:
    return None if callable(obj) else f"expected a factory (a callable), got {_describe(obj)}"


_CHECKS: dict[str, Check] = {
    STRATEGIES: _check_strategy,
    FEEDS: _check_feed,
    BROKERS: _check_factory,
    NOTIFIERS: _check_factory,
    PANELS: _check_factory,
}


def _describe(obj: Any) -> str:
    kind = "class" if isinstance(obj, type) else type(obj).__name__
    return f"{kind} {getattr(obj, '__qualname__', repr(obj)[:80])!r}"


@functools.cache
def _all_entry_points() -> dict[str, dict[str, metadata.EntryPoint]]:
    # One scan of the installed distributions for every group, not one per group: a scan
    # reads every distribution's entry_points.txt (~30 ms here, on the start-up path).
    every = metadata.entry_points()
    found: dict[str, dict[str, metadata.EntryPoint]] = {}
    for group in GROUPS:
        found[group] = {}
        for ep in every.select(group=group):
            found[group].setdefault(ep.name, ep)
    return found


def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    return _all_entry_points()[group]


def _distribution(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "?", "?"
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


def names(group: str) -> list[str]:
    """The entry-point names installed in ``group``, sorted (nothing is imported)."""
    _require_group(group)
    return sorted(_entry_points(group))


def _require_group(group: str) -> None:
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r} (groups: {', '.join(GROUPS)})")


def _where(group: str, ep: metadata.EntryPoint) -> str:
    dist, version = _distribution(ep)
    return f"{group} entry point {ep.name!r} = {ep.value!r} (distribution {dist} {version})"


def describe(group: str, name: str) -> str:
    """``<group> entry point '<name>' = '<value>' (distribution <dist> <version>)``, for errors
    about an installed plugin."""
    _require_group(group)
    ep = _entry_points(group).get(name)
    return _where(group, ep) if ep is not None else f"{group} entry point {name!r} (not installed)"


@functools.cache
def _load(group: str, name: str) -> Any:
    ep = _entry_points(group)[name]
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import may raise anything; name it, do not crash
        raise PluginError(
            f"{_where(group, ep)} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    problem = _CHECKS[group](obj)
    if problem is not None:
        raise PluginError(f"{_where(group, ep)} does not satisfy its protocol: {problem}")
    return obj


def load(group: str, name: str) -> Any:
    """The object entry point ``name`` of ``group`` names, imported once and checked against
    the group's protocol; PluginError naming entry point, distribution and cause otherwise."""
    _require_group(group)
    if name not in _entry_points(group):
        installed = ", ".join(names(group)) or "none"
        raise PluginError(f"no {group} entry point named {name!r} (installed: {installed})")
    return _load(group, name)


def call_factory(group: str, name: str, *args: Any, where: str, what: str) -> Any:
    """What the factory entry point ``name`` of ``group`` builds from ``args``. A SeamlessError
    it raises passes; any other error becomes a PluginError naming the entry point, its
    distribution and the cause (``{where}: <entry point> failed to build {what}: <error>``)."""
    factory = load(group, name)
    try:
        return factory(*args)
    except SeamlessError:
        raise
    except Exception as exc:  # a plugin's factory may raise anything: name it
        raise PluginError(
            f"{where}: {describe(group, name)} failed to build {what}: {type(exc).__name__}: {exc}"
        ) from exc


def not_installed(group: str, name: str, what: str) -> str | None:
    """Why a config naming ``name`` for ``group`` is wrong (``expected an installed {what} (the
    installed names), got 'name'``), or None if ``name`` is installed. Imports nothing."""
    installed = names(group)
    if name in installed:
        return None
    return f"expected an installed {what} ({', '.join(installed)}), got {name!r}"


def list_plugins(*, load_each: bool = True) -> list[PluginInfo]:
    """Every installed plugin of every group; with ``load_each``, whether it loads and fits
    its protocol (a broken one is reported with its error, never raised)."""
    rows = []
    for group in GROUPS:
        for name, ep in sorted(_entry_points(group).items()):
            dist, version = _distribution(ep)
            loads: bool | None = None
            error = ""
            if load_each:
                try:
                    _load(group, name)
                    loads = True
                except PluginError as exc:
                    loads, error = False, str(exc)
            rows.append(PluginInfo(group, name, ep.value, dist, version, loads, error))
    return rows


def write_plugins(out: TextIO, *, as_json: bool = False) -> list[PluginInfo]:
    """``seamless plugins``: every installed plugin, one line each (or one JSON list), with
    ``ok`` or ``BROKEN`` and the cause; returns the rows."""
    rows = list_plugins()
    if as_json:
        out.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        return rows
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        status = "ok" if row.loads else f"BROKEN: {row.error}"
        out.write(
            f"{row.group:<20} {row.name:<{width}} {row.distribution} {row.version}  {status}\n"
        )
    broken = sum(1 for r in rows if not r.loads)
    out.write(f"{len(rows)} plugins, {broken} broken\n")
    return rows


def clear_cache() -> None:
    """Forget the entry points read and the plugins loaded (they are read again when needed)."""
    _all_entry_points.cache_clear()
    _load.cache_clear()


__all__ = [
    "BROKERS",
    "FEEDS",
    "GROUPS",
    "NOTIFIERS",
    "PANELS",
    "STRATEGIES",
    "PluginInfo",
    "call_factory",
    "clear_cache",
    "describe",
    "list_plugins",
    "load",
    "names",
    "not_installed",
    "write_plugins",
]
