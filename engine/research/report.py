"""A standalone HTML tearsheet of a run: Bokeh, with its JavaScript inline, so it opens offline.

Five sections, each a ``<section>`` with a fixed id: ``metrics`` (the table of
:mod:`engine.research.metrics`), ``equity`` (equity, and the drawdown of end-of-day equity below
its peak), ``monthly-returns`` (a heatmap of compounded monthly returns), ``returns-histogram``
(the daily returns) and ``trades`` (every fill). The same builder serves a backtest's
:class:`~engine.backtest.BacktestResult` (:func:`report_data_from_result`, the dashboard's
Backtests tab) and any run's event log (:func:`report_data_from_log`, ``seamless report``).

From a log, the equity is read from its ``pnl_updated`` events, taken at every bar time the log
holds (the equity after the bars of that time, one point per timestamp, as a backtest's curve
has it; the P&L tracker leaves out an update that changes nothing) or, without bars, at the
updates themselves; the trades are its ``trade_executed`` events. The metrics are the ones
the run recorded (a backtest records them before it stops:
:func:`engine.research.metrics.record_metrics`) when the log holds one run that did, and are
otherwise computed from that equity and those fills the same way.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from bokeh.embed.bundle import Bundle, bundle_for_objs_and_resources
from bokeh.embed.elements import html_page_for_render_items
from bokeh.embed.util import OutputDocumentFor, standalone_docs_json_and_render_items
from bokeh.layouts import column
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    LinearColorMapper,
    NumeralTickFormatter,
)
from bokeh.models.annotations.legends import ColorBar
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.transform import transform

from engine.research.metrics import (
    METRIC_KEYS,
    METRIC_LABELS,
    daily_returns,
    drawdown,
    format_metric,
    json_ready,
    metrics_of,
    monthly_returns,
    recorded_metrics,
    round_trips,
)
from persistence import EventLog
from streams.clock import ns_to_datetime
from streams.errors import PersistenceError, SeamlessError
from streams.events import PnlUpdated, TradeExecuted

if TYPE_CHECKING:
    from engine.backtest import BacktestResult

#: The ids of the report's sections, in page order.
SECTIONS = ("metrics", "equity", "monthly-returns", "returns-histogram", "trades")
#: Fills listed in the trade table at most (the newest are kept).
MAX_TRADE_ROWS = 10_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Red (losses) through white to blue (gains): ColorBrewer's RdBu, 9 classes.
_PALETTE = (
    *("#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7"),
    *("#d1e5f0", "#92c5de", "#4393c3", "#2166ac"),
)
_TRADE_COLUMNS = ("time (UTC)", "strategy", "symbol", "side", "qty", "price", "commission")


@dataclasses.dataclass(frozen=True)
class ReportData:
    """What a report shows: the equity after each bar (``(ts_ns, equity)``), the fills (dicts
    with ``ts``, ``strategy``, ``symbol``, ``side``, ``qty``, ``price``, ``commission``), the
    metrics (``None`` where undefined), a title and a line saying where it comes from."""

    title: str
    subtitle: str
    equity_curve: tuple[tuple[int, float], ...]
    fills: tuple[Mapping[str, Any], ...]
    metrics: Mapping[str, float | None]


# -- sources ---------------------------------------------------------------------------------------
def report_data_from_result(result: BacktestResult) -> ReportData:
    """A backtest's report data: its equity curve, fills and :attr:`metrics`."""
    params = ", ".join(f"{k}={v}" for k, v in sorted(result.params.items()))
    return ReportData(
        title=f"Backtest: {result.strategy}",
        subtitle=f"{params} · {result.bars} bars · {result.fills} fills · "
        f"{result.round_trips} round trips",
        equity_curve=tuple(result.equity_curve),
        fills=tuple(result.trades),
        metrics=json_ready(result.metrics),
    )


