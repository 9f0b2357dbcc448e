"""The recent-trades tape of one session: new fills are added to the page row by row.

Re-sending the whole recent-trades table on every fill cost every open page a re-parse and
re-layout of all its rows, about half of what a page spent per trade (docs/benchmarks.md).
Here a fill travels as one small ``ColumnDataSource.stream`` (its cells already formatted,
once per engine), and a short script in the page inserts the new rows at the top of the
table and drops the oldest; nothing else of the table is touched.

The table HTML itself stays the source of truth for everything else: the pane's ``object``
is kept current on the server without sending it (so a view built later, e.g. when the tab
is shown again, starts from the current table), and it is sent in full when the columns
change. The script finds the newest row it shows in the streamed columns and inserts only
the rows after it, so rows streamed before a view existed are not lost or doubled.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import panel as pn
import param
from bokeh.models import ColumnDataSource, CustomJS, Spacer

from panel_app.html_tables import TABLE_CSS
from panel_app.push_support import once_per_event
from panel_app.recent_trades import TRADE_FIELDS, RecentTrades, row_cells, trade_cells
from panel_app.views.live_panes import LiveHTML
from streams.events import TradeExecuted

_IDS = itertools.count(1)

#: Runs in the page after each stream: ``cb_obj`` is the tape's source; ``tape`` the id in
#: the table's ``data-tape``; ``capacity`` the rows kept. Cells are set as text (no HTML).
TAPE_JS = """
const cache = window.__slTapes || (window.__slTapes = {});
let table = cache[tape];
if (!table || !table.isConnected) {
  const find = (node) => {
    const t = node.querySelector(`table[data-tape="${tape}"]`);
    if (t) return t;
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) { const r = find(el.shadowRoot); if (r) return r; }
    }
    return null;
  };
  table = cache[tape] = find(document);
}
if (!table) return;
const body = table.tBodies[0];
const data = cb_obj.data;
const ids = data.fill_id;
const first = body.querySelector('tr[data-key]');
const newest = first ? first.getAttribute('data-key') : null;
const fields = Array.from(table.tHead.rows[0].cells).map((th) => th.dataset.field);
const frag = document.createDocumentFragment();
for (let i = ids.length - 1; i >= 0 && ids[i] !== newest; i--) {
  const tr = document.createElement('tr');
  tr.setAttribute('data-key', ids[i]);
  for (const f of fields) {
    const td = document.createElement('td');
    const value = data[f][i];
    td.textContent = value;
    if (f === 'qty' || f === 'price') td.className = 'sl-num';
    else if (f === 'side' && (value === 'buy' || value === 'sell')) td.className = 'sl-' + value;
    tr.appendChild(td);
  }
  frag.appendChild(tr);
}
if (!frag.childNodes.length) return;
for (const row of Array.from(body.rows)) { if (!row.hasAttribute('data-key')) row.remove(); }
body.insertBefore(frag, body.firstChild);
while (body.rows.length > capacity) body.deleteRow(body.rows.length - 1);
table.setAttribute('data-rows', String(body.rows.length));
"""


class TradeTape:
    """The recent-trades table of one session (session loop only, except construction).

    ``recent`` is the engine's shared :class:`RecentTrades`; ``columns`` the fields shown
    (unknown ones are dropped; none left means all). Lay out :attr:`view`, and the column
    chooser :attr:`chooser` behind its :attr:`settings` toggle; call :meth:`add` once per drain
    with that drain's fills. ``on_columns(columns)`` is told of the user's choice.
    """

    def __init__(
        self,
        recent: RecentTrades,
        columns: Sequence[str],
        *,
        height_px: int | None = None,
        on_columns: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.recent = recent
        self.columns = [c for c in columns if c in TRADE_FIELDS] or list(TRADE_FIELDS)
        self._on_columns = on_columns
        self.tape_id = f"tape{next(_IDS)}"
        rows = list(reversed(recent.rows()))  # oldest first: the stream appends the newest
        self.source = ColumnDataSource({f: [row_cells(r)[f] for r in rows] for f in TRADE_FIELDS})
        self.source.js_on_change(
            "streaming",
            CustomJS(args={"tape": self.tape_id, "capacity": recent.capacity}, code=TAPE_JS),
        )
        self.pane = LiveHTML(
            self._html(),
            sizing_mode="stretch_width",
            height=(height_px or recent.height_px) + 10,
            css_classes=["sl-trades"],
            stylesheets=[TABLE_CSS],
        )
        # The source must be in the session's document for its streams to reach the page;
        # a hidden, empty Bokeh model of the layout refers to it (a template page has no
        # place for an extra document root).
        anchor = pn.pane.Bokeh(
            Spacer(width=0, height=0, tags=[self.source]), visible=False, margin=0
        )
        #: What the dashboard lays out.
        self.view = pn.Column(self.pane, anchor, sizing_mode="stretch_width", margin=0)
        # The column chooser waits behind a settings toggle (a plain checkbox group: no
        # Choices.js, whose deprecation warnings filled the console).
        self.chooser = pn.widgets.CheckBoxGroup(
            name="Trade columns",
            options=list(TRADE_FIELDS),
            value=list(self.columns),
            inline=True,
            visible=False,
            css_classes=["sl-trade-columns"],
        )
        self.settings = pn.widgets.Toggle(
            name="⚙",
            value=False,
            width=36,
            height=30,
            margin=(0, 0, 0, 8),
            css_classes=["sl-trade-settings"],
        )
        self.settings.param.watch(
            lambda event: setattr(self.chooser, "visible", bool(event.new)), "value"
        )
        self.chooser.param.watch(self._chosen, "value")

    def _chosen(self, event: param.parameterized.Event) -> None:
        self.show_columns(event.new)
        if self._on_columns is not None:
            self._on_columns(list(event.new))

    def add(self, fills: Sequence[TradeExecuted]) -> None:
        """Stream ``fills`` (oldest first) to the page; keep the pane's table current here."""
        if not fills:
            return
        cells = [once_per_event(e, "tape-cells", functools.partial(trade_cells, e)) for e in fills]
        self.source.stream(
            {f: [c[f] for c in cells] for f in TRADE_FIELDS}, rollover=self.recent.capacity
        )
        with param.discard_events(self.pane):
            self.pane.object = self._html()

    def show_columns(self, columns: Sequence[str]) -> None:
        """Show ``columns`` (sends the whole table once)."""
        self.columns = list(columns)
        self.pane.object = self._html()
        self.pane.param.trigger("object")  # sent even if a silent update already set it

    def _html(self) -> str:
        return self.recent.html(self.columns).replace(
            '<table class="sl-table"', f'<table class="sl-table" data-tape="{self.tape_id}"', 1
        )
