"""Running a search's trials: the pool of worker processes, Ctrl-C, and the progress line.

Workers are ``spawn``-ed processes (never threads), each set up once by
:func:`engine.research.trials.init_worker`; they ignore Ctrl-C, which the parent handles with
a :class:`StopFlag`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from engine.research.trials import RunSetup, Task, init_worker, worker_run
from streams.errors import ConfigError

if TYPE_CHECKING:
    from multiprocessing.pool import AsyncResult


# -- worker pool -----------------------------------------------------------------------------------
class TrialPool:
    """``jobs`` spawned worker processes, each set up once with ``setup`` (imports, data parsed)
    and then running trial after trial. Workers ignore Ctrl-C: the parent decides."""

    def __init__(self, setup: RunSetup, jobs: int) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.setup = setup
        self.created = time.time()
        #: From creating the pool to the first trial starting in a worker (set by a search).
        self.startup_s: float | None = None
        context = multiprocessing.get_context("spawn")
        with sigint_ignored():  # children start with Ctrl-C ignored, even while importing
            self._pool = context.Pool(jobs, initializer=init_worker, initargs=(setup,))
        self._closed = False

    def submit(self, task: Task) -> AsyncResult[dict[str, Any]]:
        """Queue one backtest; its result is ``trials.run_task``'s dict."""
        return self._pool.apply_async(worker_run, (task,))

    def close(self) -> None:
        """Let the workers finish and exit."""
        if not self._closed:
            self._closed = True
            self._pool.close()
            self._pool.join()

    def terminate(self) -> None:
        """End the workers now (running trials are abandoned)."""
        if not self._closed:
            self._closed = True
            self._pool.terminate()
            self._pool.join()

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.terminate()


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored inside the block (main thread only): processes started in it inherit
    that, and a search's clean-up is not cut short by a second Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class StopFlag:
    """Ctrl-C while a search runs: the first sets :attr:`requested` (the search stops at the
    next trial boundary and keeps what is done), a second raises KeyboardInterrupt at once.
    Installed only in the main thread; elsewhere it never fires."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.requested = False
        self.stream = stream or sys.stderr
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, *_args: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.stream.write("\nstopping: keeping the finished trials (Ctrl-C again to quit now)\n")
        self.stream.flush()


# -- progress --------------------------------------------------------------------------------------
class ProgressBar:
    """One line on a terminal: done/total, the best so far and the rate. Silent elsewhere."""

    def __init__(self, stream: TextIO, objective: str, *, enabled: bool | None = None) -> None:
        self.stream = stream
        self.objective = objective
        self.enabled = stream.isatty() if enabled is None else enabled
        self.label = ""
        self._last = 0.0
        self._shown = False
        self._width = 0

    def update(
        self,
        done: int,
        total: int,
        best: tuple[float, int] | None,
        rate: float,
        *,
        force: bool = False,
    ) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 24
        filled = int(width * done / total) if total else width
        bar = f"{self.label}{done}/{total} [{'#' * filled}{'.' * (width - filled)}]"
        if rate <= 0:
            text = f"{bar} starting the workers..."
        else:
            best_text = (
                f"best {self.objective} {best[0]:.6g} (#{best[1]})" if best else "no best yet"
            )
            eta = (total - done) / rate * 60 if total > done else 0.0
            text = f"{bar} {best_text}  {rate:.0f} trials/min  ETA {eta:.0f} s"
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
