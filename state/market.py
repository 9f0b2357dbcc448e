"""The market fold: the latest price per symbol, from ticks and bars.

``prices[symbol]`` is ``{last, bid, ask, ts}``: ``last`` is the price positions are marked to
(a tick's :attr:`~streams.events.TickReceived.price`, a bar's close); a quote side missing from
a tick keeps its previous value.
"""

from __future__ import annotations

from typing import Any

from state.model import FrozenDict, State, assoc
from streams.events import BarReceived, TickReceived


def apply_tick(state: State, event: TickReceived) -> dict[str, Any]:
    """Record the tick's price and quote; a tick without any price changes nothing."""
    bid, ask, last = event.bid, event.ask, event.last
    if last is not None:
        price = last
    elif bid is not None and ask is not None:
        price = (bid + ask) / 2.0
    elif bid is not None or ask is not None:
        price = bid if bid is not None else ask  # type: ignore[assignment]
    else:
        return {}
    prices = state["prices"]
    old = prices.get(event.symbol)
    if old is not None:
        if bid is None:
            bid = old["bid"]
        if ask is None:
            ask = old["ask"]
    quote = FrozenDict(last=price, bid=bid, ask=ask, ts=event.ts_event)
    return {"prices": assoc(prices, event.symbol, quote)}


def apply_bar(state: State, event: BarReceived) -> dict[str, Any]:
    """Mark the symbol at the bar's close; the quote sides are kept."""
    prices = state["prices"]
    old = prices.get(event.symbol)
    bid = old["bid"] if old is not None else None
    ask = old["ask"] if old is not None else None
    quote = FrozenDict(last=event.close, bid=bid, ask=ask, ts=event.ts_event)
    return {"prices": assoc(prices, event.symbol, quote)}
