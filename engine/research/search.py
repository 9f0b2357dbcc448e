"""What a parameter search varies and what it optimizes: ``--space`` and ``--objective``.

A search space is one :class:`Dimension` per strategy parameter, parsed from
``NAME=LOW:HIGH[:STEP]`` (a range: whole numbers for an ``Integer`` parameter, else floats) or
``NAME=A,B,C`` (a list of choices, e.g. ``allow_short=true,false``). Everything is checked
against the strategy class before any trial runs: the parameter exists, LOW <= HIGH, the step
fits, the values are within the parameter's bounds, and the corners of the space are built
with the strategy's own constructor (which refuses combinations such as ``fast >= slow``).

An objective names a figure of a backtest: a number of ``BacktestResult.summary()`` (what
``seamless backtest --json`` prints: ``net_pnl``, ``max_drawdown`` in currency, ...) or a
metric of :func:`engine.research.metrics.compute_metrics` (``sortino``, ``cagr``, ...). A name
found in both (``sharpe``, ``max_drawdown``) is the summary's; ``metrics.NAME`` always means the
metric (``metrics.max_drawdown`` is the fraction of end-of-day equity).

Optuna is not imported here: workers and the dashboard import this module cheaply.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import param
import yaml

from streams.errors import ConfigError

if TYPE_CHECKING:
    from engine.backtest import BacktestResult
    from engine.strategy import Strategy

Kind = Literal["int", "float", "categorical"]
Direction = Literal["maximize", "minimize"]

#: Numbers of ``BacktestResult.summary()`` that can be optimized.
SUMMARY_OBJECTIVES = (
    "net_pnl",
    "realized_pnl",
    "final_equity",
    "max_drawdown",
    "sharpe",
    "commissions",
    "fills",
    "round_trips",
)
#: Figures where less is better; every other objective is maximized by default.
MINIMIZED = frozenset(
    {"max_drawdown", "metrics.max_drawdown", "volatility", "metrics.volatility", "commissions"}
)
#: The most corners of a space that are built to check it (2 ** dimensions, capped).
MAX_CORNERS = 256


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One parameter the search varies."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    choices: tuple[Any, ...] = ()
    text: str = ""  # the --space entry, for messages

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks for this dimension."""
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1)
            )
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step)
        return trial.suggest_categorical(self.name, list(self.choices))

    def grid(self) -> list[Any]:
        """Every value of the dimension (the grid sampler's axis); ConfigError for a float range
        without a step."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(
                f"--space {self.text!r}: the grid sampler needs a STEP for a float range "
                f"(e.g. {self.name}={_num(self.low)}:{_num(self.high)}:0.5)"
            )
        count = round((self.high - self.low) / self.step)
        return [_clean(self.low + i * self.step) for i in range(count + 1)]

    def corners(self) -> tuple[Any, ...]:
        """The extreme values (both ends of a range; the first and last choice)."""
        if self.kind == "categorical":
            return tuple(dict.fromkeys((self.choices[0], self.choices[-1])))
        low = int(self.low) if self.kind == "int" else self.low
        high = int(self.high) if self.kind == "int" else self.high
        return (low,) if low == high else (low, high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored with the study)."""
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": list(self.choices)}
        out: dict[str, Any] = {"kind": self.kind, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        return out

    def describe(self) -> str:
        """``NAME=LOW:HIGH[:STEP]`` or ``NAME=A,B``, as given on the command line."""
        if self.kind == "categorical":
            return f"{self.name}={','.join(str(c) for c in self.choices)}"
        step = f":{_num(self.step)}" if self.step is not None else ""
        return f"{self.name}={_num(self.low)}:{_num(self.high)}{step}"


@dataclasses.dataclass(frozen=True)
class Objective:
    """The figure a search optimizes and in which direction."""

    name: str
    direction: Direction
    source: Literal["summary", "metrics"]
    key: str

    def value(
        self, result: BacktestResult, summary: Mapping[str, Any] | None = None
    ) -> float | None:
        """The objective of a finished backtest; None when the figure is undefined (NaN, or a
        ratio with nothing to divide by)."""
        summary = summary if summary is not None else result.summary()
        if self.source == "summary":
            raw = summary.get(self.key)
        else:
            metrics = summary.get("metrics")
            if not isinstance(metrics, Mapping):
                from engine.research.metrics import compute_metrics

                metrics = compute_metrics(result)
            raw = metrics.get(self.key)
        if raw is None:
            return None
        value = float(raw)
        return value if math.isfinite(value) else None


def metric_keys() -> tuple[str, ...]:
    """The keys of ``compute_metrics`` (imported when asked: the metrics module imports
    pandas, which a worker or the dashboard may not need yet)."""
    from engine.research.metrics import METRIC_KEYS

    return tuple(METRIC_KEYS)


def known_objectives() -> list[str]:
    """Every objective name :func:`resolve_objective` accepts."""
    metrics = metric_keys()
    bare = [k for k in metrics if k not in SUMMARY_OBJECTIVES]
    shadowed = [f"metrics.{k}" for k in metrics if k in SUMMARY_OBJECTIVES]
    return [*SUMMARY_OBJECTIVES, *bare, *shadowed]


def resolve_objective(name: str, direction: str | None = None) -> Objective:
    """The objective called ``name`` (see the module docstring); ConfigError listing the known
    ones for an unknown name. ``direction`` overrides the default (maximize, except for the
    figures in :data:`MINIMIZED`)."""
    text = (name or "").strip()
    metrics = metric_keys()
    if text in SUMMARY_OBJECTIVES:
        source: Literal["summary", "metrics"] = "summary"
        key = text
    elif text.startswith("metrics.") and text.removeprefix("metrics.") in metrics:
        source, key = "metrics", text.removeprefix("metrics.")
    elif text in metrics:
        source, key = "metrics", text
    else:
        raise ConfigError(
            f"--objective {name!r} is not a figure of a backtest; known: "
            + ", ".join(known_objectives())
        )
    if direction is None:
        direction = "minimize" if text in MINIMIZED else "maximize"
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"--direction must be maximize or minimize, got {direction!r}")
    return Objective(text, direction, source, key)  # type: ignore[arg-type]


