"""Extension points (engine/plugins.py): the built-ins resolve through entry points; plugins
installed as real distributions (a ``*.dist-info`` folder on the path, found by
importlib.metadata) run in ``seamless backtest``; broken ones are named, never crashed on."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import engine
from engine import feeds, plugins
from engine.brokers import build_broker
from engine.config import parse_config
from engine.notify import build_notifiers
from engine.strategies import SmaCrossover, ZScoreReversion
from engine.strategy_host import resolve_strategy_class
from streams.clock import ManualClock
from streams.errors import ConfigError, PluginError
from testkit.engine_process import SEAMLESS

HOLD_ONCE = '''
import param

from engine import BUY, BarReceived, Strategy


class HoldOnce(Strategy):
    """Buys ``qty`` on the first bar and holds it."""

    qty = param.Number(default=5.0, bounds=(0, None))

    def on_start(self, ctx):
        super().on_start(ctx)
        self._bought = False

    def on_bar(self, bar: BarReceived) -> None:
        if not self._bought:
            self._bought = True
            self.ctx.submit_order(bar.symbol, BUY, self.qty, reason="hold once")
'''

STEPS_FEED = '''
import dataclasses

import pandas as pd

from engine import FeedConfig, ReplayFeed, ReplayTable, load_replay_table


@dataclasses.dataclass(frozen=True)
class StepsFeed:
    """Replays daily bars whose closes are ``feed.options.closes``."""

    replay: bool = True

    def load(self, config: FeedConfig) -> ReplayTable:
        closes = [float(c) for c in config.options["closes"]]
        frame = pd.DataFrame({
            "timestamp": pd.date_range("2024-01-02", periods=len(closes), freq="1D"),
            "open": closes, "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes], "close": closes,
        })
        return load_replay_table(frame, kind="bars", symbol=config.symbols[0])

    def build(self, config, publish, clock, *, offer=None, table=None, resume_after_ns=None):
        return ReplayFeed(publish, clock, table or self.load(config), speed=None, loop=False,
                          source="steps", resume_after_ns=resume_after_ns)


STEPS = StepsFeed()
'''

FILE_NOTIFIER = '''
import json

from engine import ChannelConfig, ConfigError, Notifier, NotifierContext, parse_selector


class FileNotifier(Notifier):
    """Appends one JSON line per selected event to ``options.path``."""

    kind = "file_log"

    def __init__(self, channel, context, path):
        super().__init__(channel.name, [parse_selector(s) for s in channel.topics],
                         format="jsonl", engine_name=context.engine_name)
        self.path = path

    def send(self, event):
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"event_id": event.event_id, "text": self.text(event)}) + "\\n")


def file_log(channel: ChannelConfig, context: NotifierContext) -> Notifier:
    if "path" not in channel.options:
        raise ConfigError(f"{context.where}.path: a file_log channel needs a path, got none")
    return FileNotifier(channel, context, channel.options["path"])


def not_a_notifier(channel, context):
    return "a string"
'''


def _distribution(
    root: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]
) -> None:
    """A minimal installed distribution: what pip leaves in site-packages, without pip."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))


@pytest.fixture(scope="module")
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "hold_plugin.py").write_text(HOLD_ONCE)
    (root / "steps_plugin.py").write_text(STEPS_FEED)
    (root / "exploding_plugin.py").write_text("raise RuntimeError('plugin exploded on import')\n")
    (root / "misfit_plugin.py").write_text("NOT_A_STRATEGY = 42\n")
    (root / "file_notifier.py").write_text(FILE_NOTIFIER)
    _distribution(
        root,
        "good-plugin",
        "1.2.0",
        {
            "seamless.strategies": {"hold_once": "hold_plugin:HoldOnce"},
            "seamless.feeds": {"steps": "steps_plugin:STEPS"},
            "seamless.notifiers": {
                "file_log": "file_notifier:file_log",
                "stringly": "file_notifier:not_a_notifier",
            },
            "seamless.brokers": {"stringly_broker": "file_notifier:not_a_notifier"},
        },
    )
    _distribution(
        root,
        "broken-plugin",
        "0.0.1",
        {
            "seamless.strategies": {
                "exploding": "exploding_plugin:Anything",
                "misfit": "misfit_plugin:NOT_A_STRATEGY",
            },
            "seamless.feeds": {"exploding_feed": "exploding_plugin:FEED"},
            "seamless.notifiers": {"exploding_notifier": "exploding_plugin:factory"},
            "seamless.brokers": {"exploding_broker": "exploding_plugin:factory"},
        },
    )
    return root


