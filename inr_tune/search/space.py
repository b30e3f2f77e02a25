"""The search space: which config keys a proposal may change, to which values, by which moves.

A space is read from YAML (``configs/spaces/*.yaml``)::

    name: mpm
    params:
      lr:                        # short name used in mutations and logs
        key: training.lr         # the Config key it changes
        type: float              # float | int (bounded params)
        min: 1.0e-6
        max: 1.0e-2
        log: true                # log-scaled (affects probes and the position in the range)
        moves: ["*2", "/2"]      # one move = one of these steps from the current value
        probe: up                # failure-probe direction: up | down | both | none (default)
        weight: 3                # the rule proposer's prior on choosing this param (default 1)
      hidden_dim:
        key: model.hidden_dim
        values: [64, 96, 128]    # ordered allowed values (null allowed as a value)
        moves: [next]            # next = the adjacent allowed values; any = every other value
      seed:
        key: training.seed
        type: int
        min: 0
        max: 1000000
        role: seed               # may change only in a robustness-test, and nothing else then

Moves: ``*F`` / ``xF`` (multiply), ``/F`` (divide), ``+D`` / ``-D`` (add, subtract) for
bounded params; ``next`` and ``any`` for value lists. A move that overshoots a bound lands
on the bound. Floats produced by moves are rounded to 4 significant digits and ints to the
nearest int, so ``1.2e-4 * 2`` is ``2.4e-4``, not ``2.4000000000000001e-4``.

Moves only say which values are *near* (the rule proposer's steps); ``validate`` accepts
any value inside the bounds or the value list, so a proposer may jump (ω 30 → 1750).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inr_tune.config import SECTIONS, Config, config_from_dict
from inr_tune.errors import ConfigError, ProposalError

__all__ = ["Param", "SearchSpace", "as_config", "config_key", "fmt_value"]

ROBUSTNESS = "robustness-test"
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


def _parse_param(name: str, spec: Any) -> Param:
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


@dataclass
class SearchSpace:
    """The params a proposal may change. Build with ``from_yaml`` or ``from_dict``."""

    name: str
    _params: dict[str, Param] = field(repr=False)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "search space") -> SearchSpace:
        """Parse a mapping ``{name?, params: {short_name: spec}}``; ConfigError naming the param."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("params"), Mapping):
            raise ConfigError(f"{source} must be a mapping with a 'params' mapping")
        extra = sorted(set(raw) - {"name", "params", "doc"})
        if extra:
            raise ConfigError(
                f"{source}: unknown top-level key {extra[0]!r}; allowed: name, params, doc"
            )
        params: dict[str, Param] = {}
        keys: dict[str, str] = {}
        for name, spec in raw["params"].items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"{source}: parameter name {name!r} must be an identifier")
            p = _parse_param(name, spec)
            if p.key in keys:
                raise ConfigError(
                    f"{source}: parameter {name!r} repeats key {p.key} of {keys[p.key]!r}"
                )
            keys[p.key] = name
            params[name] = p
        if not params:
            raise ConfigError(f"{source} lists no parameters")
        return cls(str(raw.get("name", source)), params)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"search space file {p} does not exist")
        try:
            raw = yaml.safe_load(p.read_text())
        except yaml.YAMLError:
            raise ConfigError(f"search space file {p} is not valid YAML") from None
        try:
            return cls.from_dict(raw, source=str(p))
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(msg if str(p) in msg else f"{msg} (in {p})") from None

    # ------------------------------------------------------------------ lookup

    @property
    def params(self) -> list[str]:
        """Short names in YAML order (the seed param included)."""
        return list(self._params)

    @property
    def search_params(self) -> list[str]:
        """Short names a normal mutation may change (every param but the seed)."""
        return [n for n, p in self._params.items() if not p.is_seed]

    def param(self, name: str) -> Param:
        """The param for a short name or dotted key; ProposalError listing the allowed ones."""
        if name in self._params:
            return self._params[name]
        for p in self._params.values():
            if p.key == name:
                return p
        raise ProposalError(f"unknown parameter {name!r}; allowed: {', '.join(self.params)}")

    def key_of(self, name: str) -> str:
        """Dotted Config key of a param (short name or key)."""
        return self.param(name).key

    def seed_param(self) -> Param | None:
        return next((p for p in self._params.values() if p.is_seed), None)

    def describe(self) -> str:
        """One line per param: ``lr (training.lr): 1e-6..0.01 (log)``."""
        return "\n".join(f"{p.name} ({p.key}): {p.describe()}" for p in self._params.values())

    # ------------------------------------------------------------------ mutations

    def validate(
        self,
        config: Config,
        mutation: Mapping[str, Any],
        pinned: Mapping[str, Any] | None = None,
        *,
        strategy: str | None = None,
    ) -> dict[str, tuple[Any, Any]]:
        """Check a one-parameter mutation of ``config``; return ``{name: (old, new)}``.

        ``pinned`` maps dotted keys (or short names) fixed by the user to their values. The
        seed param may change only when ``strategy == "robustness-test"``, and such a test
        changes nothing else. Raises ProposalError with a one-line reason otherwise.
        """
        return self.mutate(config, mutation, pinned, strategy=strategy)[1]

    def mutate(
        self,
        config: Config,
        mutation: Mapping[str, Any],
        pinned: Mapping[str, Any] | None = None,
        *,
        strategy: str | None = None,
    ) -> tuple[Config, dict[str, tuple[Any, Any]]]:
        """``validate`` and ``apply`` in one: the child Config and ``{name: (old, new)}``."""
        if not isinstance(mutation, Mapping):
            raise ProposalError(
                f"a mutation must be a mapping {{parameter: new value}}, got {type(mutation).__name__}"
            )
        if len(mutation) != 1:
            names = ", ".join(map(str, mutation)) or "none"
            raise ProposalError(
                f"a mutation changes exactly one parameter; got {len(mutation)} ({names})"
            )
        name, raw = next(iter(mutation.items()))
        p = self.param(str(name))
        if p.is_seed and strategy != ROBUSTNESS:
            raise ProposalError(
                f"{p.name} may change only in a robustness-test (a re-run of the parent with a new seed)"
            )
        if strategy == ROBUSTNESS and not p.is_seed:
            seed = self.seed_param()
            raise ProposalError(
                f"a robustness-test re-runs the parent config and changes only "
                f"{seed.name if seed else 'the seed'}, not {p.name}"
            )
        for pin_key, pin_value in (pinned or {}).items():
            if pin_key in (p.key, p.name):
                raise ProposalError(
                    f"{p.key} is pinned to {fmt_value(pin_value)} by the user; mutate another parameter"
                )
        new = p.coerce(raw)
        old = config.get(p.key)
        if p.same(old, new):
            raise ProposalError(f"parent config already has {p.name}={fmt_value(old)}")
        return self.apply(config, {p.name: new}), {p.name: (old, new)}

    def apply(self, config: Config, mutation: Mapping[str, Any]) -> Config:
        """A new Config: ``config`` with each ``{param: new value}`` set (``config`` untouched).

        Values are coerced and range-checked; a child that fails Config validation raises
        ProposalError naming the parameter.
        """
        raw = config.to_dict()
        for name, value in mutation.items():
            p = self.param(str(name))
            section, key = p.key.split(".")
            raw[section][key] = p.coerce(value)
        try:
            return as_config(raw)
        except ConfigError as err:
            desc = ", ".join(f"{k}={fmt_value(v)}" for k, v in mutation.items())
            raise ProposalError(f"{desc} gives an invalid config: {err}") from None

    def neighbours(self, config: Config, param: str) -> list[Any]:
        """Values of ``param`` one move away from ``config``'s, inside the space, ≠ current."""
        p = self.param(param)
        return p.neighbours(config.get(p.key))


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(f"{value:.10g}") if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


