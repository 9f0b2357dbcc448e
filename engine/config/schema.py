"""A small declarative validator for nested config dataclasses.

Every config section is a frozen dataclass whose fields are declared with :func:`setting`
(default, ``min``, ``max``, ``choices``, ``help``). :func:`build` walks a parsed YAML mapping
against the dataclass tree and raises :class:`~streams.errors.ConfigError` naming the full key
path, the bad value and what was expected, for unknown keys, wrong types and out-of-range
values alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from streams.errors import ConfigError

T = TypeVar("T")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    help: str = "",
) -> Any:
    """A config field: its ``default`` (or a ``factory`` for a mutable one) and the metadata
    :func:`build` checks and the configuration reference shows: range, choices and help."""
    metadata = {"min": min, "max": max, "choices": choices, "help": help}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def build(cls: type[T], data: Any, path: str = "") -> T:
    """An instance of dataclass ``cls`` from ``data`` (a mapping), validating every key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown config key {where}{unknown[0]!s} (known keys: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name not in data:
            continue
        kwargs[name] = _value(hints[name], data[name], key_path, f.metadata)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or '<root>'}: {exc}") from exc


def _value(hint: Any, value: Any, path: str, metadata: Mapping[str, Any]) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [o for o in get_args(hint) if o is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        errors = []
        for option in options:
            try:
                return _value(option, value, path, metadata)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item = get_args(hint)[0]
        return tuple(_value(item, v, f"{path}[{i}]", {}) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        _, item = get_args(hint)
        return {str(k): _value(item, v, f"{path}.{k}", {}) for k, v in value.items()}
    if hint is Any:
        return value
    checked = _scalar(hint, value, path)
    _check_range(checked, path, metadata)
    return checked


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if value != value:
            raise ConfigError(f"{path}: expected a number, got NaN")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported config type {hint!r}")


def _check_range(value: Any, path: str, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(map(repr, choices))
        raise ConfigError(f"{path}: expected one of {allowed}, got {value!r}")
    low, high = metadata.get("min"), metadata.get("max")
    if low is not None and value < low:
        raise ConfigError(f"{path}: expected a value >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{path}: expected a value <= {high}, got {value!r}")


def to_dict(obj: Any) -> Any:
    """A plain, YAML-ready form of a config dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
