"""The documentation's examples run: code in docs/ that claims behaviour is executed here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_strategy_guide_marble_example_passes() -> None:
    blocks = [b for b in _python_blocks(ROOT / "docs" / "strategies.md") if "marbles_testing" in b]
    assert blocks, "the marble example disappeared from docs/strategies.md"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "docs/strategies.md", "exec"), namespace)
    test = namespace["test_throttled_price_view_keeps_the_latest"]
    assert callable(test)
    test()


def test_strategy_guide_breakout_example_trades_in_a_backtest() -> None:
    import pandas as pd

    from engine.backtest import run_backtest

    source = next(
        b for b in _python_blocks(ROOT / "docs" / "strategies.md") if "class Breakout" in b
    )
    namespace: dict[str, object] = {"__name__": "docs_breakout"}
    exec(compile(source, "docs/strategies.md", "exec"), namespace)
    import sys
    import types

    module = types.ModuleType("docs_breakout")
    module.__dict__.update(namespace)
    sys.modules["docs_breakout"] = module
    closes = [10, 10, 10, 11, 12, 13, 12, 11, 9, 8, 8, 8]
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC"),
            "open": closes,
            "high": [c + 0.5 for c in closes],
            "low": [c - 0.5 for c in closes],
            "close": closes,
        }
    )
    result = run_backtest(
        frame, strategy="docs_breakout.Breakout", symbol="AAPL", params={"lookback": 3}
    )
    assert result.round_trips == 1
    assert result.fills == 2


def test_configuration_reference_is_current() -> None:
    from engine.config.docs import render

    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: run python -m engine.config.docs > docs/configuration.md"
    )


def test_default_config_file_restates_the_embedded_defaults() -> None:
    from engine.config import load_config

    assert load_config(ROOT / "config" / "config.yaml", env={}) == load_config(None, env={})


def test_default_config_file_is_generated_from_the_code() -> None:
    from engine.config.docs import render_yaml

    assert (ROOT / "config" / "config.yaml").read_text() == render_yaml(), (
        "config/config.yaml is stale: run python -m engine.config.docs --yaml > config/config.yaml"
    )


MAPPED_PACKAGES = ("streams", "state", "persistence", "engine", "panel_app", "testkit", "bench")


def test_architecture_module_map_matches_the_tree() -> None:
    """docs/architecture.md lists every module of the packages, and only modules that exist."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([\w/]+\.py)`: \S", section, flags=re.MULTILINE))
    on_disk = {
        path.relative_to(ROOT).as_posix()
        for package in MAPPED_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(on_disk - listed) == [], "modules missing from the map"
    assert sorted(listed - on_disk) == [], "the map names modules that do not exist"
