"""The Backtests tab's parameter-search card: lists the study files of the results folder
(newest first), offers a study's parameters as axes and draws its heatmap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bokeh.models import GlyphRenderer

from engine.research.studies import studies_dir, study_file, write_json
from panel_app.views.studies import StudiesView


def _study(name: str, values: dict[tuple[int, int], float], best: int) -> dict[str, Any]:
    table = [
        {"number": i, "params": {"fast": f, "slow": s}, "value": v, "state": "COMPLETE"}
        for i, ((f, s), v) in enumerate(values.items())
    ]
    refused = {"fast": 9, "slow": 5}
    why = "fast (9) must be smaller than slow (5)"
    table.append(
        {"number": len(table), "params": refused, "value": None, "state": "FAIL", "refused": why}
    )
    return {
        "kind": "optimize",
        "study": name,
        "strategy": "sma_crossover",
        "symbol": "AAPL",
        "data": "sample",
        "objective": "net_pnl",
        "direction": "maximize",
        "space": {"fast": {"kind": "int", "low": 2, "high": 9}, "slow": {"kind": "int"}},
        "best_params": table[best]["params"],
        "best_value": table[best]["value"],
        "best_trial": best,
        "trials": len(table),
        "complete": len(table) - 1,
        "sampler": "grid",
        "table": table,
    }


def test_lists_studies_newest_first_and_draws_the_chosen_one(tmp_path: Path) -> None:
    old = write_json(study_file(tmp_path, "old"), _study("old", {(2, 10): 1.0}, 0))
    os.utime(old, (1_000_000, 1_000_000))
    values = {(2, 10): 5.0, (3, 10): 7.0, (2, 20): -1.0, (3, 20): 2.0}
    write_json(study_file(tmp_path, "new"), _study("new", values, 1))
    (tmp_path / "new.walkforward.json").write_text("{}")  # not a study: not listed

    view = StudiesView(tmp_path)
    assert list(view.study.options) == ["new", "old"]
    assert view.payload["study"] == "new"  # the newest is shown
    assert (view.x.value, view.y.value) == ("fast", "slow")
    assert "best net_pnl 7 at trial #1: fast=3, slow=10" in view.info.object
    fig = view.plot.object
    cells = [r for r in fig.renderers if isinstance(r, GlyphRenderer)]
    assert len(cells[0].data_source.data["value"]) == 4  # the failed trial is not a cell
    assert list(fig.x_range.factors) == ["2", "3"] and list(fig.y_range.factors) == ["10", "20"]

    view.x.value = "slow"  # any two parameters, either way round
    view.y.value = "fast"
    assert list(view.plot.object.x_range.factors) == ["10", "20"]
    view.study.value = str(old)
    assert view.payload["study"] == "old"


def test_an_empty_folder_says_how_to_fill_it(tmp_path: Path) -> None:
    view = StudiesView(tmp_path / "none")
    assert "seamless optimize" in view.info.object and view.plot.object is None
    write_json(study_file(tmp_path / "none", "first"), _study("first", {(2, 10): 1.0}, 0))
    view.scan()  # "Refresh"
    assert view.payload["study"] == "first" and view.plot.object is not None


def test_the_folder_is_beside_the_engines_log() -> None:
    from engine.config import SeamlessConfig, StorageConfig

    config = SeamlessConfig(storage=StorageConfig(db_path="/srv/seamless/live.duckdb"))
    assert studies_dir(config) == Path("/srv/seamless/studies")
    assert studies_dir() == Path("data/runtime/studies")
