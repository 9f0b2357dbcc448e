"""The live tables without a browser: the shared recent-trades tape, the HTML tables it and the
positions table render to, and the LiveHTML pane that shows them."""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import panel as pn
import pytest
from bokeh.document import Document

from engine.kernel import Kernel
from panel_app.aggregates import TradeAggregator
from panel_app.html_tables import Column, html_table, money, quantity
from panel_app.recent_trades import TRADE_FIELDS, RecentTrades, trade_row
from panel_app.views.live_panes import (
    POSITION_TITLES,
    LiveHTML,
    indicator_values,
    indicators_html,
    position_rows,
    positions_html,
)
from panel_app.views.tape import TradeTape
from streams.events import TradeExecuted
from testkit.access_server import make_kernel

TS = 1_767_625_200_000_000_000  # 2026-01-05 15:00:00 UTC


def fill(
    fill_id: str,
    seq: int = 0,
    *,
    strategy: str = "s",
    side: str = "buy",
    qty: float = 10.0,
    price: float = 100.0,
) -> TradeExecuted:
    return TradeExecuted(
        fill_id=fill_id,
        order_id=f"o-{fill_id}",
        strategy=strategy,
        symbol="AAPL",
        side=side,
        qty=qty,
        price=price,
        ts_event=TS,
        seq=seq,
    )


def ids(tape: RecentTrades) -> list[str]:
    return [row["fill_id"] for row in tape.rows()]


def keys(text: str) -> list[str]:
    """The ``data-key`` of every row of a rendered table, top to bottom."""
    return re.findall(r'<tr data-key="([^"]*)">', text)


def headers(text: str) -> list[str]:
    return re.findall(r"<th(?: [^>]*)?>(.*?)</th>", text)


# -- RecentTrades ---------------------------------------------------------------------------


def test_rows_and_html_are_in_seq_order_newest_first() -> None:
    tape = RecentTrades(capacity=10)
    for seq in (1, 2, 3):
        assert tape.add(fill(f"f{seq}", seq))
    assert ids(tape) == ["f3", "f2", "f1"]
    assert keys(tape.html()) == ["f3", "f2", "f1"]
    assert tape.version == 3


def test_a_fill_arriving_late_is_placed_by_its_seq() -> None:
    tape = RecentTrades(capacity=10)
    tape.add(fill("f10", 10))
    tape.add(fill("f30", 30))
    assert tape.add(fill("f20", 20))  # delivered after f30, committed before it
    tape.add(fill("f5", 5))
    assert ids(tape) == ["f30", "f20", "f10", "f5"]
    assert keys(tape.html()) == ["f30", "f20", "f10", "f5"]


def test_add_is_idempotent_by_fill_id() -> None:
    tape = RecentTrades(capacity=10)
    assert tape.add(fill("f1", 1))
    version = tape.version
    rendered = tape.html()
    # The same fill again (bus subscription and a session's callback), even with another seq.
    assert tape.add(fill("f1", 1)) is False
    assert tape.add(fill("f1", 7, price=1.0)) is False
    assert tape.version == version
    assert ids(tape) == ["f1"]
    assert tape.rows()[0]["price"] == 100.0
    assert tape.html() is rendered


def test_capacity_keeps_the_newest_and_forgets_evicted_ids() -> None:
    tape = RecentTrades(capacity=3)
    for seq in range(1, 6):
        assert tape.add(fill(f"f{seq}", seq))
    assert ids(tape) == ["f5", "f4", "f3"]
    assert tape.version == 5
    # Older than everything kept: not added (it would be evicted at once), nothing changes.
    assert tape.add(fill("f1", 1)) is False
    assert tape.add(fill("f2b", 2)) is False
    assert tape.version == 5
    assert ids(tape) == ["f5", "f4", "f3"]
    # Between kept ones: placed by seq, the oldest kept one goes.
    assert tape.add(fill("f3b", 3)) is True  # seq 3 sorts after f3 (same seq, later arrival)
    assert ids(tape) == ["f5", "f4", "f3b"]
    # An evicted fill's id no longer blocks it: the id set dropped it with the row.
    assert tape.add(fill("f1", 9)) is True
    assert ids(tape) == ["f1", "f5", "f4"]
    assert len(tape.rows()) == 3


