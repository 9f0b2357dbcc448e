"""The dashboard's one seam to the engine: a typed facade, and what else it uses of ``engine``.

Every other ``panel_app`` module imports from the engine only this module and
``engine.config`` (``tests/test_style.py`` enforces it, and that nothing in ``panel_app``
imports ``persistence``). Two kinds of names live here:

- :class:`EngineFacade`: the structural type of a running engine as the dashboard sees it
  (typed bus, store, event log and commands). ``engine.kernel.Kernel`` and the read-only
  ``engine.mirror.Mirror`` both have this shape; views and tests can be given any object that
  has it.
- The engine functions the dashboard calls (access control, supervision, backtests, studies,
  plugins), re-exported here so the seam is one list. They resolve on first use (PEP 562), so
  importing the dashboard does not import the research stack, and a page that never runs a
  backtest never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from engine.config import DashboardConfig, SeamlessConfig

if TYPE_CHECKING:
    from engine.kernel import Authorizer
    from state.journal import EventLogReader
    from state.store import StateStore
    from streams.bus import EventBus
    from streams.events import CommandIssued


class RunnerView(Protocol):
    """The live strategy runner's state the dashboard shows."""

    @property
    def status(self) -> str: ...


class HostView(Protocol):
    """The strategy host's running strategies, by name (their live params are edited)."""

    @property
    def strategies(self) -> Mapping[str, Any]: ...


class ClusterReader(Protocol):
    """A mirror's view of every book of a cluster (``kernel.cluster`` of ``serve --mirror``)."""

    def summary(self) -> list[dict[str, Any]]: ...


class EngineFacade(Protocol):
    """One running engine, as the dashboard uses it (``engine.kernel.Kernel`` has this shape).

    Members are read-only properties so that an engine whose members are subtypes (a mirror's
    replica log, a runner of its own) still fits.
    """

    @property
    def config(self) -> SeamlessConfig: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def log(self) -> EventLogReader: ...

    @property
    def runner(self) -> RunnerView: ...

    @property
    def host(self) -> HostView: ...

    def command(self, command: str, actor: str, **args: Any) -> CommandIssued:
        """Publish an audited ``command_issued`` (the engine checks the actor may issue it)."""
        ...

    def health(self) -> dict[str, Any]:
        """The health report behind ``/api/health`` and ``/readyz``."""
        ...

    def set_authorizer(self, authorize: Authorizer | None) -> None:
        """Install who may issue which command (the dashboard's access gate)."""
        ...

    def stop(self, how: str = ...) -> None:
        """Stop the engine: final snapshot, run marked ended."""
        ...


def dashboard_config(engine: EngineFacade | None) -> DashboardConfig:
    """The engine's ``dashboard`` config section, or the defaults when it has none."""
    section = getattr(getattr(engine, "config", None), "dashboard", None)
    return section if isinstance(section, DashboardConfig) else DashboardConfig()


def start_engine(config: SeamlessConfig, *, mirror: bool = False) -> EngineFacade:
    """Build and start the engine a dashboard server serves: ``Kernel.from_config`` or, with
    ``mirror``, a read-only mirror of the shared log (``seamless serve --mirror``)."""
    if mirror:
        from engine.cluster import start_cluster_mirror

        return start_cluster_mirror(config)
    from engine.kernel import Kernel

    return Kernel.from_config(config).start()


#: Re-exported name -> the module that defines it today (resolved on first use).
_EXPORTS = {
    "engine_cli": "engine.cli",
    "plugins": "engine.plugins",
    "DEV_MODE_WARNING": "engine.access",
    "AccessDirectory": "engine.access",
    "Identity": "engine.access",
    "authorize_command": "engine.access",
    "make_authorizer": "engine.access",
    "resolve_cookie_secret": "engine.access",
    "run_backtest": "engine.backtest",
    "tune_process": "engine.process_tuning",
    "METRIC_KEYS": "engine.research.metrics",
    "METRIC_LABELS": "engine.research.metrics",
    "format_metric": "engine.research.metrics",
    "report_html": "engine.research.report",
    "heatmap": "engine.research.studies",
    "list_studies": "engine.research.studies",
    "read_json": "engine.research.studies",
    "searched_params": "engine.research.studies",
    "studies_dir": "engine.research.studies",
    "check_params": "engine.strategy_host",
    "resolve_strategy_class": "engine.strategy_host",
    "STARTING": "engine.supervision",
    "ProbeStatus": "engine.supervision",
    "Supervisor": "engine.supervision",
    "engine_status": "engine.supervision",
    "view_changes": "state.read_model",
    "StateStore": "state.store",
    "EventLogReader": "state.journal",
    "EventBus": "streams.bus",
}
#: Names that are modules themselves (``from engine import cli as engine_cli``).
_MODULES = {"engine_cli", "plugins"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name in _MODULES else getattr(loaded, name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
