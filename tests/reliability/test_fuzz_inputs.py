"""Bad input, fuzzed with hypothesis: market data, event payloads, orders, configs, snapshots.

Each property states the contract of one edge (DESIGN.md §2.6 "fail loud at the edges, keep
running inside"): a bad input becomes a clear, typed error (or a ``DataRejected`` event)
naming the field and the value; nothing else ever escapes. The example counts are sized so
the whole module runs in a few seconds; ``docs/reliability.md`` lists them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.broker import PaperBroker
from engine.config import SeamlessConfig, parse_config
from engine.fill_rules import validate_order
from persistence import EventLog, full_replay, restore
from state import fold, model
from streams.clock import ManualClock
from streams.errors import ConfigError, EventError, PersistenceError
from streams.events import (
    BarReceived,
    DataRejected,
    Event,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    TickReceived,
    TradeExecuted,
    event_from_dict,
    event_types,
)
from streams.sources.validation import MarketDataValidator
from streams.sources.websocket_feed import TickMessageMapper
from tests.persistence.builders import T0, every_event_type, fill, tick

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
MEDIUM = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

# -- hostile values ---------------------------------------------------------------------------
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "x' OR 1=1 --",
        "'; DROP TABLE events; --",
        "../../etc/passwd",
        "\x00",
        "é€😀",
        "a.b.c",
        "*",
        ">",
        "A" * 10_000,
        "<script>alert(1)</script>",
        "NaN",
        "1e999",
    ]
)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -0.0, 1e-320, 1e308, -1, True, False]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30), HOSTILE_TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
ANY = st.one_of(JSON, st.sets(st.integers(), max_size=3), st.binary(max_size=10))


# -- (a) market data -> TickMessageMapper -> MarketDataValidator ------------------------------
def _raw_tick() -> st.SearchStrategy[Any]:
    field_value = st.one_of(NUMBERS, SCALARS)
    good = st.fixed_dictionaries(
        {"symbol": st.sampled_from(["AAPL", "MSFT"])},
        optional={
            "bid": field_value,
            "ask": field_value,
            "last": field_value,
            "size": field_value,
            "ts": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), SCALARS),
        },
    )
    hostile_symbol = st.fixed_dictionaries(
        {"symbol": st.one_of(SCALARS, HOSTILE_TEXT), "last": st.floats(1, 1e6)}
    )
    return st.one_of(good, hostile_symbol, JSON, st.lists(good, max_size=5))


@FAST
@given(messages=st.lists(_raw_tick(), min_size=1, max_size=6))
def test_market_data_never_raises_and_rejections_name_field_and_value(messages: list[Any]) -> None:
    clock = ManualClock(T0)
    mapper = TickMessageMapper("ws", clock)
    validator = MarketDataValidator(["AAPL", "MSFT"], "ws")
    for message in messages:
        clock.advance(0.001)
        for event in mapper(message):
            checked = validator.check(event)
            if isinstance(checked, DataRejected):
                assert checked.field, checked
                assert checked.reason.split(":", 1)[0], checked
                assert isinstance(checked.value, str) and len(checked.value) <= 200
                assert checked.topic.startswith("data.rejected")
            else:
                assert isinstance(checked, TickReceived)
                for value in (checked.bid, checked.ask, checked.last):
                    assert value is None or (math.isfinite(value) and value > 0)
                assert math.isfinite(checked.size) and checked.size >= 0
                if checked.bid is not None and checked.ask is not None:
                    assert checked.bid <= checked.ask


@FAST
@given(o=NUMBERS, h=NUMBERS, low=NUMBERS, c=NUMBERS, v=NUMBERS, ts=st.integers(0, 2**63 - 1))
def test_bars_with_any_numbers_are_accepted_only_when_consistent(
    o: Any, h: Any, low: Any, c: Any, v: Any, ts: int
) -> None:
    validator = MarketDataValidator(["AAPL"], "csv")
    bar = BarReceived(symbol="AAPL", open=o, high=h, low=low, close=c, volume=v, ts_event=ts)
    checked = validator.check(bar)
    if isinstance(checked, DataRejected):
        assert checked.field in ("open", "high", "low", "close", "volume", "ts_event")
        assert validator.rejected_total == 1
    else:
        assert all(isinstance(x, int | float) and math.isfinite(x) for x in (o, h, low, c, v))
        assert 0 < low <= min(o, c) <= max(o, c) <= h and v >= 0


# -- (b) event payloads -> event_from_dict ---------------------------------------------------
TEMPLATES = [e.to_dict() for e in every_event_type()]


@st.composite
def _mutated_payload(draw: st.DrawFn) -> Any:
    base = dict(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "drop", "add", "type"]))
        keys = sorted(base)
        if op == "set" and keys:
            base[draw(st.sampled_from(keys))] = draw(ANY)
        elif op == "drop" and keys:
            base.pop(draw(st.sampled_from(keys)))
        elif op == "add":
            base[draw(st.text(max_size=8))] = draw(JSON)
        else:
            base["type"] = draw(st.one_of(st.sampled_from(sorted(event_types())), SCALARS))
    return base


@FAST
@given(payload=st.one_of(_mutated_payload(), ANY))
def test_event_from_dict_raises_only_event_error(payload: Any) -> None:
    try:
        event = event_from_dict(payload)
    except EventError as exc:
        assert str(exc)
        return
    assert isinstance(event, Event)
    # What is accepted survives the log's own serialization (JSON) unchanged in type.
    assert type(event_from_dict(json.loads(json.dumps(event.to_dict(), default=str)))) is type(
        event
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@FAST
@given(
    symbol=st.from_regex(r"[A-Z][A-Z0-9_]{0,9}", fullmatch=True),
    bid=st.none() | finite,
    ask=st.none() | finite,
    size=finite,
    ts=st.integers(0, 2**63 - 1),
    qty=finite,
    text=st.text(max_size=40),
)
def test_valid_events_round_trip_through_json(
    symbol: str, bid: Any, ask: Any, size: float, ts: int, qty: float, text: str
) -> None:
    events: list[Event] = [
        TickReceived(symbol=symbol, bid=bid, ask=ask, size=size, ts_event=ts),
        TradeExecuted(
            fill_id=text,
            order_id=text,
            strategy="s",
            symbol=symbol,
            side="buy",
            qty=qty,
            price=qty,
            commission=0.0,
            ts_event=ts,
        ),
    ]
    for event in events:
        wire = json.loads(json.dumps(event.to_dict()))
        assert event_from_dict(wire) == event


# -- (c) orders -> validate_order / PaperBroker.submit ----------------------------------------
@st.composite
def _order(draw: st.DrawFn, n: list[int] = [0]) -> OrderSubmitted:  # noqa: B006
    n[0] += 1
    return OrderSubmitted(
        order_id=f"o{n[0]}",
        strategy="fuzz",
        symbol=draw(st.one_of(st.sampled_from(["AAPL", ""]), st.text(max_size=8))),
        side=draw(st.one_of(st.sampled_from(["buy", "sell"]), SCALARS)),  # type: ignore[arg-type]
        qty=draw(st.one_of(NUMBERS, SCALARS)),  # type: ignore[arg-type]
        order_type=draw(st.one_of(st.sampled_from(["market", "limit"]), SCALARS)),  # type: ignore[arg-type]
        limit_price=draw(st.one_of(st.none(), NUMBERS)),
        ts_event=T0,
    )


@MEDIUM
@given(orders=st.lists(_order(), min_size=1, max_size=8))
def test_bad_orders_are_rejected_with_a_reason_never_a_crash(orders: list[OrderSubmitted]) -> None:
    published: list[Event] = []
    broker = PaperBroker(published.append, ManualClock(T0), starting_cash=1e6)
    broker.on_tick(tick(1))
    for order in orders:
        reason = validate_order(order)
        accepted = broker.submit(order)
        assert accepted == (reason is None)
        answer = [
            e
            for e in published
            if isinstance(e, OrderAccepted | OrderRejected) and e.order_id == order.order_id
        ]
        assert len(answer) == 1
        if reason is not None:
            assert isinstance(answer[0], OrderRejected)
            field = reason.split(" ", 1)[0]
            assert field in ("symbol", "side", "qty", "order_type", "limit", "limit_price")
            assert field in answer[0].reason
        else:
            assert isinstance(answer[0], OrderAccepted)


# -- (e) config mappings -> parse_config -----------------------------------------------------
DEFAULT_CONFIG = SeamlessConfig().to_dict()


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, str(key)))
    return out


CONFIG_PATHS = _paths(DEFAULT_CONFIG)


@st.composite
def _mutated_config(draw: st.DrawFn) -> tuple[Any, tuple[str, ...]]:
    data = json.loads(json.dumps(DEFAULT_CONFIG))
    path = draw(st.sampled_from(CONFIG_PATHS))
    if draw(st.booleans()):
        path = (*path[:-1], draw(st.text(min_size=1, max_size=8)))  # an unknown key
    node = data
    for key in path[:-1]:
        if not isinstance(node, dict):
            break
        node = node.setdefault(key, {})
    if isinstance(node, dict):
        node[path[-1]] = draw(ANY)
    return data, path


@MEDIUM
@given(case=_mutated_config())
def test_config_errors_are_config_error_naming_the_key(case: tuple[Any, tuple[str, ...]]) -> None:
    data, path = case
    try:
        parse_config(data, env={})
    except ConfigError as exc:
        message = str(exc)
        # The message names the key path (or the top-level section it lives in).
        assert path[0] in message or ".".join(path) in message, (message, path)


@MEDIUM
@given(data=ANY)
def test_any_top_level_value_is_a_config_error_or_a_config(data: Any) -> None:
    try:
        config = parse_config(data, env={})
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(config, SeamlessConfig)


# -- (f) snapshot payloads -> state_from_dict / restore --------------------------------------
def _a_state() -> dict[str, Any]:
    events: list[Event] = [tick(i, symbol) for i, symbol in enumerate(["AAPL", "MSFT"] * 3)]
    events += [fill(i, side="buy") for i in range(3)]
    return model.state_to_dict(fold.replay([e.with_seq(n + 1) for n, e in enumerate(events)]))


STATE = _a_state()
STATE_PATHS = _paths(STATE)


@st.composite
def _mutated_state(draw: st.DrawFn) -> Any:
    data = json.loads(json.dumps(STATE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(STATE_PATHS))
        node = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(ANY)
    return data


@FAST
@given(data=st.one_of(_mutated_state(), ANY))
def test_state_from_dict_raises_only_snapshot_corrupted(data: Any) -> None:
    try:
        state = model.state_from_dict(data)
    except PersistenceError as exc:  # StateSchemaError < SnapshotCorrupted < PersistenceError
        assert str(exc)
        return
    assert isinstance(state, dict)


@pytest.fixture(scope="module")
def snapshot_log(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A log with 40 events and one good snapshot at seq 20."""
    path = Path(tmp_path_factory.mktemp("snap")) / "fuzz.duckdb"
    log = EventLog(path).open()
    for i in range(40):
        log.append(fill(i, side="buy" if i % 3 else "sell") if i % 4 == 0 else tick(i), wait=True)
    good = restore(log, upto_seq=20).state
    log.save_snapshot(20, model.SCHEMA_VERSION, model.state_to_dict(good))
    yield log
    log.close()


