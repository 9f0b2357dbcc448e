"""One engine per dashboard server process, however many sessions (and ``--dev`` reloads).

The engine is built lazily by the first session that asks for it, under a lock, and kept in
a holder registered in ``sys.modules`` under a private name: Panel's autoreload re-executes
``app.py`` and reloads changed project modules, but never touches that holder, so a reload
finds the running engine instead of opening the DuckDB file a second time. The engine is
stopped once (snapshot written, run marked ended) at interpreter exit, on SIGTERM, or when
:func:`shutdown_engine` is called by the server or a test.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_HOLDER_NAME = "_seamless_dashboard_engine_holder"
CONFIG_ENV = "SEAMLESS_CONFIG"


def _holder() -> Any:
    holder = sys.modules.get(_HOLDER_NAME)
    if holder is None:
        holder = types.ModuleType(_HOLDER_NAME)
        holder.lock = threading.RLock()  # type: ignore[attr-defined]
        holder.kernel = None  # type: ignore[attr-defined]
        holder.hooks_installed = False  # type: ignore[attr-defined]
        # setdefault: two threads racing here end up sharing whichever holder won.
        holder = sys.modules.setdefault(_HOLDER_NAME, holder)
    return holder


def _default_factory() -> Any:
    from engine.config import load_config
    from engine.kernel import Kernel

    path = os.environ.get(CONFIG_ENV) or None
    kernel = Kernel.from_config(load_config(path))
    kernel.start()
    return kernel


def get_engine(factory: Callable[[], Any] | None = None) -> Any:
    """The engine of this process, built and started by ``factory`` on first use.

    Thread-safe; every later call (from any session, after any reload) returns the same
    object. ``factory`` defaults to ``Kernel.from_config(load_config($SEAMLESS_CONFIG))``.
    """
    holder = _holder()
    kernel = holder.kernel
    if kernel is not None:
        return kernel
    with holder.lock:
        if holder.kernel is None:
            holder.kernel = (factory or _default_factory)()
            _install_stop_hooks(holder)
            log.info("dashboard engine started")
        return holder.kernel


def set_engine(kernel: Any) -> None:
    """Use an already built ``kernel`` as this process's engine (the server and tests)."""
    holder = _holder()
    with holder.lock:
        holder.kernel = kernel
        _install_stop_hooks(holder)


def current_engine() -> Any | None:
    """The engine if one was built, else None (never builds one)."""
    return _holder().kernel


def shutdown_engine() -> None:
    """Stop the engine cleanly once (idempotent); later ``get_engine`` builds a new one."""
    holder = _holder()
    with holder.lock:
        kernel, holder.kernel = holder.kernel, None
    if kernel is None:
        return
    try:
        kernel.stop()
        log.info("dashboard engine stopped")
    except Exception:  # at exit there is nobody left to raise to
        log.exception("stopping the dashboard engine failed")


def _install_stop_hooks(holder: Any) -> None:
    if holder.hooks_installed:
        return
    holder.hooks_installed = True
    atexit.register(shutdown_engine)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        shutdown_engine()
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread of the main interpreter
        signal.signal(signal.SIGTERM, on_sigterm)
