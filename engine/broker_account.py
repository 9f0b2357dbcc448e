"""The paper broker's own books: cash, positions, fills and working orders, in a file it owns.

The broker's account is deliberately *not* derived from the engine's event log: it is a second,
independent record, so reconciliation at start-up compares two real books (as it would with a
real broker). :class:`BrokerLedger` is the mutable book the broker keeps on the engine thread;
every change is saved (when a path is given) before the broker tells anyone about it, because a
real broker fills first and reports afterwards. :class:`BrokerAccount` is an immutable snapshot
of it for readers (reconciliation, the dashboard, tests).

The file is JSON written atomically: a temporary file in the same folder, flushed and fsynced,
then renamed over the old one (and the folder fsynced), so a crash leaves either the old or the
new account, never a torn one. ``path=None`` keeps everything in memory (backtests).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from state.fold import fill_position
from state.model import QTY_EPSILON, FrozenDict
from streams.errors import PersistenceError
from streams.events import BUY, SIDES, OrderSubmitted, event_from_dict

FILE_FORMAT = 1


class BrokerAccountError(PersistenceError):
    """The broker's account file cannot be read, is malformed, or cannot be written."""


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerPosition:
    """The broker's position in one symbol (signed ``qty``, short < 0) at average cost."""

    symbol: str
    qty: float
    avg_price: float
    realized_pnl: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerFill:
    """One execution in the broker's books; ``external`` marks a trade made outside the engine."""

    fill_id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    commission: float
    ts: int
    external: bool = False

    @property
    def signed_qty(self) -> float:
        """Quantity with sign: positive for a buy, negative for a sell."""
        return self.qty if self.side == BUY else -self.qty


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerAccount:
    """A consistent, immutable snapshot of the broker's books.

    ``fills`` holds the most recent fills only (the ledger keeps a bounded number);
    ``fill_count`` counts every fill ever booked. ``open_orders`` are the working orders.
    """

    cash: float
    starting_cash: float
    commissions: float
    positions: Mapping[str, BrokerPosition]
    fills: tuple[BrokerFill, ...]
    fill_count: int
    open_orders: Mapping[str, OrderSubmitted]

    def position(self, symbol: str) -> float:
        """The signed quantity held in ``symbol`` (0.0 when flat or unknown)."""
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0.0