@contextlib.contextmanager
def plugins_on_path(root: Path) -> Iterator[Path]:
    """The plugins in ``root`` on this process's path inside the block (entry points read
    afresh on the way in and out)."""
    sys.path.insert(0, str(root))
    plugins.clear_cache()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        plugins.clear_cache()


@pytest.fixture
def installed(plugin_root: Path) -> Iterator[Path]:
    """The plugins on this process's path for one test."""
    with plugins_on_path(plugin_root):
        yield plugin_root


def seamless(
    *args: str, cwd: Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [SEAMLESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def write_bars(path: Path, n: int = 40) -> Path:
    closes = [100.0 + (i % 9) for i in range(n)]
    pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02", periods=n, freq="1D"),
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
        }
    ).to_csv(path, index=False)
    return path


# -- built-ins ------------------------------------------------------------------------------------
def test_builtins_are_entry_points_of_the_project_itself() -> None:
    rows = {(r.group, r.name): r for r in plugins.list_plugins()}

    for group, name in [
        (plugins.STRATEGIES, "sma_crossover"),
        (plugins.STRATEGIES, "zscore"),
        (plugins.FEEDS, "sample"),
        (plugins.FEEDS, "websocket"),
    ]:
        row = rows[(group, name)]
        assert (row.distribution, row.loads, row.error) == ("seamless-trading", True, "")
    assert resolve_strategy_class("sma") is SmaCrossover
    assert resolve_strategy_class("zscore_reversion") is ZScoreReversion
    assert feeds.feed_kind("csv") is feeds.CSV
    assert feeds.feed_kind("synthetic").replay is False


def test_dotted_and_colon_paths_still_name_strategy_classes() -> None:
    assert resolve_strategy_class("engine.strategies.zscore.ZScoreReversion") is ZScoreReversion
    assert resolve_strategy_class("engine.strategies.zscore:ZScoreReversion") is ZScoreReversion


def test_unknown_names_are_refused_listing_what_is_installed() -> None:
    with pytest.raises(ConfigError, match=r"feed\.kind: expected an installed feed kind \(csv, "):
        parse_config({"feed": {"kind": "nope"}})
    with pytest.raises(ConfigError, match=r"strategies\[0\]: strategy: expected an installed"):
        parse_config({"strategies": [{"name": "s", "strategy": "nope", "symbols": ["AAPL"]}]})
    with pytest.raises(PluginError, match=r"no seamless.feeds entry point named 'nope'"):
        plugins.load(plugins.FEEDS, "nope")


def test_the_public_api_resolves_every_name_it_lists() -> None:
    from engine import BUY, SELL, Strategy

    assert (BUY, SELL) == ("buy", "sell")
    assert Strategy is SmaCrossover.__mro__[1]
    assert all(getattr(engine, name) is not None for name in engine.__all__)
    with pytest.raises(AttributeError):
        engine.NoSuchName  # noqa: B018


def test_importing_engine_imports_no_engine_module() -> None:
    code = "import sys, engine; print(sorted(m for m in sys.modules if m.startswith('engine.')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- installed plugins, in this process ------------------------------------------------------------
def test_plugin_names_are_accepted_by_the_config(installed: Path) -> None:
    config = parse_config(
        {
            "feed": {"kind": "steps", "symbols": ["AAPL"], "options": {"closes": [1, 2, 3]}},
            "strategies": [{"name": "h", "strategy": "hold_once", "symbols": ["AAPL"]}],
        }
    )

    assert feeds.is_replay(config.feed)
    table: Any = feeds.replay_table(config.feed)
    assert table.count == 3


