"""The Optuna side of a parameter search: the storage of ``--storage``, the sampler of
``--sampler``, and the study a search adds its trials to.

A study is created, or loaded and checked: one made for another strategy, symbol, data, rows,
objective or direction is refused (a ConfigError naming ``--study``), so resuming can only add
trials of the same search. Optuna is imported only inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.research.search import Dimension, Objective, grid_size
from engine.research.trials import RunSetup
from streams.errors import ConfigError

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "random", "grid")
DEFAULT_TRIALS = 100


# -- storage and sampler ---------------------------------------------------------------------------
def open_storage(url: str | None) -> Any:
    """The Optuna storage of ``--storage``: None for one in memory; ``postgresql://...`` (or any
    SQLAlchemy URL such as ``sqlite:///f.db``) for an RDB storage, ``postgresql`` through the
    psycopg 3 driver; anything else is the path of a journal file (created if missing)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not url:
        return optuna.storages.InMemoryStorage()
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise ConfigError(f"--storage {url!r} is a folder; give a journal file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(f"--storage {url!r}: {exc.strerror or exc}") from exc
    return _rdb_storage(url)


def _rdb_storage(url: str) -> Any:
    import optuna
    import sqlalchemy.exc

    dialect = url.split("://", 1)[0]
    if dialect in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    last: Exception | None = None
    for attempt in range(5):  # several processes creating the tables at once: one wins
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            last = exc
            if isinstance(exc, ImportError | ValueError | sqlalchemy.exc.ArgumentError):
                break
            time.sleep(0.2 * (attempt + 1))
    first_line = str(last).strip().splitlines()[0] if last is not None else "cannot open"
    raise ConfigError(f"--storage {describe_storage(url)!r}: {first_line}")


def describe_storage(url: str | None) -> str:
    """``--storage`` for messages and results, without a password."""
    if not url:
        return "memory"
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say no more than its scheme
        return url.split("://", 1)[0] + "://..."


def make_sampler(kind: str, seed: int | None, space: Mapping[str, Dimension]) -> Any:
    """The Optuna sampler for ``--sampler`` (seeded with ``--seed``)."""
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":

        class GridSampler(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any, **kwargs: Any) -> None:
                # Optuna's stops the study when the grid is done, which only works inside
                # study.optimize(); here the search stops itself after the grid's size.
                return None

        grid = {name: dim.grid() for name, dim in space.items()}
        return GridSampler(grid, seed=0 if seed is None else seed)
    raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {kind!r}")


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO and warns about experimental features: keep stderr for
    the progress bar and real problems."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# -- the study -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """One search: what varies, on which rows of the data, into which study."""

    setup: RunSetup
    space: dict[str, Dimension]
    trials: int | None = None
    sampler: str = "tpe"
    seed: int | None = None
    storage: str | None = None
    study: str = "optimize"
    start: int = 0
    stop: int | None = None

    @property
    def objective(self) -> Objective:
        return self.setup.objective

    def target(self) -> int:
        """The study's size (``--trials``; the grid's size by default with the grid sampler)."""
        if self.sampler == "grid":
            size = grid_size(self.space)
            return size if self.trials is None else min(self.trials, size)
        return DEFAULT_TRIALS if self.trials is None else self.trials


def create_study(spec: SearchSpec, storage: Any) -> optuna.Study:
    """Create or load ``spec.study`` in ``storage``; ConfigError when a stored study of that
    name was made for another strategy, symbol, data, rows, objective or direction."""
    import optuna

    sampler = make_sampler(spec.sampler, spec.seed, spec.space)
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=spec.study,
        direction=spec.objective.direction,
        load_if_exists=True,
    )
    where = f"--study {spec.study!r}"
    stored = study.direction.name.lower()
    if stored != spec.objective.direction:
        raise ConfigError(
            f"{where}: the stored study is to {stored} its objective; --objective "
            f"{spec.objective.name} --direction {spec.objective.direction} asks otherwise "
            "(choose another --study name)"
        )
    ours = study_attrs(spec)
    existing = study.user_attrs
    if not existing:
        for key, value in ours.items():
            study.set_user_attr(key, value)
        return study
    for key in ("strategy", "symbol", "data", "objective", "rows"):
        if key in existing and existing[key] != ours[key]:
            raise ConfigError(
                f"{where} in {describe_storage(spec.storage)} was made for {key} "
                f"{existing[key]!r}, not {ours[key]!r}: choose another --study name"
            )
    return study


def study_attrs(spec: SearchSpec) -> dict[str, Any]:
    """What a study is about (stored with it, checked when it is resumed)."""
    setup = spec.setup
    return {
        "strategy": setup.strategy,
        "symbol": setup.symbol,
        "data": setup.data,
        "objective": setup.objective.name,
        "fixed": {k: jsonable(v) for k, v in setup.fixed.items()},
        "space": {name: dim.to_dict() for name, dim in spec.space.items()},
        "rows": [spec.start, spec.stop],
    }


def default_study_name(strategy: str, symbol: str, objective: str) -> str:
    """``sma_crossover-AAPL-net_pnl`` (the strategy's last dotted part)."""
    name = f"{strategy.rsplit('.', 1)[-1]}-{symbol.upper()}-{objective}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def jsonable(value: Any) -> Any:
    """A parameter value as JSON keeps it: a plain scalar as it is, anything else as text."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
