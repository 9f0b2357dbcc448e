"""Parameter search with Optuna: ``seamless optimize``.

The parent process is the study's only client in this run: it asks Optuna for a trial's
parameters, checks the strategy accepts them, hands the trial to a pool of worker processes
(:mod:`engine.research.trials`: each parses the data once and runs many full-engine
backtests) and tells Optuna the result. Workers are ``spawn``-ed processes, never threads.

Reproducible with ``--seed``: results are told in trial-number order with a fixed lag of
``jobs + 1`` trials in flight, so when trial *n* is asked the sampler has seen exactly trials
``0 .. n - jobs - 1`` finished (and the others as running). The same arguments with the same
``--seed`` and ``--jobs`` give the same trials; the grid sampler gives grid point *n* to trial
*n* whatever the seed.

``--trials N`` is the size of the study: a run adds trials until the study holds N (trials
cut short by Ctrl-C do not count). Re-running with the same ``--storage`` and ``--study``
resumes it; several processes (machines, with a PostgreSQL storage) on one study share the N,
and Optuna numbers their trials from one sequence, so no number is used twice.

The study, its storage and sampler are :mod:`engine.research.optuna_study`'s; the worker
processes, Ctrl-C and the progress line :mod:`engine.research.pool`'s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.research.optuna_study import (
    SearchSpec,
    create_study,
    describe_storage,
    jsonable,
    open_storage,
    quiet_optuna,
)
from engine.research.pool import ProgressBar, StopFlag, TrialPool, sigint_ignored
from engine.research.search import Objective, format_params, refusal
from engine.research.trials import Task
from streams.errors import SeamlessError

if TYPE_CHECKING:
    import optuna

    from engine.strategy import Strategy


@dataclasses.dataclass
class SearchOutcome:
    """What a search left in its study, and how this run went."""

    study: str
    storage: str
    objective: str
    direction: str
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    trials: int
    complete: int
    failed: int
    table: list[dict[str, Any]]
    ran: int = 0
    refused: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    trial_phase_s: float = 0.0
    startup_s: float = 0.0
    mean_backtest_s: float = 0.0
    mean_trial_s: float = 0.0
    mean_trial_cpu_s: float = 0.0
    first_error: str = ""

    @property
    def rate_per_min(self) -> float:
        """Trials per minute while trials ran (worker start-up excluded; see ``startup_s``)."""
        return self.ran / self.trial_phase_s * 60 if self.trial_phase_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rate_per_min"] = round(self.rate_per_min, 1)
        timings = ("elapsed_s", "trial_phase_s", "startup_s", "mean_backtest_s", "mean_trial_s")
        for key in (*timings, "mean_trial_cpu_s"):
            out[key] = round(out[key], 4)
        return out

    def rate_line(self, jobs: int) -> str:
        """The speed summary printed at the end of a run."""
        return (
            f"{self.ran} trials in {self.trial_phase_s:.1f} s: {self.rate_per_min:.0f} trials/min "
            f"with {jobs} worker{'s' if jobs != 1 else ''} (start-up {self.startup_s:.1f} s; "
            f"a trial {self.mean_trial_s * 1000:.0f} ms in its worker, "
            f"{self.mean_backtest_s * 1000:.0f} ms of it the bar loop)"
        )


def run_search(
    spec: SearchSpec,
    pool: TrialPool,
    strategy_cls: type[Strategy],
    *,
    progress: ProgressBar | None = None,
    stop: StopFlag | None = None,
) -> SearchOutcome:
    """Run trials until the study holds ``spec.target()`` of them (or Ctrl-C); the outcome."""
    from optuna.trial import TrialState

    quiet_optuna()
    started = time.time()
    storage = open_storage(spec.storage)
    study = create_study(spec, storage)
    target = spec.target()
    if spec.sampler == "grid":
        _requeue_interrupted(study)
    lag = pool.jobs + 1
    inflight: deque[tuple[optuna.trial.Trial, dict[str, Any], Any]] = deque()
    best = _best_of(study, spec.objective.direction)
    ran = refused = 0
    timings: list[dict[str, Any]] = []
    first_error = ""
    asking = True
    interrupted = False
    broken = ""
    fixed = spec.setup.fixed

    def done_count() -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if not _excluded(t))

    def rate() -> float:
        if not timings:
            return 0.0
        span = time.time() - min(t["started"] for t in timings)
        return len(timings) / span * 60 if span > 0 else 0.0

    def show(force: bool = False) -> None:
        if progress is None or not progress.enabled:
            return
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        progress.update(min(done, target), target, best, rate(), force=force)

    try:
        while True:
            while asking and len(inflight) < lag and not (stop and stop.requested):
                if done_count() >= target:
                    asking = False
                    break
                trial = study.ask()
                if _over_budget(study, trial.number, target):
                    # another process took the last places first: this one is not run
                    trial.set_user_attr("over_budget", True)
                    study.tell(trial, state=TrialState.FAIL)
                    asking = False
                    break
                params = {name: dim.suggest(trial) for name, dim in spec.space.items()}
                reason = refusal(strategy_cls, {**fixed, **params})
                if reason is not None:
                    inflight.append((trial, params, {"refused": reason}))
                else:
                    task = Task(params, start=spec.start, stop=spec.stop)
                    inflight.append((trial, params, pool.submit(task)))
            if not inflight:
                break
            trial, params, pending = inflight[0]
            result = _wait(pending, stop, show)
            if result is None:  # stop requested while waiting
                break
            inflight.popleft()
            value = _tell(study, trial, result, spec.objective)
            if result.get("broken"):
                broken = str(result["error"])
                break
            if "refused" in result:
                refused += 1
            else:
                ran += 1
                if "started" in result:
                    timings.append(result)
            if value is not None:
                best = _better(best, (value, trial.number), spec.objective.direction)
            elif not first_error:
                first_error = _failure_text(result, params)
            show(force=True)
    except KeyboardInterrupt:
        interrupted = True
    if stop is not None and stop.requested:
        interrupted = True
    if interrupted or broken:
        with sigint_ignored():
            if interrupted:
                pool.terminate()
            else:
                # A task that raised in its worker (most often: the worker could not start) ends
                # the search; the few queued trials are let to finish. terminate() here could
                # kill a worker that is sending a result, which leaves the pool's result-queue
                # lock taken and terminate() waiting on it forever (a multiprocessing.Pool race
                # seen in the broken-worker test, where results come back at once).
                pool.close()
            for trial, _params, pending in inflight:
                result = _finished_result(pending)
                if result is None:
                    trial.set_user_attr("interrupted", True)
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    _tell(study, trial, result, spec.objective)
                    if "refused" not in result:
                        ran += 1
                        if "started" in result:
                            timings.append(result)
    if progress is not None:
        progress.close()
    if broken:  # every further trial would fail the same way: say so now
        raise SeamlessError(f"a trial's worker failed (not the trial's parameters): {broken}")
    return _outcome(spec, study, started, ran, refused, timings, pool, interrupted, first_error)


def _wait(pending: Any, stop: StopFlag | None, tick: Callable[[], None]) -> dict[str, Any] | None:
    if isinstance(pending, dict):
        return pending
    while True:
        if stop is not None and stop.requested:
            return None
        try:
            result: dict[str, Any] = pending.get(timeout=0.25)
            return result
        except multiprocessing.TimeoutError:
            tick()
        except Exception as exc:  # not a bad trial: the worker could not run the task
            return {"error": f"{type(exc).__name__}: {exc}", "broken": True}


def _finished_result(pending: Any) -> dict[str, Any] | None:
    if isinstance(pending, dict):
        return pending
    if pending.ready() and pending.successful():
        result: dict[str, Any] = pending.get()
        return result
    return None


def _tell(study: Any, trial: Any, result: Mapping[str, Any], objective: Objective) -> float | None:
    from optuna.trial import TrialState

    if "refused" in result:
        trial.set_user_attr("refused", result["refused"])
        study.tell(trial, state=TrialState.FAIL)
        return None
    if "error" in result:
        trial.set_user_attr("error", str(result["error"])[:500])
        study.tell(trial, state=TrialState.FAIL)
        return None
    trial.set_user_attr("summary", result.get("summary", {}))
    trial.set_user_attr("backtest_s", round(float(result.get("bar_loop_s", 0.0)), 4))
    value = result.get("value")
    if value is None or not math.isfinite(value):
        trial.set_user_attr("error", f"{objective.name} is undefined (NaN) for these parameters")
        study.tell(trial, state=TrialState.FAIL)
        return None
    study.tell(trial, float(value))
    return float(value)


def _failure_text(result: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    why = result.get("refused") or result.get("error") or "objective undefined (NaN)"
    return f"{format_params(params)}: {why}"


def _excluded(trial: Any) -> bool:
    """Trials that do not count towards ``--trials``: cut short by Ctrl-C, or over budget."""
    attrs = trial.user_attrs
    return bool(attrs.get("interrupted") or attrs.get("over_budget"))


def _over_budget(study: Any, number: int, target: int) -> bool:
    before = sum(
        1 for t in study.get_trials(deepcopy=False) if t.number < number and not _excluded(t)
    )
    return before >= target


def _requeue_interrupted(study: Any) -> None:
    """Grid search resumed: run again the grid points whose trials Ctrl-C cut short (Optuna's
    grid sampler counts a failed point as visited)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    seen = {
        _key(t.params)
        for t in trials
        if t.params and (t.state != TrialState.FAIL or not t.user_attrs.get("interrupted"))
    }
    for t in trials:
        key = _key(t.params)
        if t.user_attrs.get("interrupted") and t.params and key not in seen:
            seen.add(key)
            study.enqueue_trial(dict(t.params))


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _best_of(study: Any, direction: str) -> tuple[float, int] | None:
    from optuna.trial import TrialState

    best: tuple[float, int] | None = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.value is not None:
            best = _better(best, (float(t.value), t.number), direction)
    return best


