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

The params themselves (bounds, values, moves, coercion) are in ``params.py``; a trial's
identity (``config_key``, ``as_config``) in ``keys.py``; both are importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inr_tune.config import Config
from inr_tune.errors import ConfigError, ProposalError
from inr_tune.search.keys import StoredConfig, as_config, config_key, stored
from inr_tune.search.params import Move, Param, fmt_value, parse_param

__all__ = [
    "FITTED_STRATEGY",
    "MULTI_PARAM_STRATEGIES",
    "SIZE_KEYS",
    "Move",
    "Param",
    "SearchSpace",
    "StoredConfig",
    "as_config",
    "config_key",
    "fmt_value",
    "stored",
]

ROBUSTNESS = "robustness-test"
# strategies whose proposals are whole configs drawn from the space (--searcher random|tpe):
# they may change several params at once. Every other strategy changes exactly one, except a
# variant-sweep that must fit its family into the budget (``FITTED_STRATEGY``)
MULTI_PARAM_STRATEGIES = ("random", "tpe")
# a variant-sweep switches the model family (its first param: a choice of a model key) and
# may step the new family's size params down with it, to fit the size budget (``sweep.py``)
FITTED_STRATEGY = "variant-sweep"
#: Config keys whose smaller values give a smaller model (stepped down by
#: ``budget.fit_root``, and by a variant-sweep that must fit the budget).
SIZE_KEYS = (
    "model.hidden_dim",
    "model.n_layers",
    "model.rank",
    "model.basis_hidden_dim",
    "model.basis_layers",
    "model.id_embedding_dim",
    "model.ngp_levels",
    "model.ngp_log2_hashmap_size",
    "model.ngp_features_per_level",
)


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
            p = parse_param(name, spec)
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
        """Check a mutation of ``config``; return ``{name: (old, new)}``.

        A mutation changes exactly one parameter, except under the strategies of
        ``MULTI_PARAM_STRATEGIES`` (configs drawn from the space: random, tpe), which may
        change several (each must change, none may be the seed), and a variant-sweep,
        which may add what fitting its family into the budget needs (``_check_fitted``).
        ``pinned`` maps dotted keys (or short names) fixed by the user to their values.
        The seed param may change only when ``strategy == "robustness-test"``, and such a
        test changes nothing else.
        Raises ProposalError with a one-line reason otherwise.
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
        multi = strategy in MULTI_PARAM_STRATEGIES or strategy == FITTED_STRATEGY
        if not mutation or (len(mutation) != 1 and not multi):
            names = ", ".join(map(str, mutation)) or "none"
            what = "at least one parameter" if multi else "exactly one parameter"
            raise ProposalError(f"a mutation changes {what}; got {len(mutation)} ({names})")
        changes: dict[str, tuple[Any, Any]] = {}
        for name, raw in mutation.items():
            p = self.param(str(name))
            if p.name in changes:
                raise ProposalError(f"the mutation names {p.name} twice")
            changes[p.name] = self._check_one(config, p, raw, pinned, strategy)
        if strategy == FITTED_STRATEGY and len(changes) > 1:
            self._check_fitted(changes)
        new = {name: value for name, (_, value) in changes.items()}
        return self.apply(config, new), changes

    def _check_fitted(self, changes: dict[str, tuple[Any, Any]]) -> None:
        """A variant-sweep of several params: the model family first, then only other
        model choices (the new family's basis) and size params made smaller: what fitting
        the new family into the budget needs."""

        def model_choice(p: Param) -> bool:
            return p.is_choice and p.key.startswith("model.") and p.key not in SIZE_KEYS

        first, *rest = changes
        if not model_choice(self.param(first)):
            raise ProposalError(
                f"a {FITTED_STRATEGY} of several params changes the model family first "
                f"(a model choice such as inr_type), not {first}"
            )
        for name in rest:
            q = self.param(name)
            old, new = changes[name]
            if model_choice(q):
                continue  # another choice of the new family (a factorized model's basis)
            numbers = all(isinstance(v, (int, float)) for v in (old, new))
            if q.key not in SIZE_KEYS or not numbers or not new < old:
                raise ProposalError(
                    f"a {FITTED_STRATEGY} may only step size params down or set model "
                    f"choices besides the model family; {name} {fmt_value(old)}→"
                    f"{fmt_value(new)} is neither"
                )

    def _check_one(
        self,
        config: Config,
        p: Param,
        raw: Any,
        pinned: Mapping[str, Any] | None,
        strategy: str | None,
    ) -> tuple[Any, Any]:
        """``(old, new)`` of one param of a mutation, or ProposalError."""
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
        return old, new

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