def report_data_from_log(db: str | Path, *, use_recorded: bool = True) -> ReportData:
    """A run's report data read from the DuckDB event log ``db`` (no engine may hold it open).

    The metrics are those the log's run recorded if it holds one run that did (and
    ``use_recorded``), else computed from the log. PersistenceError naming ``--db`` if there is
    no such file or it has no equity."""
    path = Path(db)
    if not path.is_file():
        raise PersistenceError(f"--db {str(db)!r}: no event log file there")
    with EventLog(path) as log:
        pnl = [e for e in log.read(types=[PnlUpdated.TYPE]) if isinstance(e, PnlUpdated)]
        bar_times = log.read_df(types=["bar"])["ts_event"].to_numpy(dtype=np.int64)
        fills = [e for e in log.read(types=[TradeExecuted.TYPE]) if isinstance(e, TradeExecuted)]
        recorded = recorded_metrics(log)
        runs = log.runs()
    if not pnl:
        raise PersistenceError(
            f"--db {str(db)!r}: the log has no equity (no pnl_updated events): nothing to report"
        )
    curve = _equity_at(pnl, bar_times)
    rows = tuple(f.payload() | {"ts": f.ts_event} for f in fills)
    if use_recorded and len(runs) == 1 and runs[0].run_id in recorded:
        metrics: Mapping[str, float | None] = recorded[runs[0].run_id]
        origin = "recorded by the run"
    else:
        metrics = json_ready(metrics_of(curve, rows, round_trips(fills)))
        origin = "computed from the log"
    first, last = curve[0][0], curve[-1][0]
    return ReportData(
        title=f"Report: {path.name}",
        subtitle=f"{len(runs)} run(s) · {_day(first)} to {_day(last)} · {len(curve)} points · "
        f"{len(rows)} fills · metrics {origin}",
        equity_curve=curve,
        fills=rows,
        metrics=metrics,
    )


def _equity_at(pnl: Sequence[PnlUpdated], bar_times: np.ndarray) -> tuple[tuple[int, float], ...]:
    """The equity of the last ``pnl_updated`` at or before each distinct bar time (or each
    update, if there are no bars): several symbols' bars of one time give one point."""
    times = np.array([e.ts_event for e in pnl], dtype=np.int64)
    equity = np.array([e.equity for e in pnl], dtype=float)
    order = np.argsort(times, kind="stable")
    times, equity = times[order], equity[order]
    if bar_times.size == 0:
        return tuple(zip(times.tolist(), equity.tolist(), strict=True))
    bar_times = np.unique(bar_times)
    at = np.searchsorted(times, bar_times, side="right") - 1
    known = at >= 0
    return tuple(zip(bar_times[known].tolist(), equity[at[known]].tolist(), strict=True))


def _day(ts: int) -> str:
    return f"{ns_to_datetime(ts):%Y-%m-%d}"


# -- the page --------------------------------------------------------------------------------------
def render_report(data: ReportData) -> str:
    """The report as one standalone HTML page (Bokeh's JavaScript inline, no URL to load)."""
    if not data.equity_curve:
        raise PersistenceError(f"{data.title}: no equity curve to report")
    returns = daily_returns(data.equity_curve)
    plots = [
        _equity_and_drawdown(data.equity_curve, returns),
        _monthly_heatmap(returns),
        _returns_histogram(returns),
    ]
    # bokeh.embed.file_html, less one thing: Bokeh adds the URLs of every registered model's
    # external scripts to any Resources' files (Panel's, once the dashboard imported it), and
    # these plots need none of them. Only the inline code of the bundle goes into the page.
    with OutputDocumentFor(plots) as doc:
        docs_json, render_items = standalone_docs_json_and_render_items(plots)
        bundle = bundle_for_objs_and_resources([doc], INLINE)
    return html_page_for_render_items(
        Bundle(js_raw=bundle.js_raw, css_raw=bundle.css_raw),
        docs_json,
        render_items,
        title=data.title,
        template=_TEMPLATE,
        template_variables={
            "heading": html.escape(data.title),
            "subtitle": html.escape(data.subtitle),
            "metrics_table": _metrics_table(data.metrics),
            "trades_table": _trades_table(data.fills),
            "trade_count": len(data.fills),
        },
    )