def test_capacity_is_at_least_one() -> None:
    tape = RecentTrades(capacity=0)
    assert tape.capacity == 1
    tape.add(fill("a", 1))
    tape.add(fill("b", 2))
    assert ids(tape) == ["b"]


def test_fills_without_seq_go_after_seqd_ones_in_arrival_order() -> None:
    tape = RecentTrades(capacity=10)
    tape.add(fill("x", 0))
    tape.add(fill("s5", 5))
    tape.add(fill("y", 0))
    tape.add(fill("s2", 2))
    tape.add(fill("z", 0))
    # Newest first: the seq-less ones (arrival order) are newer than every logged one.
    assert ids(tape) == ["z", "y", "x", "s5", "s2"]
    # When full, the logged ones are evicted first.
    small = RecentTrades(capacity=2)
    small.add(fill("x", 0))
    small.add(fill("s5", 5))
    small.add(fill("y", 0))
    assert ids(small) == ["y", "x"]


def test_html_is_rendered_once_per_version_and_column_set() -> None:
    tape = RecentTrades(capacity=10)
    empty = tape.html()
    assert 'data-rows="0"' in empty
    assert "no trades yet" in empty
    tape.add(fill("f1", 1))
    first = tape.html()
    assert first is not empty
    assert tape.html() is first
    narrow = tape.html(["symbol", "price"])
    assert narrow is not first
    assert tape.html(("symbol", "price")) is narrow  # the same choice as a tuple
    assert tape.html() is first  # each column set keeps its own rendering
    tape.add(fill("f2", 2))
    second = tape.html()
    assert second is not first
    assert keys(second) == ["f2", "f1"]
    assert keys(tape.html(["symbol", "price"])) == ["f2", "f1"]
    assert tape.html() is second


def test_unknown_columns_are_ignored_and_no_choice_means_all() -> None:
    tape = RecentTrades(capacity=10)
    tape.add(fill("f1", 1, side="sell", qty=2.5, price=1234.5))
    all_titles = headers(tape.html())
    assert len(all_titles) == len(TRADE_FIELDS)
    assert all_titles == ["time", "strategy", "symbol", "side", "qty", "price", "fill id"]
    assert headers(tape.html([])) == all_titles
    assert headers(tape.html(["nope", "also-not"])) == all_titles
    chosen = tape.html(["price", "nope", "side"])
    assert headers(chosen) == ["price", "side"]
    assert '<td class="sl-num">1,234.50</td><td class="sl-sell">sell</td>' in chosen
    assert tape.html(["nope", "price", "side"]) is chosen  # the same columns once cleaned


def test_hostile_strings_are_escaped() -> None:
    tape = RecentTrades(capacity=10)
    hostile = "<script>alert(1)</script>"
    # A strategy name is a topic segment when the topic is derived; give the topic instead
    # (as an event read back from the log carries it) so the name can be anything.
    tape.add(
        TradeExecuted(
            fill_id='a"b',
            order_id="o1",
            strategy=hostile,
            symbol="<img src=x onerror=alert(2)>",
            side="buy",
            qty=1.0,
            price=1.0,
            ts_event=TS,
            seq=1,
            topic="fills.probe",
        )
    )
    text = tape.html()
    assert "<script>" not in text
    assert "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt;" in text
    assert 'data-key="a&quot;b"' in text
    assert 'a"b' not in text
    assert tape.rows()[0]["strategy"] == "<script>alert(1)</script>"  # rows stay raw


def test_rows_are_copies() -> None:
    tape = RecentTrades(capacity=10)
    tape.add(fill("f1", 1))
    tape.rows()[0]["fill_id"] = "changed"
    assert ids(tape) == ["f1"]


