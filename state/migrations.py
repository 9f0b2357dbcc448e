"""Snapshot schema versions and the steps that bring old snapshots to the current one.

A snapshot stores ``state_to_dict(state)`` with the schema version it was written under. On
restore, :func:`migrate` runs the registered steps ``v -> v+1`` in order until the data has
the current :data:`~state.model.SCHEMA_VERSION`; then :func:`~state.model.state_from_dict`
validates it. Each step is a pure function on plain dicts and never mutates its input.

Version history:

* **v1** (the first snapshot format) was flat::

      {"seq": int, "cash": float, "starting_cash": float, "realized_pnl": float,
       "commissions": float, "positions": {symbol: qty}, "avg_prices": {symbol: float},
       "prices": {symbol: float}, "trading_state": str, "runner": {component: status}}

  (``commissions``, ``avg_prices``, ``prices`` and ``runner`` optional).
* **v2** is the nested shape described in :mod:`state.model`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from state.model import SCHEMA_VERSION, StateSchemaError
from streams.errors import PersistenceError
from streams.events import ACTIVE

Migration = Callable[[dict[str, Any]], dict[str, Any]]

#: from_version -> the step that turns data of that version into data of from_version + 1
MIGRATIONS: dict[int, Migration] = {}


class SchemaVersionError(PersistenceError):
    """A snapshot has a schema version this code cannot read (unknown or newer than it)."""


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register the decorated function as the step from ``from_version`` to the next version."""

    def register(step: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from schema version {from_version} already exists")
        MIGRATIONS[from_version] = step
        return step

    return register


def migrate(data: Mapping[str, Any], from_version: int) -> dict[str, Any]:
    """``data`` (a state dict written under ``from_version``) brought to ``SCHEMA_VERSION``.

    Returns a new dict (the input is not changed). Raises :class:`SchemaVersionError` for a
    version that is not an integer, is newer than this code, or has no migration path, and
    :class:`~state.model.StateSchemaError` when the data does not have its version's shape.
    """
    if isinstance(from_version, bool) or not isinstance(from_version, int):
        raise SchemaVersionError(
            f"snapshot schema_version has invalid value {from_version!r}: expected an integer"
        )
    if from_version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"snapshot schema_version {from_version} is newer than this code supports "
            f"({SCHEMA_VERSION}); upgrade Seamless to read it"
        )
    if not isinstance(data, Mapping):
        raise StateSchemaError(
            f"snapshot state must be an object, got {type(data).__name__}: {data!r}"
        )
    out: dict[str, Any] = copy.deepcopy(dict(data))
    version = from_version
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            known = sorted(MIGRATIONS)
            raise SchemaVersionError(
                f"snapshot schema_version {version} is unknown: migrations exist from {known} "
                f"to {SCHEMA_VERSION}"
            )
        out = step(out)
        version += 1
    return out


def _require(data: Mapping[str, Any], key: str, version: int) -> Any:
    if key not in data:
        raise StateSchemaError(f"v{version} snapshot is missing field {key!r}")
    return data[key]


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateSchemaError(
            f"v1 snapshot field {where!r} has invalid value {value!r}: expected a number"
        )
    return float(value)


@migration(1)
def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (flat: qty per symbol, cash at the top) -> v2 (nested sections, see module doc)."""
    seq = _require(data, "seq", 1)
    cash = _num(_require(data, "cash", 1), "cash")
    starting = _num(data.get("starting_cash", cash), "starting_cash")
    realized = _num(data.get("realized_pnl", 0.0), "realized_pnl")
    qtys = _require(data, "positions", 1)
    if not isinstance(qtys, Mapping):
        raise StateSchemaError(
            f"v1 snapshot field 'positions' has invalid value {qtys!r}: "
            "expected an object of symbol -> qty"
        )
    avg_prices = data.get("avg_prices") or {}
    marks = data.get("prices") or {}
    positions = {}
    for symbol, qty in qtys.items():
        q = _num(qty, f"positions.{symbol}")
        avg = avg_prices.get(symbol, marks.get(symbol, 0.0)) if q else 0.0
        positions[symbol] = {
            "qty": q,
            "avg_price": _num(avg, f"avg_prices.{symbol}"),
            # v1 kept realized P&L for the account only.
            "realized_pnl": 0.0,
        }
    prices = {
        symbol: {"last": _num(p, f"prices.{symbol}"), "bid": None, "ask": None, "ts": 0}
        for symbol, p in marks.items()
    }
    return {
        "positions": positions,
        "account": {
            "cash": cash,
            "starting_cash": starting,
            "commissions": _num(data.get("commissions", 0.0), "commissions"),
            "realized_pnl": realized,
        },
        "pnl": {
            "realized": realized,
            "unrealized": 0.0,
            "daily": 0.0,
            "equity": cash
            + sum(p["qty"] * marks.get(s, p["avg_price"]) for s, p in positions.items()),
            "drawdown": 0.0,
            "max_drawdown": 0.0,
            "session_start": 0,
        },
        "prices": prices,
        "trading": {"state": data.get("trading_state", ACTIVE), "reason": "", "actor": "", "ts": 0},
        "runner": dict(data.get("runner") or {}),
        "orders": {},
        "meta": {"seq": seq, "count": 0, "ts": 0, "schema_version": 2},
    }