def report_html(result: BacktestResult) -> str:
    """The report of a backtest's result (what the dashboard's Backtests tab shows)."""
    return render_report(report_data_from_result(result))


def write_report(db: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the event log ``db`` to ``out`` (default: ``db`` with ``.html``);
    returns where. PersistenceError naming ``--db``/``--out`` if it cannot."""
    target = Path(out) if out is not None else Path(db).with_suffix(".html")
    return write_page(render_report(report_data_from_log(db)), target, PersistenceError)


def time_figure(title: str, height: int, **options: Any) -> Any:
    """A Bokeh figure over time as wide as the page, with the reports' pan and zoom tools
    (``options``: more of ``figure``'s, such as a shared ``x_range`` or a ``name``)."""
    return figure(
        title=title,
        x_axis_type="datetime",
        height=height,
        sizing_mode="stretch_width",
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        **options,
    )


def _equity_and_drawdown(curve: Sequence[tuple[int, float]], returns: pd.Series) -> Any:
    times = pd.to_datetime([ts for ts, _ in curve], unit="ns", utc=True).tz_localize(None)
    equity = time_figure("Equity", 300)
    equity.line(times.to_numpy(), [eq for _, eq in curve], line_width=2, color="#2166ac")
    equity.yaxis.axis_label = "equity"
    equity.yaxis.formatter = NumeralTickFormatter(format="0,0")
    under = drawdown(returns)
    falls = time_figure("Drawdown of end-of-day equity", 180, x_range=equity.x_range)
    days = pd.DatetimeIndex(under.index).tz_localize(None).to_numpy()
    falls.varea(x=days, y1=np.zeros(len(under)), y2=-100 * under.to_numpy(), color="#d6604d")
    falls.yaxis.axis_label = "drawdown %"
    return column(equity, falls, name="equity", sizing_mode="stretch_width")


def _monthly_heatmap(returns: pd.Series) -> Any:
    monthly = monthly_returns(returns)
    years = sorted({str(y) for y, _ in monthly.index}, reverse=True)
    source = ColumnDataSource(
        {
            "month": [_MONTHS[m - 1] for _, m in monthly.index],
            "year": [str(y) for y, _ in monthly.index],
            "ret": (100 * monthly.to_numpy()).tolist(),
            "label": [f"{round(100 * r, 1) + 0.0:.1f}" for r in monthly.to_numpy()],
        }
    )
    extent = max(float(np.nanmax(np.abs(monthly.to_numpy()))) * 100, 1e-9) if len(monthly) else 1
    mapper = LinearColorMapper(palette=list(_PALETTE), low=-extent, high=extent)
    heat = figure(
        title="Monthly returns (%)",
        x_range=FactorRange(factors=list(_MONTHS)),
        y_range=FactorRange(factors=years or ["-"]),
        height=max(140, 28 * len(years) + 80),
        sizing_mode="stretch_width",
        tools="hover,save",
        tooltips=[("month", "@month @year"), ("return", "@label %")],
        toolbar_location="right",
        name="monthly-returns",
    )
    heat.rect(
        "month",
        "year",
        1,
        1,
        source=source,
        line_color="white",
        fill_color=transform("ret", mapper),
    )
    heat.text(
        "month", "year", text="label", source=source, text_align="center", text_baseline="middle"
    )
    heat.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=5)), "right")
    heat.grid.grid_line_color = None
    heat.axis.axis_line_color = None
    return heat


def _returns_histogram(returns: pd.Series) -> Any:
    values = 100 * returns.to_numpy()
    bins = int(min(60, max(10, math.sqrt(max(len(values), 1)) * 2)))
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.array([]), [0.0])
    source = ColumnDataSource(
        {"top": counts.tolist(), "left": list(edges[:-1]), "right": list(edges[1:])}
    )
    hist = figure(
        title="Daily returns (%)",
        height=260,
        sizing_mode="stretch_width",
        tools="save",
        name="returns-histogram",
    )
    hist.quad(top="top", bottom=0, left="left", right="right", source=source, color="#4393c3")
    hist.add_tools(HoverTool(tooltips=[("days", "@top"), ("from %", "@left"), ("to %", "@right")]))
    hist.xaxis.axis_label = "return %"
    hist.yaxis.axis_label = "days"
    return hist