def test_trade_row_fields() -> None:
    row = trade_row(fill("f1", 1, side="sell", qty=3.0, price=99.5))
    assert tuple(row) == TRADE_FIELDS
    assert row["time"] == "2026-01-05 15:00:00.000"
    assert row["side"] == "sell"
    assert (row["qty"], row["price"], row["fill_id"]) == (3.0, 99.5, "f1")


# -- html_table, money, quantity -------------------------------------------------------------


def test_money_and_quantity_formatting() -> None:
    assert money(1234.5) == "1,234.50"
    assert money(-1234567.891) == "-1,234,567.89"
    assert money("2.5") == "2.50"
    assert money(0) == "0.00"
    assert money(None) == ""
    assert money(math.nan) == ""
    assert quantity(10.0) == "10"
    assert quantity(0.5) == "0.5"
    assert quantity(1234.0) == "1,234"
    assert quantity(None) == ""
    assert quantity(float("nan")) == ""
    assert quantity(123456789.0) == "123,456,789"  # never in exponent notation
    assert quantity(-0.125) == "-0.125"


def test_a_row_without_its_key_gets_an_empty_data_key() -> None:
    text = html_table("t", [Column("a", "A")], [{"a": None}], key="a")
    assert '<tr data-key="">' in text


def test_nan_and_none_render_as_empty_cells() -> None:
    columns = [
        Column("name", "Name"),
        Column("qty", "Qty", quantity, numeric=True),
        Column("price", "Price", money, numeric=True),
    ]
    row = {"k": "r1", "name": None, "qty": math.nan, "price": None}
    text = html_table("t", columns, [row], key="k")
    assert '<tr data-key="r1"><td></td><td class="sl-num"></td><td class="sl-num"></td></tr>' in (
        text
    )
    assert "nan" not in text.lower()
    assert "None" not in text


def test_side_cells_are_coloured_and_numbers_aligned() -> None:
    columns = [Column("side", "Side"), Column("price", "Price", money, numeric=True)]
    rows = [
        {"k": "1", "side": "buy", "price": 1234.5},
        {"k": "2", "side": "sell", "price": 2.0},
        {"k": "3", "side": "hold", "price": 3.0},
    ]
    text = html_table("t", columns, rows, key="k")
    assert '<tr data-key="1"><td class="sl-buy">buy</td><td class="sl-num">1,234.50</td></tr>' in (
        text
    )
    assert '<td class="sl-sell">sell</td>' in text
    assert "<td>hold</td>" in text
    assert keys(text) == ["1", "2", "3"]
    assert 'data-rows="3"' in text


def test_empty_table_shows_the_message_across_all_columns() -> None:
    columns = [Column(c, c.title()) for c in ("a", "b", "c", "d")]
    text = html_table("things", columns, [], key="a", empty="nothing <here>")
    assert '<td class="sl-empty" colspan="4">nothing &lt;here&gt;</td>' in text
    assert 'data-testid="things"' in text
    assert 'data-rows="0"' in text
    assert keys(text) == []
    assert headers(text) == ["A", "B", "C", "D"]


def test_table_shape_and_height() -> None:
    columns = [Column("a", "A & B")]
    rows = ({"a": str(i)} for i in range(5))  # any iterable
    text = html_table('x"y', columns, rows, key="a", height_px=123)
    assert text.startswith('<div class="sl-table-wrap" style="--sl-table-height: 123px">')
    assert '<table class="sl-table" data-testid="x&quot;y" data-rows="5">' in text
    assert '<th data-field="a">A &amp; B</th>' in text
    assert keys(text) == ["0", "1", "2", "3", "4"]
    assert text.endswith("</tbody></table></div>")


def test_positions_table() -> None:
    rows = position_rows(
        {"MSFT": {"qty": 2.0, "avg_price": 50.0}, "AAPL": {"qty": 10.0, "avg_price": 100.0}},
        {"AAPL": {"last": 101.0}},
    )
    text = positions_html(rows)
    assert 'data-testid="positions"' in text
    assert 'data-rows="2"' in text
    assert keys(text) == ["AAPL", "MSFT"]
    assert headers(text) == [html.escape(t) for t in POSITION_TITLES.values()]
    assert ">1,010.00<" in text  # AAPL market value
    msft = text.split('<tr data-key="MSFT">')[1].split("</tr>")[0]
    assert msft.count('<td class="sl-num"></td>') == 3  # no price yet: last, value, unrealized
    assert "no positions" in positions_html([])


