"""Checks of one config value: its type (``coerce``: ints become floats, not back; YAML
1.1's "1e-4" strings become floats) and its range and choices (``check``), each failure
one line naming ``section.key``, the value and what is allowed."""

from __future__ import annotations

import types
import typing
from typing import Any

from inr_tune.errors import ConfigError

__all__ = ["check", "coerce", "type_name"]


def type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        names = " or ".join(type_name(a) for a in args)
        return names + (" or null" if type(None) in typing.get_args(tp) else "")
    return getattr(tp, "__name__", str(tp))


def coerce(section: str, key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError (ints become floats, not back)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(section, key, value, arg)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(
            f"{section}.{key}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"
        )
    bad = ConfigError(
        f"{section}.{key}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"
    )
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" (no dot) as a string
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise bad


def check(section: str, key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if value is None or isinstance(value, bool):
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{section}.{key}={value!r} is not allowed; choose one of: {', '.join(map(str, choices))}"
        )
    if isinstance(value, (int, float)):
        if "min" in meta and value < meta["min"]:
            raise ConfigError(f"{section}.{key}={value} is out of range; must be ≥ {meta['min']}")
        if "gt" in meta and value <= meta["gt"]:
            raise ConfigError(f"{section}.{key}={value} is out of range; must be > {meta['gt']}")
        if "max" in meta and value > meta["max"]:
            raise ConfigError(f"{section}.{key}={value} is out of range; must be ≤ {meta['max']}")