def _corrupt(text: str, draw: Any) -> str:
    kind = draw(st.sampled_from(["truncate", "flip", "replace", "json"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "flip":
        i = draw(st.integers(0, len(text) - 1))
        return text[:i] + chr((ord(text[i]) ^ (1 << draw(st.integers(0, 6)))) or 1) + text[i + 1 :]
    if kind == "replace":
        return json.dumps(draw(_mutated_state()), default=str)
    return json.dumps(draw(ANY), default=str)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_restore_skips_corrupted_snapshots_and_equals_full_replay(
    snapshot_log: EventLog, data: st.DataObject
) -> None:
    log = snapshot_log
    text = json.dumps(model.state_to_dict(restore(log, upto_seq=30).state))
    bad = _corrupt(text, data.draw)
    fix_checksum = data.draw(st.booleans())  # True: a "valid" checksum over corrupted content
    version = data.draw(st.sampled_from([model.SCHEMA_VERSION, 0, -1, 99]))
    checksum = hashlib.sha256(bad.encode()).hexdigest() if fix_checksum else "0" * 64
    try:
        with log._reader() as cur:
            cur.execute(
                "INSERT INTO snapshots (id, seq, created_at, schema_version, state, checksum) "
                "VALUES (9999, 30, 0, ?, ?, ?)",
                [version, bad, checksum],
            )
    except PersistenceError:
        return  # the state column is typed JSON: DuckDB itself refuses text that is not JSON
    try:
        result = restore(log)
        assert result.seq == 40
        assert result.snapshot_seq in (20, 30)
        if result.snapshot_seq == 30 and bad != text:
            # Only a well-formed state that claims seq 30 with a matching checksum can be
            # taken (a checksum is integrity, not authenticity): it must be valid state.
            assert fix_checksum and json.loads(bad)["meta"]["seq"] == 30
        else:
            assert result.state == full_replay(log)
    finally:
        with log._reader() as cur:
            cur.execute("DELETE FROM snapshots WHERE id = 9999")


def test_random_byte_flips_in_every_snapshot_still_restore(tmp_path: Path) -> None:
    """Every snapshot has a flipped digit: restore falls back to a full replay of the log."""
    rng = random.Random(6)
    with EventLog(tmp_path / "all_bad.duckdb").open() as log:
        for i in range(30):
            log.append(tick(i), wait=True)
            if i % 10 == 9:
                log.save_snapshot(
                    i + 1, model.SCHEMA_VERSION, model.state_to_dict(full_replay(log))
                )
        with log._reader() as cur:
            for snapshot_id, text in cur.execute("SELECT id, state FROM snapshots").fetchall():
                # One flipped digit: still JSON (the column is typed), no longer the same text.
                i = rng.choice([n for n, ch in enumerate(text) if ch.isdigit()])
                bad = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]
                cur.execute("UPDATE snapshots SET state = ? WHERE id = ?", [bad, snapshot_id])
        result = restore(log)
        assert result.snapshot_seq == 0 and len(result.skipped_snapshots) == 3
        assert result.state == full_replay(log)