# -- LiveHTML ---------------------------------------------------------------------------------


class Reprs:
    def _repr_html_(self) -> str:
        return "<i>repr & more</i>"


@pytest.mark.parametrize(
    "obj",
    ['<table class="sl-table"><tr data-key="a&quot;b"><td>1 &lt; 2</td></tr></table>', "", None],
)
def test_live_html_sends_the_text_plain_html_would(obj: Any) -> None:
    live = LiveHTML("<p>start</p>", stylesheets=[".x { color: red; }"])
    plain = pn.pane.HTML("<p>start</p>", stylesheets=[".x { color: red; }"])
    live_model = live.get_root(Document())
    plain_model = plain.get_root(Document())
    assert live_model.text == plain_model.text
    start = live_model.text
    live.object = obj
    plain.object = obj
    assert live_model.text == plain_model.text
    assert live_model.text != start
    live.object = Reprs()
    plain.object = Reprs()
    assert live_model.text == plain_model.text
    assert "repr" in live_model.text


def test_live_html_applies_sanitizing_like_plain_html() -> None:
    hostile = "<b>ok</b><script>alert(1)</script>"
    live = LiveHTML("", sanitize_html=True)
    plain = pn.pane.HTML("", sanitize_html=True)
    live_model, plain_model = live.get_root(Document()), plain.get_root(Document())
    live.object = hostile
    plain.object = hostile
    assert live_model.text == plain_model.text
    assert "script" not in live_model.text


def test_live_html_other_params_still_reach_the_model() -> None:
    live = LiveHTML("<p>a</p>", css_classes=["sl-x"])
    model = live.get_root(Document())
    assert model.visible is True
    live.visible = False
    assert model.visible is False
    live.styles = {"color": "red"}
    assert model.styles == {"color": "red"}
    live.object = "<p>b</p>"
    assert model.visible is False
    assert model.styles == {"color": "red"}
    assert "sl-x" in model.css_classes
    live.visible = True
    assert model.visible is True
    assert model.text == pn.pane.HTML("<p>b</p>").get_root(Document()).text


# -- attach to a real engine --------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A real kernel on a temp DuckDB with no feed and no runner: only this file's fills."""
    k = make_kernel(Path(tmp_path_factory.mktemp("recent")))
    yield k
    k.stop()


def publish_fill(kernel: Kernel, fill_id: str) -> None:
    kernel.publish(
        TradeExecuted(
            fill_id=fill_id,
            order_id=f"o-{fill_id}",
            strategy="tape",
            symbol="AAPL",
            side="buy",
            qty=1.0,
            price=101.25,
            ts_event=time.time_ns(),
        )
    )