def _better(
    best: tuple[float, int] | None, new: tuple[float, int], direction: str
) -> tuple[float, int]:
    if best is None:
        return new
    if direction == "maximize":
        return new if new[0] > best[0] or (new[0] == best[0] and new[1] < best[1]) else best
    return new if new[0] < best[0] or (new[0] == best[0] and new[1] < best[1]) else best


def _outcome(
    spec: SearchSpec,
    study: Any,
    started: float,
    ran: int,
    refused: int,
    timings: list[dict[str, Any]],
    pool: TrialPool,
    interrupted: bool,
    first_error: str,
) -> SearchOutcome:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    table = trial_table(trials)
    best = _best_of(study, spec.objective.direction)
    best_trial = next((t for t in trials if best is not None and t.number == best[1]), None)
    ok = [t for t in timings if "started" in t and "error" not in t]
    first = min((t["started"] for t in ok), default=0.0)
    last = max((t["ended"] for t in ok), default=0.0)
    if pool.startup_s is None and ok:
        pool.startup_s = max(first - pool.created, 0.0)
    return SearchOutcome(
        study=spec.study,
        storage=describe_storage(spec.storage),
        objective=spec.objective.name,
        direction=spec.objective.direction,
        best_params=dict(best_trial.params) if best_trial is not None else None,
        best_value=float(best[0]) if best is not None else None,
        best_trial=best[1] if best is not None else None,
        trials=sum(1 for t in trials if not _excluded(t)),
        complete=sum(1 for t in trials if t.state == TrialState.COMPLETE),
        failed=sum(1 for t in trials if t.state == TrialState.FAIL and not _excluded(t)),
        table=table,
        ran=ran,
        refused=refused,
        interrupted=interrupted,
        elapsed_s=time.time() - started,
        trial_phase_s=max(last - first, 0.0),
        startup_s=pool.startup_s or 0.0,
        mean_backtest_s=sum(t.get("bar_loop_s", 0.0) for t in ok) / len(ok) if ok else 0.0,
        mean_trial_s=sum(t["ended"] - t["started"] for t in ok) / len(ok) if ok else 0.0,
        mean_trial_cpu_s=sum(t.get("cpu_s", 0.0) for t in ok) / len(ok) if ok else 0.0,
        first_error=first_error,
    )


def trial_table(trials: list[Any]) -> list[dict[str, Any]]:
    """The study's trials as rows: number, params, value, state (and why a trial failed)."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        row: dict[str, Any] = {
            "number": t.number,
            "params": {k: jsonable(v) for k, v in t.params.items()},
            "value": t.value,
            "state": t.state.name,
        }
        for key in ("refused", "error"):
            if key in t.user_attrs:
                row[key] = t.user_attrs[key]
        if t.user_attrs.get("interrupted"):
            row["error"] = "interrupted (Ctrl-C); not counted"
        if t.user_attrs.get("over_budget"):
            row["error"] = "not run: the study already had its trials; not counted"
        rows.append(row)
    return rows