def parse_space(
    entries: Sequence[str], cls: type[Strategy], fixed: Mapping[str, Any] | None = None
) -> dict[str, Dimension]:
    """The dimensions of ``--space`` entries for strategy ``cls``; ConfigError naming the entry
    for a bad one (syntax, unknown parameter, LOW above HIGH, step, bounds, type)."""
    if not entries:
        raise ConfigError("--space: give at least one NAME=LOW:HIGH[:STEP] to search over")
    known = sorted(set(cls.param) - {"name", "symbols"})
    fixed = fixed or {}
    space: dict[str, Dimension] = {}
    for entry in entries:
        name, sep, spec = entry.partition("=")
        name = name.strip()
        if not sep or not name or not spec.strip():
            raise ConfigError(
                f"--space {entry!r}: expected NAME=LOW:HIGH[:STEP] or NAME=A,B,C "
                "(e.g. fast=5:30, qty=50:200:50, allow_short=true,false)"
            )
        if name not in known:
            raise ConfigError(
                f"--space {entry!r}: strategy {cls.__name__} has no parameter {name!r} "
                f"(known: {', '.join(known)})"
            )
        if name in space:
            raise ConfigError(f"--space {entry!r}: {name!r} is given twice")
        if name in fixed:
            raise ConfigError(f"--space {entry!r}: {name!r} is also fixed by --param; give one")
        space[name] = _dimension(entry, name, spec.strip(), cls.param[name])
    return space


def check_corners(
    cls: type[Strategy], space: Mapping[str, Dimension], fixed: Mapping[str, Any]
) -> list[tuple[dict[str, Any], str]]:
    """Build the strategy at the corners of ``space`` (its constructor checks combinations);
    the refused corners with the strategy's reason. ConfigError when every corner is refused:
    then no trial could run."""
    axes = [[(d.name, v) for v in d.corners()] for d in space.values()]
    refused: list[tuple[dict[str, Any], str]] = []
    tried = 0
    for combo in itertools.islice(itertools.product(*axes), MAX_CORNERS):
        tried += 1
        params = dict(combo)
        reason = refusal(cls, {**fixed, **params})
        if reason is not None:
            refused.append((params, reason))
    if refused and len(refused) == tried:
        params, reason = refused[0]
        raise ConfigError(
            f"--space: the strategy refuses every corner of the space, e.g. "
            f"{format_params(params)}: {reason}"
        )
    return refused


