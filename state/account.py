"""The account and P&L folds: cash moved outside trading and the marked P&L figures.

Cash moved by fills is folded in :mod:`state.positions` (a fill changes both at once).
"""

from __future__ import annotations

from typing import Any

from state.model import FrozenDict, State, assoc
from streams.events import CashAdjusted, PnlUpdated


def apply_cash_adjusted(state: State, event: CashAdjusted) -> dict[str, Any]:
    """Add ``amount`` (negative takes cash away) to the account's cash."""
    account = state["account"]
    return {"account": assoc(account, "cash", account["cash"] + event.amount)}


def apply_pnl_updated(state: State, event: PnlUpdated) -> dict[str, Any]:
    """Replace the P&L figures (and the session they are measured from) with the carried ones."""
    return {
        "pnl": FrozenDict(
            realized=float(event.realized),
            unrealized=float(event.unrealized),
            daily=float(event.daily),
            equity=float(event.equity),
            drawdown=float(event.drawdown),
            max_drawdown=float(event.max_drawdown),
            session_start=int(event.session_start),
        )
    }