def test_a_broken_plugin_error_names_entry_point_distribution_and_cause(installed: Path) -> None:
    with pytest.raises(PluginError) as raised:
        resolve_strategy_class("exploding")
    message = str(raised.value)
    assert "seamless.strategies entry point 'exploding'" in message
    assert "broken-plugin 0.0.1" in message
    assert "RuntimeError: plugin exploded on import" in message

    with pytest.raises(PluginError, match=r"'misfit'.*does not satisfy its protocol.*Strategy"):
        resolve_strategy_class("misfit")


# -- installed plugins, real processes -------------------------------------------------------------
def test_seamless_plugins_lists_broken_plugins_with_their_cause(plugin_root: Path) -> None:
    result = seamless("plugins", "--json", cwd=plugin_root, pythonpath=plugin_root)

    assert result.returncode == 0, result.stderr
    rows = {(r["group"], r["name"]): r for r in json.loads(result.stdout)}
    good = rows[("seamless.strategies", "hold_once")]
    assert (good["distribution"], good["version"], good["loads"]) == ("good-plugin", "1.2.0", True)
    assert rows[("seamless.feeds", "steps")]["loads"] is True
    broken = rows[("seamless.feeds", "exploding_feed")]
    assert (broken["distribution"], broken["loads"]) == ("broken-plugin", False)
    assert "plugin exploded on import" in broken["error"]
    assert rows[("seamless.strategies", "misfit")]["loads"] is False
    assert rows[("seamless.strategies", "sma")]["loads"] is True

    text = seamless("plugins", cwd=plugin_root, pythonpath=plugin_root).stdout
    assert "exploding_feed" in text and "BROKEN: " in text
    assert text.strip().splitlines()[-1].endswith("5 broken")


def test_a_plugin_strategy_runs_in_seamless_backtest(tmp_path: Path, plugin_root: Path) -> None:
    data = write_bars(tmp_path / "bars.csv")

    result = seamless(
        "backtest", "--data", str(data), "--symbol", "AAPL", "--strategy", "hold_once",
        "--param", "qty=7", "--json", cwd=tmp_path, pythonpath=plugin_root,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["strategy"], summary["bars"], summary["fills"]) == ("hold_once", 40, 1)


def test_a_plugin_feed_and_strategy_run_from_a_config(tmp_path: Path, plugin_root: Path) -> None:
    config = tmp_path / "seamless.yaml"
    config.write_text(
        textwrap.dedent(
            """
            feed: {kind: steps, symbols: [AAPL], options: {closes: [10, 11, 12, 13, 14]}}
            strategies: [{name: holder, strategy: hold_once, symbols: [AAPL]}]
            """
        )
    )

    result = seamless("backtest", "--config", str(config), "--json", cwd=tmp_path,
                      pythonpath=plugin_root)  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["bars"], summary["fills"]) == (5, 1)


@pytest.mark.parametrize(
    ("section", "entry_point"),
    [
        (
            {"strategies": [{"name": "x", "strategy": "exploding", "symbols": ["AAPL"]}]},
            "'exploding'",
        ),
        ({"feed": {"kind": "exploding_feed", "symbols": ["AAPL"]}}, "'exploding_feed'"),
        ({"notify": {"channels": [{"kind": "exploding_notifier"}]}}, "'exploding_notifier'"),
        ({"broker": {"kind": "exploding_broker"}}, "'exploding_broker'"),
    ],
)
def test_a_configured_broken_plugin_stops_start_up_naming_it(
    tmp_path: Path, plugin_root: Path, section: dict[str, Any], entry_point: str
) -> None:
    db = tmp_path / "run.duckdb"
    config = tmp_path / "seamless.yaml"
    config.write_text(
        json.dumps({"storage": {"db_path": str(db)}, "feed": {"kind": "none"}} | section)
    )

    result = seamless("run", "--config", str(config), cwd=tmp_path, pythonpath=plugin_root)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in ("seamless run: error:", entry_point, "broken-plugin 0.0.1", "plugin exploded"):
        assert part in lines[0]
    assert not db.exists()  # refused before the event log was opened


