"""UI preferences: per user, in their own files, never in the event log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from panel_app.prefs import UiPrefsStore


def test_prefs_are_per_user_and_merged(tmp_path: Path) -> None:
    store = UiPrefsStore(tmp_path / "prefs")
    assert store.load("alice") == {}
    store.update("alice", theme="dark")
    store.update("alice", tab="Analytics")
    store.update("bob", theme="default")
    assert store.load("alice") == {"theme": "dark", "tab": "Analytics"}
    assert store.load("bob") == {"theme": "default"}
    assert sorted(p.name for p in (tmp_path / "prefs").iterdir()) == ["alice.json", "bob.json"]


def test_user_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = UiPrefsStore(tmp_path / "prefs")
    store.update("../../etc/passwd", theme="dark")
    files = list((tmp_path / "prefs").iterdir())
    assert len(files) == 1 and files[0].parent == tmp_path / "prefs"
    assert store.load("../../etc/passwd") == {"theme": "dark"}


def test_a_broken_file_means_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "prefs"
    folder.mkdir()
    (folder / "carol.json").write_text("{not json", encoding="utf-8")
    store = UiPrefsStore(folder)
    assert store.load("carol") == {}
    (folder / "carol.json").write_text(json.dumps([1, 2]), encoding="utf-8")
    assert store.load("carol") == {}


def test_an_unwritable_folder_does_not_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    store = UiPrefsStore(blocker / "prefs")  # a folder below a file cannot be made
    assert store.update("dave", theme="dark") == {"theme": "dark"}


def test_session_preferences_never_reach_the_event_log(kernel: Any) -> None:
    from panel_app.app import DashboardSession

    session = DashboardSession(kernel, "erin", "operator")
    try:
        session._on_theme(type("E", (), {"new": "dark"})())
        session._on_tab(type("E", (), {"new": 2})())
        assert session.prefs_store.load("erin") == {"theme": "dark", "tab": "Analytics"}
    finally:
        session.dispose()
    kernel.bus.join(timeout=5)
    df = kernel.log.read_df(since_seq=0, topic=None, types=None, limit=100_000)
    payloads = " ".join(str(p) for p in df["payload"]) if len(df) else ""
    assert "Analytics" not in payloads and '"dark"' not in payloads


def test_a_users_chart_range_trade_columns_and_symbol_come_back_next_visit(kernel: Any) -> None:
    """Changed in one session, restored in the next; another user keeps the defaults."""
    from panel_app.app import create_session
    from panel_app.recent_trades import TRADE_FIELDS

    first = create_session(kernel, "carol", "viewer")
    try:
        first.dashboard.tape.chooser.value = ["time", "symbol", "price"]
        first.dashboard.chart.window.value = 300
        first.dashboard.chart.symbol.value = first.dashboard.chart.symbol.options[-1]
        chosen_symbol = first.dashboard.chart.symbol.value
    finally:
        first.dispose()

    again = create_session(kernel, "carol", "viewer")
    other = create_session(kernel, "dave", "viewer")
    try:
        view = again.dashboard
        assert view.tape.chooser.value == ["time", "symbol", "price"]
        assert re.findall(r"<th(?: [^>]*)?>(.*?)</th>", view.trades.object) == [
            "time",
            "symbol",
            "price",
        ]
        assert view.chart.window.value == 300
        assert view.price_fig.x_range.follow == "end"
        assert view.price_fig.x_range.follow_interval == 300_000
        assert view.chart.symbol.value == chosen_symbol
        assert other.dashboard.tape.chooser.value == list(TRADE_FIELDS)
        assert other.dashboard.chart.window.value == 0
    finally:
        again.dispose()
        other.dispose()
    stored = kernel.log.read(types=["state_changed"])
    assert not [e for e in stored if "trade_columns" in json.dumps(e.to_dict())]