class BrokerLedger:
    """The broker's mutable books, saved to ``path`` after every change (engine thread only).

    A missing file starts a new account with ``starting_cash``; an existing one is loaded and
    wins over ``starting_cash``. A file that cannot be read or parsed raises
    :class:`BrokerAccountError` naming the file and the bad field.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        starting_cash: float = 0.0,
        max_fills_kept: int = 10_000,
    ) -> None:
        self.path = Path(path) if path is not None else None
        if max_fills_kept < 1:
            raise ValueError(f"max_fills_kept {max_fills_kept!r} must be at least 1")
        self.cash = float(starting_cash)
        self.starting_cash = float(starting_cash)
        self.commissions = 0.0
        self.fill_count = 0
        self.positions: dict[str, FrozenDict] = {}
        self.fills: deque[BrokerFill] = deque(maxlen=int(max_fills_kept))
        # Each fill's JSON, encoded once: a save writes up to max_fills_kept of them, and
        # re-encoding them all on every order and fill cost the engine thread O(fills).
        self._fill_texts: deque[str] = deque(maxlen=int(max_fills_kept))
        self.open_orders: dict[str, OrderSubmitted] = {}
        #: How far each open order has got: ``{order_id: {"filled": qty, "fills": n,
        #: "triggered": bool}}``
        #: (partly filled orders, triggered stop-limits); absent means not at all.
        self.progress: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # -- changes (each saved; rolled back in memory if the save fails) ----------------------
    def add_order(self, order: OrderSubmitted, *, save: bool = True) -> None:
        """Book a working order and save (``save=False``: the caller saves it with the next
        change, e.g. the order's immediate fill, before anyone hears of the order)."""
        self.open_orders[order.order_id] = order
        if not save:
            return
        try:
            self.save()
        except BrokerAccountError:
            del self.open_orders[order.order_id]
            raise

    def remove_order(self, order_id: str) -> OrderSubmitted | None:
        """Drop a working order (cancelled) and save; the order, or None if it was not open."""
        order = self.open_orders.pop(order_id, None)
        progress = self.progress.pop(order_id, None)
        if order is not None:
            try:
                self.save()
            except BrokerAccountError:
                self.open_orders[order_id] = order
                if progress is not None:
                    self.progress[order_id] = progress
                raise
        return order

    def mark_triggered(self, order_id: str) -> None:
        """Note that a stop-limit order was triggered (it is a limit order from now on), and
        save; unknown orders are ignored."""
        if order_id not in self.open_orders:
            return
        before = self.progress.get(order_id)
        self.progress[order_id] = {"filled": 0.0, "fills": 0, **(before or {}), "triggered": True}
        try:
            self.save()
        except BrokerAccountError:
            if before is None:
                self.progress.pop(order_id, None)
            else:
                self.progress[order_id] = before
            raise

    def book_fill(self, fill: BrokerFill, *, done: bool = True) -> None:
        """Move position and cash for ``fill``, close its order when ``done`` (else note how
        much of it is filled), and save."""
        undo = (self.cash, self.commissions, self.fill_count, self.positions.get(fill.symbol))
        dropped = self.fills[0] if len(self.fills) == self.fills.maxlen else None
        progress_before = self.progress.get(fill.order_id)
        if done:
            order = self.open_orders.pop(fill.order_id, None)
            self.progress.pop(fill.order_id, None)
        else:
            order = None
            before = progress_before or {}
            self.progress[fill.order_id] = {
                **before,
                "filled": float(before.get("filled", 0.0)) + fill.qty,
                "fills": int(before.get("fills", 0)) + 1,
            }
        new, _gain = fill_position(undo[3], fill.signed_qty, fill.price)
        self.positions[fill.symbol] = new
        self.cash -= fill.signed_qty * fill.price + fill.commission
        self.commissions += fill.commission
        self.fill_count += 1
        self.fills.append(fill)
        if self.path is not None:  # the text is only for the file
            self._fill_texts.append(_fill_text(fill))
        try:
            self.save()
        except BrokerAccountError:
            self.cash, self.commissions, self.fill_count, old = undo
            if old is None:
                del self.positions[fill.symbol]
            else:
                self.positions[fill.symbol] = old
            self.fills.pop()
            if self.path is not None:
                self._fill_texts.pop()
            if dropped is not None:
                self.fills.appendleft(dropped)
                self._fill_texts.appendleft(_fill_text(dropped))
            if order is not None:
                self.open_orders[fill.order_id] = order
            if progress_before is None:
                self.progress.pop(fill.order_id, None)
            else:
                self.progress[fill.order_id] = progress_before
            raise

    # -- reading ------------------------------------------------------------------------------
    def snapshot(self) -> BrokerAccount:
        """An immutable copy of the books as they are now."""
        positions = {
            sym: BrokerPosition(sym, pos["qty"], pos["avg_price"], pos["realized_pnl"])
            for sym, pos in self.positions.items()
        }
        return BrokerAccount(
            cash=self.cash,
            starting_cash=self.starting_cash,
            commissions=self.commissions,
            positions=positions,
            fills=tuple(self.fills),
            fill_count=self.fill_count,
            open_orders=dict(self.open_orders),
        )

    # -- the file -----------------------------------------------------------------------------
    def to_dict(self, *, with_fills: bool = True) -> dict[str, Any]:
        """The books as JSON-ready data (the file's content)."""
        data = {
            "format": FILE_FORMAT,
            "cash": self.cash,
            "starting_cash": self.starting_cash,
            "commissions": self.commissions,
            "fill_count": self.fill_count,
            "positions": {sym: dict(pos) for sym, pos in self.positions.items()},
            "open_orders": {oid: o.to_dict() for oid, o in self.open_orders.items()},
            "progress": {oid: dict(p) for oid, p in self.progress.items()},
        }
        if with_fills:
            data["fills"] = [dataclasses.asdict(f) for f in self.fills]
        return data

    def file_text(self) -> str:
        """The file's content: ``to_dict()`` as JSON, built from each fill's cached text."""
        head = self.to_dict(with_fills=False)
        fills = ",".join(self._fill_texts)
        return json.dumps(head, separators=(",", ":"))[:-1] + f',"fills":[{fills}]}}'

    def save(self) -> None:
        """Write the books atomically (temp file, fsync, rename); a no-op in memory."""
        if self.path is None:
            return
        data = self.file_text()
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(folder)
        except OSError as exc:
            raise BrokerAccountError(
                f"cannot write broker account {self.path}: {exc.strerror or exc}"
            ) from exc

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BrokerAccountError(
                f"cannot read broker account {path}: {exc.strerror or exc}"
            ) from exc
        except ValueError as exc:
            raise BrokerAccountError(f"broker account {path} is not valid JSON: {exc}") from exc
        try:
            self._load_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise BrokerAccountError(f"broker account {path}: {exc}") from exc

    def _load_dict(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected an object at the top, got {type(raw).__name__}")
        if raw.get("format") != FILE_FORMAT:
            raise ValueError(f"field 'format' is {raw.get('format')!r}, expected {FILE_FORMAT}")
        self.cash = _num(raw, "cash")
        self.starting_cash = _num(raw, "starting_cash")
        self.commissions = _num(raw, "commissions")
        count = raw.get("fill_count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"field 'fill_count' has invalid value {count!r}")
        self.fill_count = count
        positions: dict[str, FrozenDict] = {}
        for sym, pos in _mapping(raw, "positions").items():
            if not isinstance(pos, Mapping):
                raise ValueError(f"field 'positions.{sym}' has invalid value {pos!r}")
            where = f"positions.{sym}"
            qty = _num(pos, "qty", where)
            positions[sym] = FrozenDict(
                qty=0.0 if abs(qty) < QTY_EPSILON else qty,
                avg_price=_num(pos, "avg_price", where),
                realized_pnl=_num(pos, "realized_pnl", where),
            )
        self.positions = positions
        fills = raw.get("fills")
        if not isinstance(fills, list):
            raise ValueError(f"field 'fills' has invalid value {fills!r}")
        self.fills.clear()
        self.fills.extend(_fill_from(item, i) for i, item in enumerate(fills))
        self._fill_texts.clear()
        self._fill_texts.extend(_fill_text(f) for f in self.fills)
        self.open_orders = {}
        for oid, order in _mapping(raw, "open_orders").items():
            event = event_from_dict(order)
            if not isinstance(event, OrderSubmitted):
                raise ValueError(f"field 'open_orders.{oid}' is a {event.type}, not an order")
            self.open_orders[oid] = event
        self.progress = {}
        for oid, progress in _mapping(raw, "progress", optional=True).items():
            if oid not in self.open_orders or not isinstance(progress, Mapping):
                raise ValueError(f"field 'progress.{oid}' has invalid value {progress!r}")
            self.progress[oid] = {
                "filled": _num(progress, "filled", f"progress.{oid}"),
                "fills": int(progress.get("fills", 0)),
                "triggered": bool(progress.get("triggered", False)),
            }


def _fill_text(fill: BrokerFill) -> str:
    return json.dumps(dataclasses.asdict(fill), separators=(",", ":"))


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder entry is; not every OS lets us open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mapping(raw: Mapping[str, Any], key: str, *, optional: bool = False) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"field {key!r} has invalid value {value!r}: expected an object")
    return value


def _num(raw: Mapping[str, Any], key: str, where: str = "") -> float:
    value = raw.get(key)
    name = f"{where}.{key}" if where else key
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"field {name!r} has invalid value {value!r}: expected a number")
    return float(value)


def _fill_from(item: Any, index: int) -> BrokerFill:
    where = f"fills[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"field {where!r} has invalid value {item!r}")
    side = item.get("side")
    if side not in SIDES:
        raise ValueError(f"field '{where}.side' has invalid value {side!r}")
    return BrokerFill(
        fill_id=str(item["fill_id"]),
        order_id=str(item["order_id"]),
        symbol=str(item["symbol"]),
        side=side,
        qty=_num(item, "qty", where),
        price=_num(item, "price", where),
        commission=_num(item, "commission", where),
        ts=int(item.get("ts", 0)),
        external=bool(item.get("external", False)),
    )
