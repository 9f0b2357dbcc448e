"""Reference fills of the SMA crossover, from backtrader and from a plain loop, to check the engine.

Both functions run the same long-only strategy over one symbol's daily bars and return the fills
and the realized P&L. The rules, as run by backtrader 1.9.78 and NautilusTrader in the reference
(AAPL sample bars, fast 10, slow 30, qty 100: 116 fills, realized P&L 43,396.96):

- ``fast_sma`` and ``slow_sma`` are arithmetic means of the last ``fast`` / ``slow`` closes,
  ``math.fsum(window) / n`` (exactly what ``bt.ind.SMA`` computes; a running sum drifts by
  ~1e-13 and flips the sign of a near-tie, e.g. AAPL on 2003-02-07).
- ``diff = fast_sma - slow_sma`` exists from bar ``slow - 1`` (0-based); the first decision is on
  bar ``slow``, the first bar with a previous ``diff``.
- Cross up: ``prev_diff <= 0 < diff``; cross down: ``prev_diff >= 0 > diff``. backtrader's
  ``bt.ind.CrossOver`` (previous *non-zero* difference) agrees with this everywhere except after a
  ``diff`` of exactly 0.0, which the AAPL and MSFT sample bars never produce.
- Decide on the bar's close: flat and cross up -> buy ``qty``; long and cross down -> sell the
  whole position. Never short.
- Market orders fill at the next bar's open, with no slippage and no commission. An order from the
  last bar never fills.
- The decision on bar N sees the position *after* the fill at bar N's open: a sell filled at the
  open of bar N leaves the strategy flat for bar N's close, so a cross up on that close buys at
  bar N+1's open (AAPL: sell at the 2001-04-18 open, buy at the 2001-04-19 open). So an order is
  never still pending when a decision is made, and skipping decisions while one is pending changes
  nothing.
- Realized P&L is the sum over closed round trips of ``qty * (sell_price - buy_price)``, gross;
  the last position, if still open, does not count.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd

Fill = tuple[date, str, float, float]
"""(bar date, side ``"buy"``/``"sell"``, fill price, quantity)."""

_BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


def _check_params(fast: int, slow: int, qty: float) -> None:
    if not 1 <= fast < slow:
        raise ValueError(f"need 1 <= fast < slow, got fast={fast} slow={slow}")
    if not qty > 0:
        raise ValueError(f"qty must be greater than 0, got {qty}")


def _naive_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The bar columns indexed by a tz-naive ``timestamp`` (UTC wall time), for backtrader."""
    index = pd.DatetimeIndex(frame["timestamp"])
    if index.tz is not None:
        index = index.tz_convert(None)
    bars = frame.loc[:, _BAR_COLUMNS].copy()
    bars.index = index
    return bars


def backtrader_sma_fills(
    frame: pd.DataFrame, *, fast: int, slow: int, qty: float, cash: float = 100_000.0
) -> tuple[list[Fill], float]:
    """Fills and realized P&L of the SMA crossover run by backtrader's own broker.

    ``frame`` has the columns of ``load_sample_bars``: ``timestamp``, ``open``, ``high``,
    ``low``, ``close``, ``volume``. Signals come from ``bt.ind.CrossOver`` on two ``bt.ind.SMA``
    of the close; orders are plain market orders (next bar's open, no cheat-on-open, no
    commission). Fills are read in ``notify_order`` and the P&L (``trade.pnl`` of closed trades)
    in ``notify_trade``. backtrader keeps a trade's entry price as a size-weighted average, so its
    P&L can differ from :func:`plain_sma_fills` in the last bits (MSFT: 406.5899999999989 against
    406.58999999999867): compare P&L to the cent. RuntimeError if backtrader rejects or cancels
    any order (raise ``cash`` then).
    """
    import backtrader as bt

    _check_params(fast, slow, qty)
    fills: list[Fill] = []
    failed: list[str] = []
    realized = [0.0]

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            fast_sma = bt.ind.SMA(self.data.close, period=fast)
            slow_sma = bt.ind.SMA(self.data.close, period=slow)
            self.cross = bt.ind.CrossOver(fast_sma, slow_sma)
            self.order: Any = None

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                side = "buy" if order.isbuy() else "sell"
                # The raw price of each execution bit (the bar's open): executed.price is a
                # size-weighted average, 100 * 25.679 / 100 == 25.678999999999995 (MSFT).
                for bit in order.executed.exbits:
                    fills.append((bt.num2date(bit.dt).date(), side, bit.price, abs(bit.size)))
            elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
                failed.append(f"{bt.num2date(order.created.dt).date()} {order.getstatusname()}")
            if not order.alive():
                self.order = None

        def notify_trade(self, trade: Any) -> None:
            if trade.isclosed:
                realized[0] += trade.pnl

        def next(self) -> None:
            # Never taken: the order from the previous close filled at this bar's open, and was
            # notified (position updated) before this call. Kept to mirror "no decision while an
            # order is working".
            if self.order is not None:
                return
            if self.cross[0] > 0 and not self.position:
                self.order = self.buy(size=qty)
            elif self.cross[0] < 0 and self.position.size > 0:
                self.order = self.close()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=_naive_index(frame), openinterest=None))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.run()
    if failed:
        raise RuntimeError(f"backtrader did not fill every order (raise cash?): {failed}")
    return fills, realized[0]


def plain_sma_fills(
    frame: pd.DataFrame, *, fast: int, slow: int, qty: float, cash: float = 100_000.0
) -> tuple[list[Fill], float]:
    """The same strategy as :func:`backtrader_sma_fills` in a plain loop, to cross-check it.

    Per bar: first fill the order decided on the previous close at this bar's open, then compute
    ``diff`` from ``math.fsum`` means and decide on this close with the updated position.
    ``cash`` is accepted for the same signature and not used: the loop never rejects an order.
    """
    _check_params(fast, slow, qty)
    del cash
    dates = [stamp.date() for stamp in pd.DatetimeIndex(frame["timestamp"])]
    opens = frame["open"].astype(float).tolist()
    closes = frame["close"].astype(float).tolist()
    fills: list[Fill] = []
    realized = 0.0
    position = 0.0
    entry = 0.0
    pending: tuple[str, float] | None = None
    prev_diff: float | None = None
    for i, close_date in enumerate(dates):
        if pending is not None:
            side, size = pending
            price = opens[i]
            fills.append((close_date, side, price, size))
            if side == "buy":
                position += size
                entry = price
            else:
                realized += size * (price - entry)
                position -= size
            pending = None
        if i + 1 < slow:
            continue
        diff = (
            math.fsum(closes[i + 1 - fast : i + 1]) / fast
            - math.fsum(closes[i + 1 - slow : i + 1]) / slow
        )
        if prev_diff is not None:
            if prev_diff <= 0 < diff and position == 0:
                pending = ("buy", float(qty))
            elif prev_diff >= 0 > diff and position > 0:
                pending = ("sell", position)
        prev_diff = diff
    return fills, realized
