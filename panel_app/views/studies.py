"""Parameter searches in the Backtests tab: a heatmap of a study's trials over two parameters.

``seamless optimize`` (and each segment of ``seamless walkforward``) writes its study as JSON
into the results folder, ``studies/`` beside the engine's event log (``storage.db_path``;
``data/runtime/studies`` by default: :func:`engine.research.studies.studies_dir`). This view
lists that folder (newest first, re-read by "Refresh"), and shows the chosen study's complete
trials over the two chosen parameters: each cell is the best objective of the trials in it
(brighter is better, whichever the direction), the best trial outlined.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import panel as pn
from bokeh.models import BasicTicker, ColumnDataSource, FactorRange, LinearColorMapper
from bokeh.models.annotations.legends import ColorBar
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.transform import transform

from panel_app.facade import heatmap, list_studies, read_json, searched_params


class StudiesView(pn.viewable.Viewer):
    """Pick a study and two of its parameters; see the objective over them."""

    def __init__(self, folder: str | Path, **params: Any) -> None:
        super().__init__(**params)
        self.folder = Path(folder)
        self.payload: dict[str, Any] = {}
        self.study = pn.widgets.Select(label="Study", options={}, width=340)
        self.x = pn.widgets.Select(label="X parameter", options=[], width=150)
        self.y = pn.widgets.Select(label="Y parameter", options=[], width=150)
        self.refresh = pn.widgets.Button(label="Refresh", width=90, align="end")
        self.info = pn.pane.HTML("", css_classes=["sl-study-info"], sizing_mode="stretch_width")
        self.plot = pn.pane.Bokeh(None, css_classes=["sl-study-heatmap"])
        self.study.param.watch(lambda _e: self.load(), "value")
        self.x.param.watch(lambda _e: self.render(), "value")
        self.y.param.watch(lambda _e: self.render(), "value")
        self.refresh.on_click(lambda _e: self.scan())
        self._layout = pn.Card(
            pn.Row(self.study, self.x, self.y, self.refresh),
            self.info,
            self.plot,
            title="Parameter search (seamless optimize)",
            sizing_mode="stretch_width",
            css_classes=["sl-studies"],
        )
        self.scan()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def scan(self) -> None:
        """List the study files again (newest first) and show the newest if none is chosen."""
        files = list_studies(self.folder)
        options = {path.stem: str(path) for path in files}
        current = self.study.value
        self.study.options = options
        if current in options.values():
            self.load()
        elif options:
            self.study.value = next(iter(options.values()))
        else:
            self.payload = {}
            self.info.object = (
                f"<p>No study yet in <code>{html.escape(str(self.folder))}</code>: run "
                "<code>seamless optimize</code> (its results go there by default).</p>"
            )
            self.plot.object = None

    def load(self) -> None:
        """Read the chosen study and offer its parameters as axes."""
        path = self.study.value
        if not path:
            return
        try:
            self.payload = read_json(path)
        except (OSError, ValueError) as exc:
            self.payload = {}
            self.info.object = (
                f"<p>Cannot read {html.escape(str(path))}: {html.escape(str(exc))}</p>"
            )
            self.plot.object = None
            return
        names = searched_params(self.payload)
        with pn.io.hold():
            self.x.options = names
            self.y.options = names
            if names:
                self.x.value = names[0]
                self.y.value = names[1] if len(names) > 1 else names[0]
        self.render()

    def render(self) -> None:
        """Draw the heatmap of the chosen axes."""
        payload = self.payload
        if not payload or not self.x.value or not self.y.value:
            return
        self.info.object = _summary_html(payload)
        frame = heatmap(payload, self.x.value, self.y.value)
        if frame.empty:
            self.plot.object = None
            return
        self.plot.object = heatmap_figure(frame, payload, self.x.value, self.y.value)


def heatmap_figure(frame: Any, payload: dict[str, Any], x: str, y: str) -> Any:
    """A Bokeh heatmap of :func:`engine.research.studies.heatmap` cells."""
    objective = str(payload.get("objective", "value"))
    maximize = payload.get("direction", "maximize") == "maximize"
    low, high = float(frame["value"].min()), float(frame["value"].max())
    palette = list(Viridis256) if maximize else list(reversed(Viridis256))
    mapper = LinearColorMapper(palette=palette, low=low, high=high if high > low else low + 1e-9)
    keep = ("x", "y", "value", "trials", "best_trial")
    source = ColumnDataSource({column: frame[column].tolist() for column in keep})
    x_factors = frame.attrs.get("x_factors") or sorted(set(frame["x"]))
    y_factors = frame.attrs.get("y_factors") or sorted(set(frame["y"]))
    fig = figure(
        title=f"{objective}: the best trial of each cell ({'higher' if maximize else 'lower'} "
        "is better)",
        x_range=FactorRange(factors=list(x_factors)),
        y_range=FactorRange(factors=list(y_factors)),
        height=max(260, min(560, 26 * len(y_factors) + 110)),
        width=max(360, min(900, 34 * len(x_factors) + 160)),
        tools="hover,save",
        tooltips=[
            (x, "@x"),
            (y, "@y"),
            (objective, "@value{0,0.[0000]}"),
            ("trials", "@trials"),
            ("best trial", "#@best_trial"),
        ],
        toolbar_location="right",
    )
    fig.rect("x", "y", 1, 1, source=source, line_color=None, fill_color=transform("value", mapper))
    best = payload.get("best_trial")
    mark = frame[frame["best_trial"] == best]
    if not mark.empty:
        fig.rect(
            list(mark["x"]),
            list(mark["y"]),
            1,
            1,
            fill_alpha=0,
            line_color="#d6604d",
            line_width=3,
        )
    fig.add_layout(ColorBar(color_mapper=mapper, ticker=BasicTicker(desired_num_ticks=6)), "right")
    fig.xaxis.axis_label = x
    fig.yaxis.axis_label = y
    wide = len(x_factors) * max((len(str(f)) for f in x_factors), default=1) > 60
    fig.xaxis.major_label_orientation = 0.8 if wide else 0
    fig.grid.grid_line_color = None
    return fig


def _summary_html(payload: dict[str, Any]) -> str:
    best = payload.get("best_params") or {}
    params = ", ".join(f"{k}={v}" for k, v in best.items()) or "none yet"
    value = payload.get("best_value")
    value_text = f"{value:,.6g}" if isinstance(value, int | float) else "n/a"
    bits = [
        f"<b>{html.escape(str(payload.get('study', '')))}</b>",
        f"{html.escape(str(payload.get('strategy', '')))} on "
        f"{html.escape(str(payload.get('symbol', '')))} ({html.escape(str(payload.get('data')))})",
        f"{payload.get('trials', 0)} trials ({payload.get('complete', 0)} complete), "
        f"sampler {html.escape(str(payload.get('sampler', '')))}",
        f"best {html.escape(str(payload.get('objective', '')))} {value_text} at trial "
        f"#{payload.get('best_trial')}: {html.escape(params)}",
    ]
    return '<p data-testid="study-info">' + " · ".join(bits) + "</p>"