_KEY_SECTIONS = ("data", "model", "training")
_FIELDS = {s: {f.name for f in dataclasses.fields(SECTIONS[s])} for s in _KEY_SECTIONS}


@functools.lru_cache(maxsize=4096)
def _config_from_json(text: str) -> Config:
    return config_from_dict(json.loads(text))


def as_config(raw: Config | Mapping[str, Any]) -> Config:
    """A Config from a Config or a sections mapping (a node's stored config).

    Parsing is cached on the mapping's content; each call returns a fresh copy, so the
    caller may not alter a shared object by accident.
    """
    if isinstance(raw, Config):
        return raw
    return copy.deepcopy(_config_from_json(json.dumps(raw, sort_keys=True)))


def config_key(config: Config | Mapping[str, Any]) -> str:
    """A canonical hash of what a trial trains (sections data, model, training).

    Numbers are compared to 10 significant digits and ints equal their floats (``8`` and
    ``8.0`` hash alike). The search and block sections do not change a trial's result
    and are left out. Two configs with the same key are the same trial; only a
    robustness-test (a new seed, hence a new key) re-runs a config. A mapping missing
    keys gets the defaults filled in first.
    """
    return _body_key(_key_body(config))


def _key_body(config: Config | Mapping[str, Any]) -> dict[str, Any]:
    """The canonical sections ``config_key`` hashes."""
    raw = config.to_dict() if isinstance(config, Config) else config
    complete = all(
        isinstance(raw.get(s), Mapping) and set(raw[s]) == _FIELDS[s] for s in _KEY_SECTIONS
    )
    if not complete:
        raw = as_config(raw).to_dict()
    return {s: _canonical(raw[s]) for s in _KEY_SECTIONS}