def test_a_broken_plugin_strategy_stops_a_backtest_naming_it(
    tmp_path: Path, plugin_root: Path
) -> None:
    data = write_bars(tmp_path / "bars.csv")

    result = seamless("backtest", "--data", str(data), "--symbol", "AAPL", "--strategy", "misfit",
                      cwd=tmp_path, pythonpath=plugin_root)  # fmt: skip

    assert result.returncode == 1
    assert "seamless.strategies entry point 'misfit'" in result.stderr
    assert "broken-plugin 0.0.1" in result.stderr
    assert "expected a subclass of engine.Strategy, got int" in result.stderr


def test_an_unselected_broken_plugin_affects_nothing(tmp_path: Path, plugin_root: Path) -> None:
    data = write_bars(tmp_path / "bars.csv")

    result = seamless(
        "backtest", "--data", str(data), "--symbol", "AAPL", "--strategy", "sma",
        "--param", "fast=2", "--param", "slow=5", "--json", cwd=tmp_path, pythonpath=plugin_root,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bars"] == 40


# -- notifiers ------------------------------------------------------------------------------------
def test_notify_channels_build_built_in_kinds_through_their_entry_points() -> None:
    config = parse_config(
        {
            "notify": {
                "webhooks": [{"url": "https://a.example/hook"}],
                "channels": [
                    {
                        "kind": "webhook",
                        "options": {"url": "https://b.example/x", "format": "slack"},
                    }
                ],
            }
        }
    )

    notifiers = build_notifiers(config, env={})

    assert [(n.kind, n.name, n.target, n.format) for n in notifiers] == [
        ("webhook", "webhook-1", "https://a.example", "json"),
        ("webhook", "webhook-2", "https://b.example", "slack"),
    ]


def test_bad_notify_channels_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"notify.channels\[0\]: kind: expected an installed"):
        parse_config({"notify": {"channels": [{"kind": "carrier_pigeon"}]}})
    bad_format = {"kind": "webhook", "options": {"url": "https://b.example", "format": "xml"}}
    config = parse_config({"notify": {"channels": [bad_format]}})
    with pytest.raises(ConfigError, match=r"notify.channels\[0\].options.format: expected one"):
        build_notifiers(config, env={})
    telegram = {"kind": "telegram", "options": {"chat_id": 5, "token_env": "NO_SUCH_TOKEN_VAR"}}
    config = parse_config({"notify": {"channels": [telegram]}})
    with pytest.raises(ConfigError, match=r"options.token_env: environment variable NO_SUCH_TO"):
        build_notifiers(config, env={})


def test_a_plugin_notifier_that_returns_no_notifier_is_named(installed: Path) -> None:
    config = parse_config({"notify": {"channels": [{"kind": "stringly", "name": "s"}]}})

    with pytest.raises(PluginError, match=r"'stringly'.*good-plugin 1.2.0.*returned str"):
        build_notifiers(config, env={})


def test_a_plugin_notifier_is_told_of_the_fills_of_seamless_run(
    tmp_path: Path, plugin_root: Path
) -> None:
    data = write_bars(tmp_path / "bars.csv", n=10)
    sent = tmp_path / "sent.jsonl"
    config = {
        "storage": {"db_path": str(tmp_path / "run.duckdb")},
        "feed": {"kind": "csv", "path": str(data), "symbols": ["AAPL"], "loop": False, "speed": 0},
        "strategies": [{"name": "holder", "strategy": "hold_once", "symbols": ["AAPL"]}],
        "notify": {
            "channels": [{"kind": "file_log", "name": "audit", "options": {"path": str(sent)}}]
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config))

    result = seamless("run", "--config", str(path), cwd=tmp_path, pythonpath=plugin_root)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in sent.read_text().splitlines()]
    fills = [line for line in lines if " fill: BUY 5 AAPL" in line["text"]]
    assert len(fills) == 1, lines


# -- brokers --------------------------------------------------------------------------------------
def test_a_plugin_broker_that_builds_no_broker_is_named(installed: Path) -> None:
    config = parse_config({"broker": {"kind": "stringly_broker"}})

    with pytest.raises(PluginError, match=r"broker.kind: .*'stringly_broker'.*good-plugin 1.2.0"):
        build_broker(config, print, ManualClock())
