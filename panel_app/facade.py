"""What the dashboard needs of the engine: a structural type of ``engine.kernel.Kernel``.

The dashboard depends on this shape only, so views and tests can be given any object that
has it (the real kernel in production and in browser tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.config import DashboardConfig


class EngineFacade(Protocol):
    """The public face of one running engine (see ``engine.kernel.Kernel``)."""

    config: Any
    bus: Any
    store: Any
    log: Any
    runner: Any
    host: Any

    def command(self, command: str, actor: str, **args: Any) -> Any: ...
    def health(self) -> Mapping[str, Any]: ...


def dashboard_config(kernel: Any) -> DashboardConfig:
    """The kernel's ``dashboard`` config section, or the defaults when it has none."""
    section = getattr(getattr(kernel, "config", None), "dashboard", None)
    return section if isinstance(section, DashboardConfig) else DashboardConfig()
