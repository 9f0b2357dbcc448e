"""The dashboard's seam to the engine (panel_app/facade.py): every name it re-exports exists
where it says, and a real running kernel has every member of :class:`EngineFacade`."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest

from panel_app import facade
from panel_app.facade import EngineFacade, EventLogReader, dashboard_config


@pytest.mark.parametrize("name", sorted(facade._EXPORTS))
def test_every_reexport_resolves(name: str) -> None:
    value = getattr(facade, name)
    if name in facade._MODULES:
        assert inspect.ismodule(value) and value.__name__ == facade._EXPORTS[name]
    else:
        assert getattr(value, "__module__", facade._EXPORTS[name]).startswith(
            facade._EXPORTS[name].partition(".")[0]
        )


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        facade.no_such_thing  # noqa: B018


def test_importing_the_dashboard_does_not_import_the_research_stack() -> None:
    code = (
        "import sys, panel_app.facade, panel_app.views.backtests;"
        "heavy = ('engine.backtest', 'engine.research.report');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _members(protocol: type) -> set[str]:
    return {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def test_a_running_kernel_has_the_facades_shape(kernel: Any) -> None:
    missing = sorted(name for name in _members(EngineFacade) if not hasattr(kernel, name))
    assert missing == []
    log_missing = sorted(n for n in _members(EventLogReader) if not hasattr(kernel.log, n))
    assert log_missing == []
    assert isinstance(kernel.runner.status, str)
    assert dict(kernel.host.strategies)  # the configured strategies, by name


def test_dashboard_config_defaults_without_a_section(kernel: Any) -> None:
    assert dashboard_config(kernel) is kernel.config.dashboard
    assert dashboard_config(None).chart_points == type(kernel.config.dashboard)().chart_points
