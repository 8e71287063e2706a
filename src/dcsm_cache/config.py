"""Frozen dataclass configs: the dataclass holds every default, YAML and flags only override.

    cfg = from_mapping(TrainConfig, {"steps": 500}, where="config.yaml: train")

An unknown key is a ConfigError that names it and lists the known ones; values are coerced to
the field's declared scalar type so that strings from the command line work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, Mapping, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, typ: Any, key: str, where: str) -> Any:
    if typ in (int, float, str) and value is not None and not isinstance(value, typ):
        if typ is str or (typ is float and isinstance(value, int)):
            return typ(value)
        try:
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}={value!r} is not a {typ.__name__}") from None
    if typ is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{where}: {key}={value!r} is not true/false")
        return value.lower() in ("true", "1", "yes")
    if dataclasses.is_dataclass(typ) and isinstance(value, Mapping):
        return from_mapping(typ, value, where=f"{where}: {key}")
    if typing.get_origin(typ) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build `cls` from its defaults overridden by `values`; unknown keys are an error."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    where = where or cls.__name__
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**{k: _coerce(v, hints[k], k, where) for k, v in values.items()})


def config_hash(cfg: Any) -> str:
    """A short stable hash of a config dataclass (or any JSON-able value)."""
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def require(ok: bool, where: str, message: str) -> None:
    """A config check: `where: message` as a ConfigError when `ok` is false."""
    if not ok:
        raise ConfigError(f"{where}: {message}")


def one_of(where: str, key: str, value: Any, choices) -> None:
    require(value in choices, where, f"{key}={value!r} is not one of {', '.join(map(str, choices))}")


def at_least(where: str, **values: tuple[float, float]) -> None:
    """at_least("train", steps=(cfg.steps, 1)): each value must be at least its bound."""
    for key, (value, low) in values.items():
        require(value >= low, where, f"{key}={value} must be at least {low}")
