"""The paper broker passes the broker contract suite (testkit/broker_contract.py) every broker
adapter runs, with its account in a real file, and is what ``broker.kind: paper`` builds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.broker import PaperBroker
from engine.brokers import Broker, build_broker
from engine.config import parse_config
from streams.clock import Clock, ManualClock
from streams.errors import ConfigError
from streams.events import Event, TickReceived
from testkit.broker_contract import BrokerContract, BrokerRig


class TestPaperBrokerContract(BrokerContract):
    """The built-in ``paper`` kind, built as the kernel builds it, account file in the folder."""

    def make_broker(self, publish: Callable[[Event], None], clock: Clock, folder: Path) -> Broker:
        config = parse_config(
            {
                "broker": {"account_path": str(folder / "account.json"), "commission_bps": 1.0},
                "state": {"starting_cash": 50_000.0},
            }
        )
        return build_broker(config, publish, clock)

    def move_market(self, rig: BrokerRig, price: float) -> None:
        assert isinstance(rig.broker, PaperBroker)
        tick = TickReceived(
            symbol=self.symbol,
            bid=price - 0.05,
            ask=price + 0.05,
            last=price,
            ts_event=rig.clock.now_ns(),
        )
        rig.broker.on_tick(tick)


def test_broker_kind_names_an_installed_broker() -> None:
    broker = build_broker(parse_config({"broker": {"account_path": ""}}), print, ManualClock())

    assert isinstance(broker, PaperBroker) and isinstance(broker, Broker)
    with pytest.raises(
        ConfigError, match=r"broker.kind: expected an installed broker kind \(paper"
    ):
        parse_config({"broker": {"kind": "ib"}})