def test_attach_seeds_the_newest_fills_from_the_log_then_follows_the_bus(engine: Kernel) -> None:
    names = [f"seed{i}" for i in range(5)]
    for name in names:
        publish_fill(engine, name)
    assert engine.bus.join(10)
    logged = engine.log.read(types=["trade_executed"])
    assert [e.fill_id for e in logged][-5:] == names  # committed before delivery
    before = engine.bus.subscriber_count()
    agg = TradeAggregator().attach(engine.bus, engine.log)
    tape = RecentTrades(capacity=3)
    try:
        tape.attach(engine.bus, engine.log, agg.trade_page_bounds)
        assert ids(tape) == ["seed4", "seed3", "seed2"]
        assert keys(tape.html()) == ["seed4", "seed3", "seed2"]
        seqs = [e.seq for e in logged[-3:]]
        assert sorted(seqs) == seqs and all(seqs)
        publish_fill(engine, "live")
        deadline = time.monotonic() + 10
        while ids(tape)[:1] != ["live"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ids(tape) == ["live", "seed4", "seed3"]
        version = tape.version
        # The same fill from the log again (a session's callback, a re-seed): no change.
        assert tape.add(engine.log.read(types=["trade_executed"])[-1]) is False
        assert tape.version == version
    finally:
        tape.detach()
        agg.detach()
    assert engine.bus.subscriber_count() == before
    publish_fill(engine, "after-detach")
    assert engine.bus.join(10)
    assert ids(tape) == ["live", "seed4", "seed3"]


def test_attach_without_bounds_only_follows_the_bus(engine: Kernel) -> None:
    tape = RecentTrades(capacity=3)
    try:
        tape.attach(engine.bus, engine.log)  # no bounds: nothing seeded
        assert tape.rows() == []
        publish_fill(engine, "only")
        assert engine.bus.join(10)
        deadline = time.monotonic() + 10
        while not tape.rows() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ids(tape) == ["only"]
    finally:
        tape.detach()
    tape.detach()  # twice is harmless


# -- TradeTape (the session's incremental table) ------------------------------------------------
def test_tape_streams_new_fills_and_keeps_the_table_current_without_sending_it() -> None:
    tape = RecentTrades(capacity=3)
    tape.add(fill("f1", 1))
    view = TradeTape(tape, list(TRADE_FIELDS))
    model = view.pane.get_root(Document())
    sent_before = model.text
    assert view.source.data["fill_id"] == ["f1"]
    assert f'data-tape="{view.tape_id}"' in view.pane.object
    assert re.findall(r'<th data-field="([^"]*)"', view.pane.object) == list(TRADE_FIELDS)

    new = [fill("f2", 2, side="sell", qty=2.5), fill("f3", 3)]
    for event in new:
        tape.add(event)
    view.add(new)
    # The page gets the two rows as one stream, its cells formatted as the table shows them.
    assert view.source.data["fill_id"] == ["f1", "f2", "f3"]
    assert view.source.data["qty"][1] == "2.5"
    assert view.source.data["price"][1] == "100.00"
    # The table HTML on the server is current (a view built later starts from it) ...
    assert keys(view.pane.object) == ["f3", "f2", "f1"]
    # ... but it was not sent to the existing view: only the stream was.
    assert model.text == sent_before

    view.add([fill("f4", 4)])  # rollover keeps the source at the tape's capacity
    assert view.source.data["fill_id"] == ["f2", "f3", "f4"]


def test_tape_sends_the_whole_table_when_the_columns_change() -> None:
    tape = RecentTrades(capacity=3)
    tape.add(fill("f1", 1))
    view = TradeTape(tape, list(TRADE_FIELDS))
    model = view.pane.get_root(Document())
    second = fill("f2", 2)
    tape.add(second)
    view.add([second])  # current on the server, not sent
    view.show_columns(["time", "price"])
    decoded = html.unescape(model.text)  # the model holds the HTML escaped
    assert re.findall(r'<th data-field="([^"]*)"', decoded) == ["time", "price"]
    assert keys(decoded) == ["f2", "f1"]


def test_indicators_colour_losses_red_and_show_drawdown_as_a_loss() -> None:
    values = indicator_values(
        {"equity": 101_234.5, "daily": -12.0, "realized": 3.0, "unrealized": 0.0, "drawdown": 7.5}
    )

    text = indicators_html(values)

    assert values["drawdown"] == -7.5
    tiles = dict(re.findall(r'data-testid="indicator-(\w+)" data-value="([^"]+)"', text))
    assert tiles == {
        "equity": "101234.5",
        "daily": "-12.0",
        "realized": "3.0",
        "unrealized": "0.0",
        "drawdown": "-7.5",
    }
    assert '<div class="sl-ind-value">101,234.50</div>' in text  # equity: not coloured
    assert '<div class="sl-ind-value sl-neg">-12.00</div>' in text
    assert '<div class="sl-ind-value sl-pos">3.00</div>' in text
    assert '<div class="sl-ind-value sl-neg">-7.50</div>' in text
    no_drawdown = indicators_html(indicator_values({"drawdown": 0.0}))
    assert (
        '<div class="sl-ind-value sl-pos">0.00</div>' in no_drawdown.split("indicator-drawdown")[1]
    )
