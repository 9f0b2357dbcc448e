"""``positions``: a dashboard tab listing the engine's positions (``dashboard.panels:
[positions]``). A tab factory is given the engine and returns a Panel ``Viewer``; it runs once
per browser session."""

from __future__ import annotations

from typing import Any

import panel as pn


class PositionsTab(pn.viewable.Viewer):
    """The engine's positions as JSON, read again when "Refresh" is pressed."""

    def __init__(self, engine: Any, **params: Any) -> None:
        super().__init__(**params)
        self._engine = engine
        self._positions = pn.pane.JSON({}, depth=2, sizing_mode="stretch_width")
        self._refresh = pn.widgets.Button(label="Refresh", color="primary")
        self._refresh.on_click(lambda _event: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Show the positions of the engine's current state."""
        positions = self._engine.store.get_state("positions", {})
        self._positions.object = {symbol: dict(pos) for symbol, pos in positions.items()}

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column("## Positions", self._refresh, self._positions)


def positions_tab(engine: Any) -> PositionsTab:
    """The ``positions`` entry point."""
    return PositionsTab(engine)