def refusal(cls: type[Strategy], params: Mapping[str, Any]) -> str | None:
    """Why the strategy's constructor refuses ``params`` (None when it accepts them)."""
    try:
        cls(name="search_check", symbols=["CHECK"], **dict(params))
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def format_params(params: Mapping[str, Any]) -> str:
    """``fast=5, slow=30`` (for messages)."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def grid_size(space: Mapping[str, Dimension]) -> int:
    """The number of points of the grid over ``space``."""
    return math.prod(len(d.grid()) for d in space.values())


# -- parsing -----------------------------------------------------------------------------------
def _dimension(entry: str, name: str, spec: str, parameter: param.Parameter) -> Dimension:
    if ":" in spec:
        if isinstance(parameter, param.Boolean) or not isinstance(parameter, param.Number):
            raise ConfigError(
                f"--space {entry!r}: {name!r} is not a number; list its choices instead "
                f"({name}=A,B)"
            )
        return _range(entry, name, spec, parameter)
    if "," in spec:
        choices = tuple(_scalar(text.strip()) for text in spec.split(","))
        if any(text.strip() == "" for text in spec.split(",")):
            raise ConfigError(f"--space {entry!r}: an empty choice")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"--space {entry!r}: a choice is given twice")
        for choice in choices:
            _check_value(entry, parameter, choice)
        return Dimension(name, "categorical", choices=choices, text=entry)
    raise ConfigError(
        f"--space {entry!r}: a search needs a range LOW:HIGH[:STEP] or choices A,B; "
        f"fix a single value with --param {name}={spec}"
    )


def _range(entry: str, name: str, spec: str, parameter: param.Number) -> Dimension:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or any(not p.strip() for p in parts):
        raise ConfigError(f"--space {entry!r}: expected {name}=LOW:HIGH or {name}=LOW:HIGH:STEP")
    whole = isinstance(parameter, param.Integer)
    numbers: list[float] = []
    for label, text in zip(("LOW", "HIGH", "STEP"), parts, strict=False):
        try:
            number = int(text) if whole else float(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise ConfigError(
                f"--space {entry!r}: {label} {text.strip()!r} is not {kind} "
                f"({name} is {'an Integer' if whole else 'a Number'} parameter)"
            ) from None
        if not math.isfinite(number):
            raise ConfigError(f"--space {entry!r}: {label} must be finite, got {text.strip()!r}")
        numbers.append(number)
    low, high = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else None
    if low > high:
        raise ConfigError(f"--space {entry!r}: LOW ({_num(low)}) is above HIGH ({_num(high)})")
    if step is not None:
        if step <= 0:
            raise ConfigError(f"--space {entry!r}: STEP must be > 0, got {_num(step)}")
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            raise ConfigError(
                f"--space {entry!r}: HIGH - LOW ({_num(high - low)}) is not a multiple of "
                f"STEP ({_num(step)})"
            )
    for value in (low, high):
        _check_value(entry, parameter, int(value) if whole else value)
    if whole:
        return Dimension(name, "int", int(low), int(high), int(step) if step else None, text=entry)
    return Dimension(name, "float", float(low), float(high), step, text=entry)


def _check_value(entry: str, parameter: param.Parameter, value: Any) -> None:
    """The parameter's own type and bounds, with the entry named."""
    if isinstance(parameter, param.Boolean) and not isinstance(value, bool):
        raise ConfigError(f"--space {entry!r}: {value!r} is not true or false")
    if isinstance(parameter, param.Number) and not isinstance(parameter, param.Boolean):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"--space {entry!r}: {value!r} is not a number")
        if isinstance(parameter, param.Integer) and not float(value).is_integer():
            raise ConfigError(f"--space {entry!r}: {value!r} is not a whole number")
        bounds = parameter.bounds or (None, None)
        inclusive = getattr(parameter, "inclusive_bounds", (True, True))
        low, high = bounds
        if low is not None and (value < low or (value == low and not inclusive[0])):
            word = "at least" if inclusive[0] else "above"
            raise ConfigError(
                f"--space {entry!r}: {value!r} is out of the parameter's bounds "
                f"({parameter.name} must be {word} {low})"
            )
        if high is not None and (value > high or (value == high and not inclusive[1])):
            word = "at most" if inclusive[1] else "below"
            raise ConfigError(
                f"--space {entry!r}: {value!r} is out of the parameter's bounds "
                f"({parameter.name} must be {word} {high})"
            )


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _clean(value: float) -> float:
    """A grid value without the float noise of ``low + i * step`` (0.30000000000000004)."""
    return float(f"{value:.12g}")