def _metrics_table(metrics: Mapping[str, float | None]) -> str:
    rows = "".join(
        f'<tr data-metric="{key}"><th>{html.escape(METRIC_LABELS[key])}</th>'
        f"<td>{format_metric(key, metrics.get(key))}</td></tr>"
        for key in METRIC_KEYS
    )
    return f'<table id="metrics-table" class="metrics">{rows}</table>'


def _trades_table(fills: Sequence[Mapping[str, Any]]) -> str:
    shown = fills[-MAX_TRADE_ROWS:]
    head = "".join(f"<th>{c}</th>" for c in _TRADE_COLUMNS)
    body = "".join(
        "<tr>"
        f"<td>{ns_to_datetime(int(f['ts'])):%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{html.escape(str(f.get('strategy', '')))}</td>"
        f"<td>{html.escape(str(f.get('symbol', '')))}</td>"
        f"<td>{html.escape(str(f.get('side', '')))}</td>"
        f"<td>{float(f['qty']):,.4g}</td><td>{float(f['price']):,.4f}</td>"
        f"<td>{float(f.get('commission', 0.0)):,.2f}</td>"
        "</tr>"
        for f in shown
    )
    note = (
        f"<p>The newest {len(shown):,} of {len(fills):,} fills.</p>"
        if len(shown) < len(fills)
        else ""
    )
    return (
        f'{note}<table id="trade-list" class="trades"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


#: The CSS of every HTML report (this tearsheet, the walk-forward report).
REPORT_STYLE = """
  body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem; }
  html, body { height: auto; display: block; }
  h1 { margin-bottom: 0.2rem; } .subtitle { color: #555; margin-top: 0; }
  section { margin: 1.5rem 0; }
  table { border-collapse: collapse; font-size: 0.9rem; }
  th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
  table.metrics th { text-align: left; font-weight: normal; color: #333; }
  table.trades td:nth-child(-n+4), table.trades th:nth-child(-n+4) { text-align: left; }
  .scroll { max-height: 480px; overflow-y: auto; }
"""


def report_template(contents: str) -> str:
    """A standalone report page (a Bokeh ``file_html`` template): the shared style, the
    ``heading`` and ``subtitle`` header, then ``contents`` (Jinja, with ``embed``)."""
    return (
        "{% from macros import embed %}\n{% block postamble %}\n<style>"
        + REPORT_STYLE
        + "</style>\n{% endblock %}\n{% block contents %}\n"
        '<header><h1>{{ heading }}</h1><p class="subtitle">{{ subtitle }}</p></header>\n'
        + contents
        + "{% endblock %}\n"
    )


def write_page(page: str, target: Path, error: type[SeamlessError]) -> Path:
    """Write a report page to ``target`` (its folder made if missing) and return it; ``error``
    (the tearsheet's PersistenceError, the walk-forward report's ConfigError) naming ``--out``
    when it cannot be written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise error(f"--out {str(target)!r}: cannot write the report ({exc})") from exc
    return target


_TEMPLATE = report_template(
    """<section id="metrics"><h2>Metrics</h2>
<p class="subtitle">Daily returns of end-of-day equity, 252 periods a year, risk-free 0
(empyrical-reloaded); n/a where a figure is undefined.</p>
{{ metrics_table }}</section>
<section id="equity"><h2>Equity and drawdown</h2>{{ embed(roots.equity) }}</section>
<section id="monthly-returns"><h2>Monthly returns</h2>{{ embed(roots["monthly-returns"]) }}
</section>
<section id="returns-histogram"><h2>Histogram of daily returns</h2>
{{ embed(roots["returns-histogram"]) }}</section>
<section id="trades"><h2>Trades ({{ trade_count }} fills)</h2>
<div class="scroll">{{ trades_table }}</div></section>
"""
)
