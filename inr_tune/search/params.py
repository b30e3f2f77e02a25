"""One searchable parameter (``Param``): bounds or a value list, coercion of proposed
values, and the moves that say which values are near. ``parse_param`` reads one entry of a
space YAML's ``params`` (the format is in ``space.py``).

Moves: ``*F`` / ``xF`` (multiply), ``/F`` (divide), ``+D`` / ``-D`` (add, subtract) for
bounded params; ``next`` and ``any`` for value lists. A move that overshoots a bound lands
on the bound. Floats produced by moves are rounded to 4 significant digits and ints to the
nearest int, so ``1.2e-4 * 2`` is ``2.4e-4``, not ``2.4000000000000001e-4``.

Moves only say which values are *near* (the rule proposer's steps); ``validate`` accepts
any value inside the bounds or the value list, so a proposer may jump (ω 30 → 1750).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import ConfigError, ProposalError

__all__ = ["Move", "Param", "fmt_value", "parse_param"]

_PROBES = ("up", "down", "both", "none")
_SCALAR = (int, float, str, type(None))


def fmt_value(value: Any) -> str:
    """A short, stable rendering of a parameter value for messages and logs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        text = f"{value:.4g}"
        if "e" in text:
            mant, exp = text.split("e")
            text = f"{mant}e{int(exp)}"
        return text
    return str(value)


def _round(value: float, kind: str) -> float | int:
    if kind == "int":
        return round(value)
    return float(f"{value:.4g}")


@dataclass(frozen=True)
class Move:
    """One step of a bounded param: ``op`` in ``* / + -`` with its operand."""

    op: str
    arg: float

    @classmethod
    def parse(cls, text: Any, where: str) -> Move:
        s = str(text).strip().replace("×", "*").replace("÷", "/")
        if s[:1] in ("x", "X"):
            s = "*" + s[1:]
        op, num = s[:1], s[1:]
        try:
            arg = float(num)
        except ValueError:
            arg = math.nan
        if op not in "*/+-" or not math.isfinite(arg) or arg <= 0 or (op in "*/" and arg == 1):
            raise ConfigError(
                f"{where}: move {text!r} is not understood; use *F, /F, +D or -D (e.g. *2, -1)"
            )
        return cls(op, arg)

    def apply(self, value: float) -> float:
        if self.op == "*":
            return value * self.arg
        if self.op == "/":
            return value / self.arg
        if self.op == "+":
            return value + self.arg
        return value - self.arg

    def direction(self) -> int:
        return 1 if self.op in "*+" else -1


