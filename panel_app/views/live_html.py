"""HTML panes for the live tier: text changes go straight to the Bokeh model.

Setting ``object`` on a Panel ``HTML`` pane re-derives every property of its model
(stylesheets resolved through the design, file paths checked on disk, sizing) before
sending the one that changed: about half a millisecond of the server's event loop per
change, for each session. The live tier changes the same few panes on every trade (last-trade
badge, recent trades, positions, status line, toasts), so :class:`LiveHTML` sends only the
new text. Everything else about the pane (styles, stylesheets, sizing, visibility) behaves as
in ``pn.pane.HTML``, whose other parameters still go through Panel's normal path.

Why HTML tables and not Bokeh ``DataTable``s for the live tables: a ``DataTable`` re-lays out
its whole grid on every stream or patch (SlickGrid measures each column header through
``getComputedStyle``), which cost each page ~0.2 s of main-thread time per second while a
strategy traded; ten pages on two cores then starved the server. A small HTML table is
replaced in well under a millisecond (see docs/benchmarks.md, "Dashboard push latency").
"""

from __future__ import annotations

from typing import Any

import panel as pn


class LiveHTML(pn.pane.HTML):
    """``pn.pane.HTML`` whose ``object`` changes update only the model's ``text``."""

    def _update(self, ref: str, model: Any) -> None:
        text = self._transform_object(self.object)["object"]
        if model.text != text:
            model.text = text
