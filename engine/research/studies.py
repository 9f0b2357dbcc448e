"""Search results kept with the runs: one JSON file per study, and the heatmap of its trials.

``seamless optimize`` writes ``<study>.json`` into the results folder after every run (also
after Ctrl-C): the arguments, the best trial and the table of every trial in the study (earlier
runs of a resumed study included). ``seamless walkforward`` writes each segment's study the
same way plus ``<study>.walkforward.json`` and its HTML report. The folder is ``studies/``
beside the engine's event log (``storage.db_path``: ``data/runtime/studies/`` by default, a
git-ignored runtime folder), or ``--results DIR``; the dashboard's Backtests tab lists the same
folder (:func:`studies_dir` of the server's config). The Optuna storage itself (journal file or
PostgreSQL) stays where ``--storage`` says; this file is its readable summary.

Nothing here imports Optuna.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from engine.config import SeamlessConfig

STUDY_KIND = "optimize"
WALKFORWARD_KIND = "walkforward"


def studies_dir(config: SeamlessConfig | None = None) -> Path:
    """The results folder: ``studies/`` beside ``storage.db_path`` of ``config`` (default
    config: ``data/runtime/studies``)."""
    if config is None:
        from engine.config import SeamlessConfig

        config = SeamlessConfig()
    return Path(config.storage.db_path).parent / "studies"


def study_file(folder: str | os.PathLike[str], name: str, suffix: str = ".json") -> Path:
    """``folder/<name><suffix>`` with the name made safe for a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".") or "study"
    return Path(folder) / f"{safe}{suffix}"


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` atomically (a reader never sees half a file); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(json_clean(payload), out, indent=1, default=_default, allow_nan=False)
            out.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A study or walk-forward file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a study file")
    return data


def list_studies(folder: str | os.PathLike[str]) -> list[Path]:
    """The study files (``kind: optimize``) in ``folder``, newest first."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*.json"):
        if path.name.endswith(".walkforward.json"):
            continue
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:
            continue
    return [p for _, p in sorted(found, key=lambda item: (-item[0], item[1].name))]


def searched_params(payload: Mapping[str, Any]) -> list[str]:
    """The parameters a study varied (its space), else every parameter its trials have."""
    space = payload.get("space")
    if isinstance(space, Mapping) and space:
        return list(space)
    names: dict[str, None] = {}
    for row in payload.get("table", []):
        names.update(dict.fromkeys(row.get("params", {})))
    return list(names)


def heatmap(payload: Mapping[str, Any], x: str, y: str, *, bins: int = 12) -> pd.DataFrame:
    """The study's complete trials over parameters ``x`` and ``y``: one row per cell with
    ``x``/``y`` (labels, in axis order), ``value`` (the best objective in the cell: the highest
    when the study maximizes), ``trials`` (how many fell in it) and ``best_trial``. A parameter
    with more than ``bins`` distinct numeric values is cut into ``bins`` equal ranges."""
    import pandas as pd

    rows = [
        r
        for r in payload.get("table", [])
        if r.get("state") == "COMPLETE"
        and r.get("value") is not None
        and x in r.get("params", {})
        and y in r.get("params", {})
    ]
    columns = ["x", "y", "value", "trials", "best_trial", "x_order", "y_order"]
    if not rows:
        return pd.DataFrame(columns=columns)
    x_labels, x_order = _axis([r["params"][x] for r in rows], bins)
    y_labels, y_order = _axis([r["params"][y] for r in rows], bins)
    maximize = payload.get("direction", "maximize") == "maximize"
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for row, xl, yl in zip(rows, x_labels, y_labels, strict=True):
        value = float(row["value"])
        cell = cells.get((xl, yl))
        if cell is None:
            cells[(xl, yl)] = {"value": value, "trials": 1, "best_trial": row["number"]}
            continue
        cell["trials"] += 1
        if (value > cell["value"]) if maximize else (value < cell["value"]):
            cell["value"], cell["best_trial"] = value, row["number"]
    frame = pd.DataFrame(
        [
            {
                "x": xl,
                "y": yl,
                **cell,
                "x_order": x_order.index(xl),
                "y_order": y_order.index(yl),
            }
            for (xl, yl), cell in cells.items()
        ],
        columns=columns,
    )
    frame.attrs["x_factors"] = x_order
    frame.attrs["y_factors"] = y_order
    return frame.sort_values(["y_order", "x_order"]).reset_index(drop=True)


def _axis(values: Sequence[Any], bins: int) -> tuple[list[str], list[str]]:
    """Labels of ``values`` and every label in axis order: each distinct value, or ``bins``
    equal ranges of many distinct numbers."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v)) if values else []
    if not numeric or len(distinct) <= bins:
        labels = [_fmt(v) for v in values]
        return labels, list(dict.fromkeys(_fmt(v) for v in distinct))
    if all(isinstance(v, int) for v in values):  # whole numbers: bins of whole numbers
        first, last = int(min(values)), int(max(values))
        size = -(-(last - first + 1) // bins)  # ceil
        count = -(-(last - first + 1) // size)
        names = [
            f"{first + i * size} to {min(first + (i + 1) * size - 1, last)}"
            if size > 1
            else str(first + i)
            for i in range(count)
        ]
        return [names[(int(v) - first) // size] for v in values], names
    low, high = float(min(values)), float(max(values))
    width = (high - low) / bins if high > low else 1.0
    edges = [low + i * width for i in range(bins + 1)]
    names = [f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}" for i in range(bins)]
    labels = [names[min(int((float(v) - low) / width), bins - 1)] for v in values]
    return labels, names


def json_clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None and tuples as lists (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