@dataclass(frozen=True)
class Param:
    """One searchable parameter: bounds (``type``/``min``/``max``) or an ordered value list."""

    name: str
    key: str
    type: str  # "float" | "int" | "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()
    moves: tuple[Any, ...] = ()  # Move objects, or "next"/"any" for value lists
    probe: str = "none"
    weight: float = 1.0
    role: str | None = None

    @property
    def is_choice(self) -> bool:
        return self.type == "choice"

    @property
    def is_seed(self) -> bool:
        return self.role == "seed"

    @property
    def numeric(self) -> bool:
        """True for bounded params and value lists of numbers (ordered, probe-able)."""
        return not self.is_choice or all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in self.values
            if v is not None
        )

    def describe(self) -> str:
        """The allowed values in words: ``1e-6..0.01 (log)`` or ``one of: adam, sgd``."""
        if self.is_choice:
            return "one of: " + ", ".join(fmt_value(v) for v in self.values)
        text = f"{fmt_value(self.low)}..{fmt_value(self.high)}"
        return text + (" (log)" if self.log else "")

    # ------------------------------------------------------------------ coercion

    def _number(self, raw: Any) -> float:
        """``raw`` as a finite float, or ProposalError naming the param."""
        if isinstance(raw, bool) or raw is None:
            raise ProposalError(
                f"{self.name}={fmt_value(raw)} is not a number; allowed: {self.describe()}"
            )
        if isinstance(raw, str):
            try:
                raw = float(raw.strip())
            except ValueError:
                raise ProposalError(
                    f"{self.name}={raw!r} is not a number; allowed: {self.describe()}"
                ) from None
        if not isinstance(raw, (int, float)):
            raise ProposalError(
                f"{self.name} must be a single value, got {type(raw).__name__}; allowed: {self.describe()}"
            )
        value = float(raw)
        if not math.isfinite(value):
            raise ProposalError(
                f"{self.name}={raw} is not a finite number; allowed: {self.describe()}"
            )
        return value

    def coerce(self, raw: Any) -> Any:
        """The canonical value for ``raw`` (``"1e-4"`` → 1e-4, 3.0 → 3) or ProposalError."""
        if self.is_choice:
            return self._coerce_choice(raw)
        value = self._number(raw)
        if self.type == "int":
            if not value.is_integer():
                raise ProposalError(f"{self.name}={fmt_value(raw)} must be a whole number")
            value = int(value)
        assert self.low is not None and self.high is not None
        if not self.low <= value <= self.high:
            raise ProposalError(
                f"{self.name}={fmt_value(value)} is out of range for this space: "
                f"{fmt_value(self.low)}..{fmt_value(self.high)}"
            )
        return value

    def _coerce_choice(self, raw: Any) -> Any:
        shown = fmt_value(raw) if isinstance(raw, _SCALAR) else type(raw).__name__
        bad = ProposalError(f"{self.name}={shown} is not allowed for this space; {self.describe()}")
        if isinstance(raw, bool) or not isinstance(raw, _SCALAR):
            raise bad
        if isinstance(raw, str):
            text = raw.strip()
            if text.lower() in ("null", "none", "~"):
                raw = None
            elif self.numeric:
                try:
                    raw = float(text)
                except ValueError:
                    raise bad from None
            else:
                raw = text
        if isinstance(raw, float) and not math.isfinite(raw):
            raise bad
        for v in self.values:
            if v is None or raw is None or isinstance(v, str) or isinstance(raw, str):
                if v == raw and type(v) is type(raw):
                    return v
            elif math.isclose(float(raw), float(v), rel_tol=1e-9, abs_tol=0.0):
                return v
        raise bad

    def same(self, a: Any, b: Any) -> bool:
        """Whether two values of this param are equal (8 == 8.0; floats to 1e-9 relative)."""
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)

    # ------------------------------------------------------------------ moves

    def position(self, value: Any) -> float | None:
        """Where ``value`` sits in the range, 0 (low) .. 1 (high); None for categories."""
        if self.is_choice:
            if not self.numeric or value not in self.values:
                return None
            return self.values.index(value) / max(1, len(self.values) - 1)
        if value is None:
            return None
        assert self.low is not None and self.high is not None
        lo, hi, v = self.low, self.high, float(value)
        if self.log and lo > 0 and v > 0:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return min(1.0, max(0.0, (v - lo) / (hi - lo))) if hi > lo else 0.5

    def neighbours(self, current: Any) -> list[Any]:
        """Values one move away from ``current``, inside the space, ≠ current, in move order."""
        out: list[Any] = []
        if self.is_choice:
            vals = list(self.values)
            for move in self.moves:
                if move == "any":
                    out.extend(vals)
                elif move == "next":
                    out.extend(self._adjacent(current))
        else:
            assert self.low is not None and self.high is not None
            try:
                base = float(current)
            except (TypeError, ValueError):
                base = self.low
            for move in self.moves:
                value = _round(move.apply(base), self.type)
                if self.low <= value <= self.high:
                    out.append(value)
        unique: list[Any] = []
        for v in out:
            if not self.same(v, current) and not any(self.same(v, u) for u in unique):
                unique.append(v)
        return unique

    def _adjacent(self, current: Any) -> list[Any]:
        vals = list(self.values)
        for i, v in enumerate(vals):
            if self.same(v, current):
                return [vals[j] for j in (i + 1, i - 1) if 0 <= j < len(vals)]
        if self.numeric and isinstance(current, (int, float)):  # off-list: nearest on each side
            nums = [v for v in vals if v is not None]
            up = [v for v in nums if v > current]
            down = [v for v in nums if v < current]
            return ([min(up)] if up else []) + ([max(down)] if down else [])
        return vals

    def step(self, current: Any, direction: int) -> list[Any]:
        """Neighbours in one direction (+1 up, −1 down) for ordered params."""
        if not self.numeric:
            return []
        out = []
        for v in self.neighbours(current):
            if v is None or current is None:
                continue
            if (v > current) == (direction > 0):
                out.append(v)
        return out

    def extreme(self, current: Any, direction: int, n_moves: int = 3) -> Any | None:
        """A far value in ``direction``: ``n_moves`` of the biggest move, clipped to the bounds.

        This is the failure-probe's "extreme value": far enough to cross a boundary, never
        outside the space. None when no value lies that way (already at the end).
        """
        if not self.numeric or current is None:
            return None
        if self.is_choice:
            nums = sorted(v for v in self.values if v is not None)
            if direction > 0:
                side = [v for v in nums if v > current]
                value = side[min(n_moves, len(side)) - 1] if side else None
            else:
                side = [v for v in nums if v < current][::-1]
                value = side[min(n_moves, len(side)) - 1] if side else None
            return value
        assert self.low is not None and self.high is not None
        moves = [m for m in self.moves if m.direction() == direction]
        if not moves:
            return None
        value = float(current)
        for _ in range(n_moves):
            value = (
                max(m.apply(value) for m in moves)
                if direction > 0
                else min(m.apply(value) for m in moves)
            )
        value = _round(min(self.high, max(self.low, value)), self.type)
        return None if self.same(value, current) else value


