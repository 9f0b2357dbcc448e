"""The P&L tracker: marking, drawdown, sessions, throttling, flows, and recovery after restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.config import BrokerConfig, PnlConfig, build
from engine.pnl import SessionCalendar
from streams.clock import datetime_to_ns
from streams.errors import ConfigError
from streams.events import BUY, SELL, PnlUpdated
from tests.factories import T0, cash_adjusted, reconciliation, restarted_rig, trading_rig


def ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).replace(tzinfo=UTC))


def last_pnl(rig) -> PnlUpdated:
    return rig.events(PnlUpdated)[-1]


def test_a_long_position_is_marked_to_the_last_close() -> None:
    rig = trading_rig()
    rig.order(BUY, 10)
    rig.bar(open=100.0, close=100.0)

    rig.bar(open=101.0, close=105.0)

    pnl = last_pnl(rig)
    assert pnl.unrealized == pytest.approx(50.0)
    assert pnl.realized == 0.0
    assert pnl.equity == pytest.approx(100_000.0 - 1_000.0 + 1_050.0)
    assert pnl.daily == pytest.approx(50.0)
    assert dict(rig.store.get_state("pnl"))["equity"] == pnl.equity


def test_a_short_loses_as_price_rises_and_realized_is_net_of_commission() -> None:
    rig = trading_rig(broker_config=BrokerConfig(account_path="", commission_min=2.0))
    rig.order(SELL, 10)
    rig.bar(open=100.0, close=103.0)
    assert last_pnl(rig).unrealized == pytest.approx(-30.0)

    rig.order(BUY, 4)
    rig.bar(open=103.0, close=103.0)

    pnl = last_pnl(rig)
    assert pnl.realized == pytest.approx(4 * -3.0 - 2 * 2.0)
    assert pnl.unrealized == pytest.approx(6 * -3.0)
    assert pnl.equity == pytest.approx(100_000.0 + pnl.realized + pnl.unrealized)


def test_drawdown_is_measured_from_the_equity_peak() -> None:
    rig = trading_rig()
    rig.order(BUY, 100)
    rig.bar(open=100.0)
    for close in (110.0, 104.0, 112.0, 101.0, 108.0):
        rig.bar(open=close, close=close)

    pnl = last_pnl(rig)
    assert pnl.equity == pytest.approx(100_000.0 + 800.0)
    assert pnl.drawdown == pytest.approx(400.0)  # peak 101_200
    assert pnl.max_drawdown == pytest.approx(1_100.0)  # 112 -> 101


def test_an_unpriced_position_is_marked_at_its_average_price() -> None:
    rig = trading_rig()

    rig.core.publish(reconciliation("XYZ", broker_qty=5.0, broker_avg_price=20.0))

    pnl = last_pnl(rig)
    assert pnl.unrealized == 0.0
    assert pnl.equity == pytest.approx(100_000.0 + 100.0)


def test_a_deposit_is_a_flow_not_profit() -> None:
    rig = trading_rig()
    rig.bar(open=100.0)

    rig.core.publish(cash_adjusted(5_000.0, reason="deposit"))

    pnl = last_pnl(rig)
    assert pnl.equity == pytest.approx(105_000.0)
    assert pnl.daily == 0.0
    assert pnl.drawdown == 0.0
    rig.core.publish(cash_adjusted(-2_000.0, reason="withdrawal"))
    assert (last_pnl(rig).daily, last_pnl(rig).drawdown) == (0.0, 0.0)


def test_ticks_publish_at_most_once_per_interval_bars_whenever_figures_change() -> None:
    rig = trading_rig(pnl_config=PnlConfig(publish_interval_s=1.0))
    rig.order(BUY, 10)
    rig.quote(bid=100.0, ask=100.0)  # fills at once; the fill publishes
    count = len(rig.events(PnlUpdated))

    for _ in range(5):  # 5 ticks over 0.5 s
        rig.quote(bid=99.0, ask=99.0)
    after_ticks = len(rig.events(PnlUpdated))
    rig.clock.advance(1.0)
    rig.quote(bid=98.0, ask=98.0)
    rig.bar(open=97.0)
    rig.bar(open=97.0)  # nothing moved: no identical update

    assert after_ticks == count  # all within 1 s of the fill's update: throttled
    assert len(rig.events(PnlUpdated)) == after_ticks + 2
    assert last_pnl(rig).max_drawdown == pytest.approx(30.0)


def test_daily_pnl_restarts_from_the_last_equity_when_the_session_rolls() -> None:
    rig = trading_rig(start_ns=ns("2024-01-02T23:50:00"))
    rig.order(BUY, 100)
    rig.bar(open=100.0, close=100.0)
    rig.bar(open=99.0, close=98.0)  # -200 today
    assert last_pnl(rig).daily == pytest.approx(-200.0)

    rig.clock.set(ns("2024-01-03T00:05:00"))
    rig.bar(open=98.0, close=97.0)

    pnl = last_pnl(rig)
    assert pnl.session_start == ns("2024-01-03T00:00:00")
    assert pnl.daily == pytest.approx(-100.0)
    assert pnl.max_drawdown == pytest.approx(300.0)


def test_session_boundaries_follow_the_configured_time_zone_and_dst() -> None:
    calendar = SessionCalendar("09:30", "America/New_York")

    winter = calendar.session_start(ns("2024-01-02T15:00:00"))
    before_open = calendar.session_start(ns("2024-01-02T14:00:00"))
    summer = calendar.session_start(ns("2024-07-02T15:00:00"))

    assert winter == ns("2024-01-02T14:30:00")  # 09:30 EST
    assert before_open == ns("2024-01-01T14:30:00")
    assert summer == ns("2024-07-02T13:30:00")  # 09:30 EDT


def test_after_a_restart_the_session_start_and_peak_are_recovered() -> None:
    rig = trading_rig()
    rig.order(BUY, 100)
    rig.bar(open=100.0)
    rig.bar(open=110.0, close=110.0)  # peak +1000
    rig.bar(open=105.0, close=105.0)  # daily +500, drawdown 500
    before = last_pnl(rig)

    again = restarted_rig(rig, advance_s=60)
    again.bar(open=104.0, close=104.0)

    pnl = last_pnl(again)
    assert (before.daily, before.drawdown) == (pytest.approx(500.0), pytest.approx(500.0))
    assert pnl.daily == pytest.approx(400.0)
    assert pnl.drawdown == pytest.approx(600.0)
    assert pnl.max_drawdown == pytest.approx(600.0)


def test_a_restart_in_a_new_session_measures_from_the_last_stored_equity() -> None:
    rig = trading_rig()
    rig.order(BUY, 100)
    rig.bar(open=100.0)
    rig.bar(open=95.0, close=95.0)
    before = last_pnl(rig)

    again = restarted_rig(rig, advance_s=86_400)
    again.bar(open=96.0, close=96.0)

    assert before.daily == pytest.approx(-500.0)
    assert last_pnl(again).daily == pytest.approx(100.0)
    assert last_pnl(again).session_start == before.session_start + 86_400 * 10**9


def test_a_brand_new_account_starts_its_day_at_its_starting_cash() -> None:
    rig = trading_rig(starting_cash=25_000.0, start_ns=T0)

    rig.bar(open=10.0)

    assert (last_pnl(rig).equity, last_pnl(rig).daily) == (25_000.0, 0.0)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"session_start": "25:00"}, "session_start '25:00'"),
        ({"session_start": "9"}, "session_start '9'"),
        ({"session_timezone": "Mars/Olympus"}, "session_timezone 'Mars/Olympus'"),
        ({"publish_interval_s": -1.0}, "publish_interval_s"),
    ],
)
def test_bad_pnl_config_is_refused_naming_the_key(data: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        build(PnlConfig, data, "pnl")
