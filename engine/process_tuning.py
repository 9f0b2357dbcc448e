"""Interpreter settings of a long-running engine process, and the garbage collector's pauses.

Two CPython defaults cost latency in a process where several threads share the GIL (the bus
dispatcher, the event log's writer, the feed, the dashboard's event loop):

- **The GIL switch interval** (5 ms). A thread that blocked in C (a DuckDB commit, an fsync,
  a socket write) waits up to one interval to take the GIL back from a busy thread, and a
  small commit of the event log takes it back several times: measured here, a 2-row insert
  took 23-45 ms beside one busy Python thread at 5 ms, 5-10 ms at 1 ms. The throughput of the
  bus did not change (bench/bus.py).
- **Full (generation 2) collections** stop every thread while they walk every tracked
  object: about 150-190 ms in ``seamless serve`` with 10 dashboard sessions (440k objects),
  every 15-20 s. The objects alive after start-up (modules, classes, the engine) are moved to
  the permanent generation (``gc.freeze``), and full passes run less often
  (``engine.gc_full_every``; cyclic garbage then waits longer before it is freed).

:func:`tune_process` applies both from ``engine`` settings, once, in the entry points
(``seamless run`` and ``seamless serve``), never in a library import: tests and notebooks
keep the interpreter's defaults. :data:`GC_PAUSES` records how long collections stopped the
process; the kernel's health report (``/api/health``) shows it. :func:`tune_process` also
makes ``SIGUSR1`` print every thread's stack to stderr (:func:`dump_threads_on_sigusr1`), for a
process that seems stuck.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

#: A full collection longer than this is logged as a warning (it stalls the engine thread).
SLOW_FULL_COLLECTION_S = 0.1


class GcPauses:
    """Counts the garbage collector's passes per generation and how long they stopped the
    process (``gc.callbacks``; installed once per process, any thread reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: float | None = None
        self._installed = False
        self.collections = [0, 0, 0]
        self.pause_s = [0.0, 0.0, 0.0]
        self.max_pause_s = [0.0, 0.0, 0.0]
        #: Objects moved to the permanent generation by :func:`tune_process` (counted once:
        #: ``gc.get_freeze_count`` walks them all).
        self.frozen_objects = 0

    def install(self) -> GcPauses:
        """Start recording (idempotent)."""
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._on_gc)
                self._installed = True
        return self

    def uninstall(self) -> None:
        """Stop recording (tests)."""
        with self._lock:
            if self._installed:
                gc.callbacks.remove(self._on_gc)
                self._installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector: no allocation-heavy work, no locks another thread may
        # hold while allocating (a collection can start in any thread, at any allocation).
        if phase == "start":
            self._started = time.perf_counter()
            return
        started, self._started = self._started, None
        if started is None:
            return
        pause = time.perf_counter() - started
        generation = int(info.get("generation", 0))
        self.collections[generation] += 1
        self.pause_s[generation] += pause
        if pause > self.max_pause_s[generation]:
            self.max_pause_s[generation] = pause
        if generation == 2 and pause > SLOW_FULL_COLLECTION_S:
            log.warning("garbage collection stopped the process for %.0f ms", pause * 1e3)

    def as_dict(self) -> dict[str, Any]:
        """Passes, total and longest pause (ms) per generation, the objects frozen at start-up
        and the GIL switch interval in force."""
        return {
            "collections": list(self.collections),
            "pause_ms": [round(p * 1e3, 1) for p in self.pause_s],
            "max_pause_ms": [round(p * 1e3, 1) for p in self.max_pause_s],
            "frozen_objects": self.frozen_objects,
            "gil_switch_interval_ms": round(sys.getswitchinterval() * 1e3, 3),
        }


#: The process's recorder (the collector is process-wide).
GC_PAUSES = GcPauses()


def tune_process(engine_config: Any) -> None:
    """Apply ``engine_config``'s GIL switch interval and collector settings to this process.

    Call once the engine has started (so what start-up built is frozen), from an entry point.
    """
    sys.setswitchinterval(engine_config.gil_switch_interval_ms / 1e3)
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, engine_config.gc_full_every)
    if engine_config.gc_freeze_after_start:
        gc.collect()
        gc.freeze()
    GC_PAUSES.frozen_objects = gc.get_freeze_count()
    GC_PAUSES.install()
    dump_threads_on_sigusr1()
    log.info(
        "process tuned: GIL switch interval %.3g ms, full collection every %d middle ones, "
        "%d objects frozen",
        engine_config.gil_switch_interval_ms,
        engine_config.gc_full_every,
        GC_PAUSES.frozen_objects,
    )


def dump_threads_on_sigusr1() -> None:
    """Make ``kill -USR1 <pid>`` print every thread's Python stack to stderr (the process
    goes on): what a stuck shutdown or a stalled engine thread is waiting for, without a
    debugger. The dump is written by C code, so it works while Python threads hold the GIL."""
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