def _body_key(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class StoredConfig:
    """A node's stored config as the search reads it: its ``config_key``, its Config and
    the keys of its one-value children, each computed once per content (``stored``)."""

    __slots__ = ("_body", "_children", "_config", "_text", "_values", "key")

    def __init__(self, raw: Mapping[str, Any], text: str | None) -> None:
        self._text = text  # the content as parsed (None: not JSON-able, parse ``raw``)
        self._body = _key_body(raw)
        self.key = _body_key(self._body)
        self._config: Config | None = None if text is not None else as_config(raw)
        self._children: dict[tuple[str, type, str], str] = {}
        self._values: dict[str, Any] = {}

    @property
    def config(self) -> Config:
        """The parsed Config, shared: read it, never change it (``as_config`` copies)."""
        if self._config is None:
            assert self._text is not None
            self._config = _config_from_json(self._text)
        return self._config

    def get(self, key: str) -> Any:
        """``config.get(key)`` (dotted), kept: the value is shared, never change it."""
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = self.config.get(key)
            return value

    def child_key(self, key: str, value: Any) -> str:
        """``config_key`` of this config with ``key`` (dotted) set to ``value`` (already
        coerced by its Param), without building the child Config.

        It equals ``config_key(space.apply(config, …))`` whenever that child is a valid
        Config: building one only checks values and turns ints into floats, which the key
        does not tell apart (``test_space`` checks this on the shipped spaces).
        """
        canon = _canonical(value)
        memo = (key, type(canon), repr(canon))
        out = self._children.get(memo)
        if out is None:
            section, name = key.split(".")
            if section not in _KEY_SECTIONS:
                out = self.key
            else:
                body = dict(self._body)
                body[section] = {**body[section], name: canon}
                out = _body_key(body)
            self._children[memo] = out
        return out


_STORED_BY_ID: dict[int, tuple[Mapping[str, Any], StoredConfig]] = {}
_STORED_BY_TEXT: dict[str, StoredConfig] = {}
_STORED_MAX = 100_000


def stored(raw: Mapping[str, Any]) -> StoredConfig:
    """The ``StoredConfig`` of a node's config mapping (``Node.config``), cached.

    Node configs are never edited (a tree invariant), so the cache is looked up first
    by the mapping's identity (it keeps the mapping alive, so the id is not reused), then
    by its content (a copied tree's nodes find their originals' entries).
    """
    hit = _STORED_BY_ID.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    try:
        text = json.dumps(raw, sort_keys=True)
    except (TypeError, ValueError):
        return StoredConfig(raw, None)
    out = _STORED_BY_TEXT.get(text)
    if out is None:
        if len(_STORED_BY_TEXT) >= _STORED_MAX:
            _STORED_BY_TEXT.clear()
        out = _STORED_BY_TEXT[text] = StoredConfig(raw, text)
    if len(_STORED_BY_ID) >= _STORED_MAX:
        _STORED_BY_ID.clear()
    _STORED_BY_ID[id(raw)] = (raw, out)
    return out
