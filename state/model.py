"""The trading state as an immutable value: its shape, schema version and conversions.

The state is a tree of :class:`FrozenDict` (a ``dict`` whose mutators raise) holding only
JSON values. Folds never change a node: they copy the nodes on the path they change and share
every other node with the previous state, so a tick costs a few small dict copies, and a
changed subtree is recognisable by identity (``old is not new``).

Shape (``SCHEMA_VERSION = 2``)::

    positions  {symbol: {qty, avg_price, realized_pnl}}         qty signed, short < 0
    account    {cash, starting_cash, commissions, realized_pnl}
    pnl        {realized, unrealized, daily, equity, drawdown, max_drawdown, session_start}
    prices     {symbol: {last, bid, ask, ts}}                   ts in ns; bid/ask may be None
    trading    {state, reason, actor, ts}                       state: active|halted|reducing
    runner     {component: status}
    orders     {order_id: {order_id, strategy, symbol, side, qty, filled_qty, leaves_qty,
                           order_type, limit_price, status, ts}}   open orders only
    meta       {seq, count, ts, schema_version}                 last applied seq, events applied

Any other top-level section (``risk``, ``strategies``, ``ui``...) holds generic values written
through ``StateStore.update_state``; the sections above (:data:`DOMAIN_SECTIONS`) change only
through their own events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from streams.errors import SnapshotCorrupted
from streams.events import ACTIVE

SCHEMA_VERSION = 2

#: Top-level sections owned by domain events; ``update_state`` may not write under them.
DOMAIN_SECTIONS = frozenset(
    {"positions", "account", "pnl", "prices", "trading", "runner", "orders", "meta"}
)

#: Position quantities closer to zero than this are flat (float noise from partial fills).
QTY_EPSILON = 1e-9


class StateSchemaError(SnapshotCorrupted):
    """A state dict does not have the current schema's shape; the message names path and value.

    A subclass of :class:`~streams.errors.SnapshotCorrupted` so a restore treats a snapshot that
    fails validation like one that fails its checksum.
    """


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses mutation: the node type of the state tree.

    It is a real ``dict`` (``json.dumps``, ``param.Dict`` and ``==`` work unchanged), but every
    mutator raises ``TypeError``. Build changed copies with :func:`assoc`/:func:`assoc_in`.
    """

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("state is immutable: FrozenDict cannot be modified (copy it instead)")

    __setitem__ = _readonly
    __delitem__ = _readonly
    __ior__ = _readonly
    clear = _readonly
    pop = _readonly
    popitem = _readonly
    setdefault = _readonly
    update = _readonly

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


State = FrozenDict
EMPTY: FrozenDict = FrozenDict()


def assoc(node: Mapping[str, Any], key: str, value: Any) -> FrozenDict:
    """A copy of ``node`` with ``key`` set to ``value`` (one shallow copy, the rest shared)."""
    new = FrozenDict(node)
    dict.__setitem__(new, key, value)
    return new


def merge(node: Mapping[str, Any], changes: Mapping[str, Any]) -> FrozenDict:
    """A copy of ``node`` with every key of ``changes`` set (one shallow copy)."""
    new = FrozenDict(node)
    dict.update(new, changes)
    return new


def dissoc(node: Mapping[str, Any], key: str) -> FrozenDict:
    """A copy of ``node`` without ``key`` (``node`` itself if the key is absent)."""
    if key not in node:
        return node if isinstance(node, FrozenDict) else FrozenDict(node)
    new = FrozenDict(node)
    dict.__delitem__(new, key)
    return new


def assoc_in(node: Mapping[str, Any], keys: Iterable[str], value: Any) -> FrozenDict:
    """A copy of ``node`` with the value at the nested ``keys`` set, copying only that path.

    Missing or non-mapping intermediate nodes are replaced by new mappings.
    """
    keys = tuple(keys)
    if not keys:
        raise ValueError("assoc_in needs at least one key")
    head = keys[0]
    if len(keys) == 1:
        return assoc(node, head, value)
    child = node.get(head)
    if not isinstance(child, Mapping):
        child = EMPTY
    return assoc(node, head, assoc_in(child, keys[1:], value))


def freeze(value: Any) -> Any:
    """``value`` as an immutable state value: mappings -> FrozenDict, lists -> tuples."""
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """``value`` as plain JSON-ready Python: mappings -> dict, tuples -> lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


# -- the shape -------------------------------------------------------------------------------
def empty_position() -> FrozenDict:
    """A flat position with no history."""
    return FrozenDict(qty=0.0, avg_price=0.0, realized_pnl=0.0)


def empty_pnl() -> FrozenDict:
    """P&L figures before the first ``PnlUpdated``."""
    return FrozenDict(
        realized=0.0,
        unrealized=0.0,
        daily=0.0,
        equity=0.0,
        drawdown=0.0,
        max_drawdown=0.0,
        session_start=0,
    )


def initial_state(starting_cash: float = 0.0) -> State:
    """The state before any event: no positions, ``starting_cash`` as cash, trading active."""
    cash = float(starting_cash)
    return FrozenDict(
        positions=EMPTY,
        account=FrozenDict(cash=cash, starting_cash=cash, commissions=0.0, realized_pnl=0.0),
        pnl=merge(empty_pnl(), {"equity": cash}),
        prices=EMPTY,
        trading=FrozenDict(state=ACTIVE, reason="", actor="", ts=0),
        runner=EMPTY,
        orders=EMPTY,
        meta=FrozenDict(seq=0, count=0, ts=0, schema_version=SCHEMA_VERSION),
    )


#: Sentinel for "no default" / "no value here" in path lookups.
MISSING: Any = object()


def split_path(path: str) -> tuple[str, ...]:
    """The segments of a dotted path (``""`` is the root, no segments)."""
    if not path:
        return ()
    return tuple(path.split("."))


def get_path(state: Mapping[str, Any], path: str, default: Any = MISSING) -> Any:
    """The value at dotted ``path`` (``"positions.AAPL.qty"``); ``""`` is the whole state.

    Raises ``KeyError`` naming the path and the missing segment unless ``default`` is given.
    """
    node: Any = state
    if not path:
        return node
    if "." not in path and type(node) is FrozenDict:  # the common case: one section of a state
        found = dict.get(node, path, MISSING)
        if found is not MISSING:
            return found
    for seg in path.split("."):
        # dict first: every state node is one, and the Mapping ABC check is slow.
        if isinstance(node, (dict, Mapping)) and seg in node:
            node = node[seg]
        else:
            if default is not MISSING:
                return default
            raise KeyError(f"state path {path!r}: no {seg!r} here")
    return node


def state_to_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as plain dicts and lists, ready for ``json.dumps``."""
    return thaw(state)


