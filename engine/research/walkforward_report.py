"""The walk-forward report: ``seamless walkforward``'s standalone HTML page (Bokeh inline).

It shows each segment's in-sample figures (the chosen parameters over the training window they
were chosen on) against its out-of-sample ones (the test window after it), and the stitched
out-of-sample equity with the test windows shaded. It is built from the walk-forward's JSON
payload alone (:mod:`engine.research.walkforward` runs the analysis), with the page template
and style of the backtest tearsheet (:func:`engine.research.report.report_template`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.research.report import report_template, time_figure, write_page
from streams.errors import ConfigError


def render_walkforward_report(payload: Mapping[str, Any]) -> str:
    """A standalone HTML page (Bokeh inline): the segments' in-sample against out-of-sample
    figures, and the stitched out-of-sample equity with the test windows shaded."""
    import pandas as pd
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter
    from bokeh.models.annotations import BoxAnnotation
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    stitched = payload.get("stitched", {})
    segments = payload.get("segments", [])
    points = stitched.get("equity", [])
    times = pd.to_datetime([p[0] for p in points], utc=True).tz_localize(None)
    equity = time_figure(
        "Stitched out-of-sample equity (returns chained from the starting cash)",
        320,
        name="stitched",
    )
    source = ColumnDataSource({"t": times.to_numpy(), "equity": [p[1] for p in points]})
    equity.line("t", "equity", source=source, line_width=2, color="#2166ac")
    equity.add_tools(
        HoverTool(
            tooltips=[("time", "@t{%F}"), ("equity", "@equity{0,0.00}")],
            formatters={"@t": "datetime"},
        )
    )
    equity.yaxis.formatter = NumeralTickFormatter(format="0,0")
    for i, seg in enumerate(segments):
        start = pd.Timestamp(seg["test_start"]).tz_localize(None)
        end = pd.Timestamp(seg["test_end"]).tz_localize(None)
        equity.add_layout(
            BoxAnnotation(
                left=start, right=end, fill_alpha=0.08, fill_color="#888" if i % 2 else "#4393c3"
            )
        )
    labels = [f"#{s['index']}" for s in segments]
    compare = figure(
        title=f"{payload.get('objective', 'objective')}: in-sample against out-of-sample",
        x_range=FactorRange(factors=labels or ["-"]),
        height=260,
        sizing_mode="stretch_width",
        tools="save",
        name="compare",
    )
    bars = ColumnDataSource(
        {
            "segment": labels,
            "is": [_num(s["in_sample"].get("objective")) for s in segments],
            "oos": [_num(s["out_of_sample"].get("objective")) for s in segments],
        }
    )
    compare.vbar(
        x="segment", top="is", source=bars, width=0.35, color="#92c5de", legend_label="in-sample"
    )
    compare.vbar(
        x="segment",
        top="oos",
        source=bars,
        width=0.2,
        color="#b2182b",
        legend_label="out-of-sample",
    )
    compare.legend.location = "top_left"
    title = (
        f"Walk-forward: {payload.get('strategy', '')} on {payload.get('symbol', '')}, "
        f"{payload.get('objective', '')}"
    )
    kind = "anchored" if payload.get("anchored") else "rolling"
    subtitle = (
        f"{len(segments)} segments of {payload.get('train_bars')} training and "
        f"{payload.get('test_bars')} test bars ({kind}); {payload.get('trials')} trials a "
        f"segment, sampler {payload.get('sampler')}; "
        f"data {payload.get('data')}"
    )
    return file_html(
        [equity, compare],
        resources=INLINE,
        title=title,
        template=_TEMPLATE,
        template_variables={
            "heading": html.escape(title),
            "subtitle": html.escape(subtitle),
            "segments_table": _segments_table(segments),
            "stitched_table": _stitched_table(stitched),
        },
    )


def write_walkforward_report(payload: Mapping[str, Any], out: str | Path) -> Path:
    """Write :func:`render_walkforward_report` to ``out``; ConfigError naming ``--out``."""
    return write_page(render_walkforward_report(payload), Path(out), ConfigError)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return html.escape(str(value))
    if pct:
        return f"{value * 100:,.2f} %"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _segments_table(segments: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>#</th><th>train</th><th>test</th><th>warm-up</th><th>params</th>"
        "<th>objective IS</th><th>objective OOS</th><th>return IS</th><th>return OOS</th>"
        "<th>Sharpe IS</th><th>Sharpe OOS</th><th>fills OOS</th></tr>"
    )
    rows = []
    for s in segments:
        ins, oos = s["in_sample"], s["out_of_sample"]
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
        rows.append(
            f'<tr data-segment="{s["index"]}"><td>{s["index"]}</td>'
            f"<td>{s['train_start'][:10]} to {s['train_end'][:10]}</td>"
            f"<td>{s['test_start'][:10]} to {s['test_end'][:10]}</td>"
            f"<td>{s['warmup_bars']}</td><td>{html.escape(params)}</td>"
            f"<td>{_fmt(ins.get('objective'))}</td><td>{_fmt(oos.get('objective'))}</td>"
            f"<td>{_fmt(ins.get('return'), True)}</td><td>{_fmt(oos.get('return'), True)}</td>"
            f"<td>{_fmt(ins.get('sharpe'))}</td><td>{_fmt(oos.get('sharpe'))}</td>"
            f"<td>{oos.get('fills')}</td></tr>"
        )
    return f'<table id="segments-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _stitched_table(stitched: Mapping[str, Any]) -> str:
    metrics = stitched.get("metrics", {})
    rows = [
        ("start equity", _fmt(stitched.get("start_equity"))),
        ("end equity", _fmt(stitched.get("end_equity"))),
        ("return", _fmt(stitched.get("return"), True)),
        ("max drawdown (currency)", _fmt(stitched.get("max_drawdown"))),
        ("objective", _fmt(stitched.get("objective"))),
        ("fills / round trips", f"{stitched.get('fills')} / {stitched.get('round_trips')}"),
    ]
    pct = {"total_return", "cagr", "max_drawdown", "volatility", "win_rate", "exposure"}
    rows += [(f"metrics.{k}", _fmt(v, k in pct)) for k, v in metrics.items()]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table id="stitched-table" class="metrics">{body}</table>'


_TEMPLATE = report_template(
    """<section id="segments"><h2>Segments: in-sample (IS) against out-of-sample (OOS)</h2>
<p class="subtitle">IS: the chosen parameters over the training window they were chosen on.
OOS: the same parameters over the test window after it, warmed up on the bars before it and
counted from the window's first bar.</p>
{{ segments_table }}</section>
<section id="compare">{{ embed(roots.compare) }}</section>
<section id="stitched"><h2>Stitched out-of-sample run</h2>{{ embed(roots.stitched) }}
{{ stitched_table }}</section>
"""
)
