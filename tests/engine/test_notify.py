"""Notifications from the committed log: config validation (every bad key named), the
selectors, the formats (json, slack, Telegram's sendMessage against a fake Bot API), the
durable cursor across restarts, and a dead endpoint that never slows trading and gets the
backlog once it is back. The SIGKILL scenario on the real CLI is tests/engine/test_notify_crash.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import parse_config
from engine.config.notify import DEFAULT_TOPICS, parse_selector
from engine.kernel import Kernel, Mode
from engine.notify import CursorFile, summarize
from engine.notify.base import _retry_after
from panel_app.views.live_panes import status_html
from persistence import EventLog
from streams.errors import ConfigError
from streams.events import (
    ErrorRaised,
    Event,
    Heartbeat,
    RunnerStatusChanged,
    TradeExecuted,
    TradingStateChanged,
)
from testkit.engine_process import SEAMLESS, env
from tests.engine.notify_receiver import Receiver, free_port
from tests.engine.test_kernel import buy_ten, kernel_config

FAST_RETRY = {"retry_initial_s": 0.05, "retry_max_s": 0.3, "poll_interval_s": 0.05}


def notify_config(tmp_path: Path, notify: dict[str, Any], **sections: Any) -> Any:
    return kernel_config(tmp_path, notify={**FAST_RETRY, **notify}, **sections)


def selected(db: Path, selectors: tuple[str, ...] = DEFAULT_TOPICS) -> list[Event]:
    """Every committed event of ``db`` a channel with ``selectors`` must be sent."""
    parsed = [parse_selector(s) for s in selectors]
    with EventLog(db) as log:
        return [e for e in log.read() if any(s.matches(e) for s in parsed)]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("notify", "message"),
    [
        (
            {"webhooks": [{"url": "ftp://example.com/x"}]},
            "notify.webhooks[0]: url: expected an http:// or https:// URL with a host, "
            "got 'ftp://example.com/x'",
        ),
        ({"webhooks": [{"url": "http:///path"}]}, "notify.webhooks[0]: url: expected an http"),
        ({"webhooks": [{"url": "http://host:99999/"}]}, "notify.webhooks[0]: url: malformed URL"),
        ({"webhooks": [{}]}, "notify.webhooks[0]: url: expected an http"),
        (
            {"webhooks": [{"url": "https://a.example", "topics": ["fills.*", "fills..x"]}]},
            "notify.webhooks[0]: topics[1]: 'fills..x': topic pattern 'fills..x' has invalid "
            "segment ''",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "topics": ["risk:no_such_event"]}]},
            "notify.webhooks[0]: topics[0]: 'risk:no_such_event': unknown event type",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "topics": ["system.runner[status=x]"]}]},
            "needs event types",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "topics": ["risk:heartbeat[nope=1]"]}]},
            "event type 'heartbeat' has no field 'nope'",
        ),
        ({"webhooks": [{"url": "https://a.example", "topics": []}]}, "topics: expected at least"),
        (
            {"webhooks": [{"url": "https://a.example", "format": "xml"}]},
            "notify.webhooks[0].format: expected one of 'json', 'slack', got 'xml'",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "headers": {"Bad Name": "x"}}]},
            "notify.webhooks[0]: headers.Bad Name: not a valid HTTP header",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "headers": {"X-A": "1\r\nX-B: 2"}}]},
            "headers.X-A: not a valid HTTP header",
        ),
        (
            {
                "webhooks": [
                    {"url": "https://a.example", "name": "a"},
                    {"url": "https://b.example", "name": "a"},
                ]
            },
            "notify: webhooks: channel name 'a' is used twice",
        ),
        (
            {"webhooks": [{"url": "https://a.example", "name": "Bad/Name"}]},
            "notify.webhooks[0]: name",
        ),
        (
            {"telegram": {"chat_id": 42, "topics": ["risk", "*.>.x"]}},
            "notify.telegram: topics[1]: '*.>.x': topic pattern '*.>.x': '>' must be the last",
        ),
        ({"telegram": {"chat_id": 42, "api_url": "telegram"}}, "notify.telegram: api_url:"),
        ({"telegram": {"chat_id": 42, "token_env": "not a name"}}, "notify.telegram: token_env"),
        ({"poll_interval_s": 0}, "notify.poll_interval_s: expected a value >= 0.01"),
        ({"webhook": []}, "unknown config key notify.webhook"),
    ],
)
def test_bad_notify_config_is_refused_naming_the_key(notify: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"notify": notify}, env={})
    assert message in str(info.value)


def test_a_missing_telegram_token_variable_is_refused_at_start_up_before_the_log_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEAMLESS_TELEGRAM_TOKEN", raising=False)
    config = notify_config(tmp_path, {"telegram": {"chat_id": "-100"}})
    with pytest.raises(ConfigError) as info:
        Kernel.from_config(config)
    assert "notify.telegram.token_env: environment variable SEAMLESS_TELEGRAM_TOKEN is not set" in (
        str(info.value)
    )
    assert not Path(config.storage.db_path).exists()


def test_seamless_run_names_the_missing_token_variable(tmp_path: Path) -> None:
    config = {
        "storage": {"db_path": str(tmp_path / "run.duckdb")},
        "feed": {"kind": "none"},
        "notify": {"telegram": {"chat_id": 7, "token_env": "MY_BOT_TOKEN_FOR_TESTS"}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [SEAMLESS, "run", "--config", str(path)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "environment variable MY_BOT_TOKEN_FOR_TESTS is not set" in result.stderr


def test_backtests_and_unconfigured_engines_build_no_notifiers(tmp_path: Path) -> None:
    hook = {"webhooks": [{"url": "http://127.0.0.1:9/x"}]}
    assert Kernel(notify_config(tmp_path, hook), mode=Mode.BACKTEST).notifications is None
    with Kernel.from_config(kernel_config(tmp_path)) as kernel:
        assert kernel.notifications is None
        assert "notify" not in kernel.health()


# -- selectors and texts -----------------------------------------------------------------------
def test_the_default_selectors_take_fills_risk_runner_halts_and_errors() -> None:
    chosen = [parse_selector(s) for s in DEFAULT_TOPICS]

    def picked(event: Event) -> bool:
        return any(s.matches(event) for s in chosen)

    fill = TradeExecuted(
        fill_id="f", order_id="o", strategy="sma", symbol="AAPL", side="buy", qty=10, price=101
    )
    assert picked(fill)
    assert picked(TradingStateChanged(state="halted", previous="active", actor="risk"))
    assert picked(RunnerStatusChanged(component="runner", status="halted", previous="running"))
    assert picked(RunnerStatusChanged(component="runner", status="faulted", previous="running"))
    assert not picked(RunnerStatusChanged(component="runner", status="running", previous="x"))
    assert not picked(Heartbeat(component="runner"))
    assert picked(ErrorRaised(component="feed", message="boom"))
    assert summarize(fill, "paper") == "[paper] fill: BUY 10 AAPL @ 101.0000 (sma, seq 0)"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_the_status_line_shows_a_badge_for_failing_or_lagging_channels() -> None:
    common: dict[str, Any] = {
        "runner_status": "running",
        "trading": {"state": "active"},
        "beat_age": 0.5,
        "data_age": 0.1,
        "reasons": [],
    }
    assert "notify-lag" not in status_html(**common)
    text = status_html(**common, notify=["webhook-1 failing (3x)"])
    assert 'data-testid="notify-lag"' in text and "webhook-1 failing (3x)" in text


# -- delivery ----------------------------------------------------------------------------------
def test_webhook_json_and_slack_get_each_selected_event_with_its_idempotency_key(
    tmp_path: Path,
) -> None:
    with Receiver() as json_rx, Receiver(fail_first=2) as slack_rx:
        config = notify_config(
            tmp_path,
            {
                "webhooks": [
                    {"url": json_rx.url + "/hook", "headers": {"Authorization": "Bearer t"}},
                    {"url": slack_rx.url + "/slack", "format": "slack", "name": "slack"},
                ]
            },
        )
        with Kernel.from_config(config) as kernel:
            buy_ten(kernel)
            kernel.command("halt", "operator", reason="test halt")
            assert kernel.bus.join(10)
            assert kernel.notifications is not None
            assert kernel.notifications.wait_caught_up(10)
            health = kernel.health()["notify"]
        wanted = selected(Path(config.storage.db_path))

    types = [e.type for e in wanted]
    assert "trade_executed" in types and "runner_status_changed" in types
    assert "trading_state_changed" in types
    posted = json_rx.received()
    assert [r["body"]["event_id"] for r in posted] == [e.event_id for e in wanted]
    for request, event in zip(posted, wanted, strict=True):
        assert request["path"] == "/hook"
        assert request["headers"]["Idempotency-Key"] == event.event_id
        assert request["headers"]["Authorization"] == "Bearer t"
        assert request["headers"]["X-Seamless-Seq"] == str(event.seq)
        body = dict(request["body"])
        assert body.pop("text") == summarize(event, "seamless-paper")
        assert body == event.to_dict()
    fill = next(r["body"] for r in posted if r["body"]["type"] == "trade_executed")
    assert fill["text"].startswith("[seamless-paper] fill: BUY 10 AAPL @ 101.0000")
    halted = next(r["body"] for r in posted if r["body"]["type"] == "runner_status_changed")
    assert halted["status"] == "halted"

    slack = slack_rx.received()
    assert slack_rx.refused == 2  # retried, then delivered
    assert [r["headers"]["Idempotency-Key"] for r in slack] == [e.event_id for e in wanted]
    assert all(set(r["body"]) == {"text"} for r in slack)
    assert health["slack"]["failures"] == 2 and health["slack"]["status"] == "ok"
    assert health["webhook-1"]["delivered"] == len(wanted)
    assert health["webhook-1"]["target"] == json_rx.url  # never the path (it may be a secret)


def test_telegram_sends_message_with_chat_id_and_text_to_the_bot_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAMLESS_TELEGRAM_TOKEN", "123:secret")
    with Receiver() as bot:
        config = notify_config(
            tmp_path, {"telegram": {"chat_id": -1001, "api_url": bot.url, "topics": ["fills.*"]}}
        )
        with Kernel.from_config(config) as kernel:
            buy_ten(kernel)
            assert kernel.notifications is not None
            assert kernel.notifications.wait_caught_up(10)
            health = kernel.health()["notify"]["telegram"]
        fills = selected(Path(config.storage.db_path), ("fills.*",))

    sent = bot.received()
    assert len(sent) == len(fills) == 1
    assert sent[0]["path"] == "/bot123:secret/sendMessage"
    assert sent[0]["body"]["chat_id"] == -1001
    assert sent[0]["body"]["text"].startswith("[seamless-paper] fill: BUY 10 AAPL @ 101.0000")
    assert "secret" not in str(health) and health["kind"] == "telegram"


def test_the_cursor_survives_a_restart_and_a_new_channel_is_not_sent_the_history(
    tmp_path: Path,
) -> None:
    with Kernel.from_config(kernel_config(tmp_path)) as kernel:  # no channel yet
        buy_ten(kernel)
    with Receiver() as rx:
        config = notify_config(tmp_path, {"webhooks": [{"url": rx.url, "topics": ["fills.*"]}]})
        for _ in range(2):
            with Kernel.from_config(config) as kernel:
                buy_ten(kernel)
                assert kernel.notifications is not None
                assert kernel.notifications.wait_caught_up(10)
        fills = selected(Path(config.storage.db_path), ("fills.*",))
    assert len(fills) == 3
    assert [r["body"]["event_id"] for r in rx.received()] == [e.event_id for e in fills[1:]]
    cursor = CursorFile(Path(f"{config.storage.db_path}.notify-webhook-1.json"), "webhook-1")
    with EventLog(config.storage.db_path) as log:
        assert cursor.load() == log.last_seq  # a clean stop saved everything it skipped


def test_a_dead_endpoint_never_slows_trading_and_gets_the_backlog_when_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens: every POST is refused
    rate = 400.0
    config = notify_config(
        tmp_path,
        {
            "webhooks": [{"url": f"http://127.0.0.1:{port}/h", "topics": ["fills.*", "risk"]}],
            "lag_warn_s": 1.0,
        },
        feed={"kind": "synthetic", "symbols": ["AAPL"], "rate": rate, "seed": 5},
    )
    kernel = Kernel.from_config(config).start()
    try:
        assert kernel.notifications is not None
        feed = kernel.runner.feed
        assert feed is not None
        start_seq, published, t0 = kernel.log.committed_seq, feed.published, time.monotonic()
        time.sleep(3.0)
        fills = kernel.log.count(since_seq=start_seq, topic="fills.*")
        published, elapsed = feed.published - published, time.monotonic() - t0
        health = kernel.health()
        channel = health["notify"]["webhook-1"]
        # trading went on: the feed kept its pace (nothing pushed back on it), the engine kept
        # up with it and committed fills
        assert published >= 0.6 * rate * elapsed, (published, elapsed)
        assert health["bus"]["blocked_puts"] == 0 and health["bus"]["queue_depth"] < 5_000
        assert fills > 5
        # and the channel's lag is visible
        assert channel["status"] == "failing" and channel["consecutive_failures"] > 1
        assert channel["delivered"] == 0 and channel["pending"] >= 1
        assert channel["lag_seq"] > 0 and channel["oldest_undelivered_age_s"] > 1.0
        assert "Connection refused" in channel["last_error"]
        assert kernel.notifications.alerts() == [
            f"webhook-1 failing ({channel['consecutive_failures']}x)"
        ]
        with Receiver(port) as rx:  # the endpoint comes back: the backlog is delivered
            wait_for(lambda: kernel.health()["notify"]["webhook-1"]["delivered"] > fills, 20)
            kernel.command("pause", "operator")
            assert kernel.bus.join(10)
            assert kernel.notifications.wait_caught_up(20)
            channel = kernel.health()["notify"]["webhook-1"]
            assert channel["status"] == "ok" and channel["consecutive_failures"] == 0
            wanted = {e.event_id for e in kernel.log.read(topic="fills.*")}
            wanted |= {e.event_id for e in kernel.log.read(topic="risk")}
            assert wanted <= rx.unique_ids()
    finally:
        kernel.stop()


def test_the_operations_guide_example_is_a_valid_config() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    example = text[text.index("## Notifications") :].split("```yaml\n")[1].split("```")[0]
    config = parse_config(yaml.safe_load(example), env={})
    assert config.notify.channel_names() == ["webhook-1", "slack", "telegram"]