# ----------------------------------------------------------------------------- loading


def parse_param(name: str, spec: Any) -> Param:
    where = f"search space parameter {name!r}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping with key and values or min/max")
    allowed = {
        "key",
        "type",
        "min",
        "max",
        "log",
        "values",
        "moves",
        "probe",
        "weight",
        "role",
        "doc",
    }
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    key = spec.get("key")
    if not isinstance(key, str):
        raise ConfigError(f"{where} needs key: section.key (e.g. training.lr)")
    try:
        Config().get(key)
    except (ConfigError, AttributeError) as err:
        raise ConfigError(f"{where}: {err}") from None
    probe = spec.get("probe", "none")
    if probe not in _PROBES:
        raise ConfigError(f"{where}: probe={probe!r} not allowed; use {', '.join(_PROBES)}")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(f"{where}: weight must be a number ≥ 0, got {weight!r}")
    role = spec.get("role")
    if role not in (None, "seed"):
        raise ConfigError(f"{where}: role={role!r} not allowed; the only role is seed")
    moves_raw = spec.get("moves", [])
    if not isinstance(moves_raw, list):
        raise ConfigError(f"{where}: moves must be a list, e.g. ['*2', '/2']")
    common: dict[str, Any] = {
        "name": name,
        "key": key,
        "probe": probe,
        "weight": float(weight),
        "role": role,
    }

    if "values" in spec:
        if any(k in spec for k in ("min", "max", "type", "log")):
            raise ConfigError(f"{where}: give either values or type/min/max, not both")
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: values must be a non-empty list")
        if any(isinstance(v, bool) or not isinstance(v, _SCALAR) for v in values):
            raise ConfigError(f"{where}: values must be numbers, strings or null")
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"{where}: values has duplicates")
        moves = tuple(moves_raw) or ("any",)
        for m in moves:
            if m not in ("next", "any"):
                raise ConfigError(
                    f"{where}: move {m!r} is not understood for a value list; use next or any"
                )
        return Param(type="choice", values=tuple(values), moves=moves, **common)

    kind = spec.get("type")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}: type must be float or int (or give a values list)")
    lo, hi = spec.get("min"), spec.get("max")
    for label, bound in (("min", lo), ("max", hi)):
        try:
            ok = not isinstance(bound, bool) and math.isfinite(float(bound))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{where}: {label} must be a finite number, got {bound!r}")
    low, high = float(lo), float(hi)
    if low >= high:
        raise ConfigError(f"{where}: min={fmt_value(low)} must be < max={fmt_value(high)}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs min > 0")
    moves = tuple(Move.parse(m, where) for m in moves_raw)
    if kind == "int":
        low, high = float(math.ceil(low)), float(math.floor(high))
    return Param(type=kind, low=low, high=high, log=log, moves=moves, **common)
