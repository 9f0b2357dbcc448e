"""The dashboard's two live charts, built per session (a Bokeh model belongs to one document).

* :func:`price_chart` -- one symbol's price line and its fills as triangles (green buys, red
  sells), both at the time of the event they show (the data's time in a replay);
* :func:`equity_chart` -- equity (left axis) and drawdown (right axis, a shaded area).

Their sources are filled by :class:`~panel_app.views.dashboard.DashboardView`. Axis ranges are
computed in the browser and never sent back (``syncable = False``): each would be a message and
a document patch per session per repaint.
"""

from __future__ import annotations

from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    DatetimeTickFormatter,
    LinearAxis,
    NumeralTickFormatter,
)
from bokeh.plotting import figure

#: Chart heights (px): with the KPIs, positions and trades they fill one 1440x900 screen.
PRICE_CHART_HEIGHT = 290
EQUITY_CHART_HEIGHT = 190
TOOLS = "pan,wheel_zoom,box_zoom,reset"


def date_ticks() -> DatetimeTickFormatter:
    """Ticks as clocks and calendars show them (a replay's are the data's dates)."""
    return DatetimeTickFormatter(
        seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hourmin="%H:%M", hours="%H:%M"
    )


def price_chart(prices: ColumnDataSource, fills: ColumnDataSource) -> figure:
    """Price line (``t``, ``price``) and fill markers (``t``, ``price``, ``color``)."""
    fig = figure(
        height=PRICE_CHART_HEIGHT,
        x_axis_type="datetime",
        title="Price and fills",
        sizing_mode="stretch_width",
        tools=TOOLS,
        css_classes=["sl-price-chart"],
    )
    fig.xaxis.formatter = date_ticks()
    fig.line("t", "price", source=prices, line_width=1.5)
    fig.scatter("t", "price", source=fills, color="color", size=9, marker="triangle")
    _local_ranges(fig)
    return fig


def equity_chart(source: ColumnDataSource) -> figure:
    """Equity (``t``, ``equity``) on the left axis and drawdown (``drawdown`` >= 0) as a
    shaded area on its own right axis."""
    fig = figure(
        height=EQUITY_CHART_HEIGHT,
        x_axis_type="datetime",
        title="Equity and drawdown",
        sizing_mode="stretch_width",
        tools=TOOLS,
    )
    equity = fig.line("t", "equity", source=source, line_width=2, legend_label="equity")
    drawdown = fig.varea(
        "t",
        y1=0,
        y2="drawdown",
        source=source,
        y_range_name="drawdown",
        fill_color="#d62728",
        fill_alpha=0.25,
        legend_label="drawdown",
    )
    assert isinstance(fig.y_range, DataRange1d)
    fig.y_range.renderers = [equity]  # each series on its own scale
    fig.extra_y_ranges = {"drawdown": DataRange1d(renderers=[drawdown])}
    fig.add_layout(LinearAxis(y_range_name="drawdown", axis_label="drawdown"), "right")
    fig.legend.location = "top_left"
    fig.legend.background_fill_alpha = 0.5
    fig.xaxis.formatter = date_ticks()
    fig.yaxis[0].formatter = NumeralTickFormatter(format="0,0")
    _local_ranges(fig)
    fig.extra_y_ranges["drawdown"].syncable = False
    return fig


def _local_ranges(fig: figure) -> None:
    fig.x_range.syncable = False
    fig.y_range.syncable = False