# -- validation ------------------------------------------------------------------------------
def _fail(path: str, value: Any, expected: str) -> NoReturn:
    raise StateSchemaError(f"state field {path!r} has invalid value {value!r}: expected {expected}")


def _number(path: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, value, "a number" + (" or null" if optional else ""))
    if math.isnan(value):
        _fail(path, value, "a number, not NaN")
    return float(value)


def _integer(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, value, "an integer")
    return value


def _string(path: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(path, value, "a string")
    return value


def _mapping(path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, value, "an object")
    return value


def _field(path: str, node: Mapping[str, Any], key: str) -> Any:
    if key not in node:
        raise StateSchemaError(f"state field {path}.{key!r} is missing")
    return node[key]


def _numbers(path: str, node: Any, keys: Iterable[str]) -> FrozenDict:
    node = _mapping(path, node)
    out = dict(node)
    for key in keys:
        out[key] = _number(f"{path}.{key}", _field(path, node, key))
    return freeze(out)


def state_from_dict(data: Mapping[str, Any]) -> State:
    """Rebuild a state from :func:`state_to_dict` output (e.g. after JSON), validating it.

    Expects the current :data:`SCHEMA_VERSION`; run :func:`state.migrations.migrate` first on
    older data. Raises :class:`StateSchemaError` naming the field, the value and what was
    expected.
    """
    root = _mapping("", data)
    for section in DOMAIN_SECTIONS:
        _field("state", root, section)
    meta = _mapping("meta", root["meta"])
    version = meta.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        _fail("meta.schema_version", version, f"{SCHEMA_VERSION} (migrate older data first)")
    out: dict[str, Any] = {k: freeze(v) for k, v in root.items() if k not in DOMAIN_SECTIONS}

    positions = _mapping("positions", root["positions"])
    out["positions"] = FrozenDict(
        {
            _string("positions", sym): _numbers(
                f"positions.{sym}", pos, ("qty", "avg_price", "realized_pnl")
            )
            for sym, pos in positions.items()
        }
    )
    out["account"] = _numbers(
        "account", root["account"], ("cash", "starting_cash", "commissions", "realized_pnl")
    )
    pnl = _numbers(
        "pnl",
        root["pnl"],
        ("realized", "unrealized", "daily", "equity", "drawdown", "max_drawdown"),
    )
    out["pnl"] = assoc(
        pnl, "session_start", _integer("pnl.session_start", pnl.get("session_start", 0))
    )

    prices: dict[str, Any] = {}
    for sym, quote in _mapping("prices", root["prices"]).items():
        where = f"prices.{sym}"
        quote = _mapping(where, quote)
        prices[sym] = FrozenDict(
            last=_number(f"{where}.last", quote.get("last"), optional=True),
            bid=_number(f"{where}.bid", quote.get("bid"), optional=True),
            ask=_number(f"{where}.ask", quote.get("ask"), optional=True),
            ts=_integer(f"{where}.ts", quote.get("ts", 0)),
        )
    out["prices"] = FrozenDict(prices)

    trading = _mapping("trading", root["trading"])
    out["trading"] = FrozenDict(
        state=_string("trading.state", _field("trading", trading, "state")),
        reason=_string("trading.reason", trading.get("reason", "")),
        actor=_string("trading.actor", trading.get("actor", "")),
        ts=_integer("trading.ts", trading.get("ts", 0)),
    )

    runner = _mapping("runner", root["runner"])
    out["runner"] = FrozenDict(
        {name: _string(f"runner.{name}", status) for name, status in runner.items()}
    )

    orders = _mapping("orders", root["orders"])
    checked: dict[str, Any] = {}
    for oid, order in orders.items():
        where = f"orders.{oid}"
        order = _mapping(where, order)
        for key in ("qty", "filled_qty", "leaves_qty"):
            _number(f"{where}.{key}", _field(where, order, key))
        for key in ("symbol", "side", "status"):
            _string(f"{where}.{key}", _field(where, order, key))
        checked[oid] = freeze(order)
    out["orders"] = FrozenDict(checked)

    out["meta"] = FrozenDict(
        seq=_integer("meta.seq", _field("meta", meta, "seq")),
        count=_integer("meta.count", meta.get("count", 0)),
        ts=_integer("meta.ts", meta.get("ts", 0)),
        schema_version=SCHEMA_VERSION,
    )
    return FrozenDict(out)
