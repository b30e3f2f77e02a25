"""``--searcher tpe``: Ray Tune's ``OptunaSearch`` with Optuna's ``TPESampler(seed)``, driven
as a proposer over the same space YAML (``pip install -e ".[tpe]"``).

The space becomes Optuna distributions (``optuna_space``): bounded floats
``FloatDistribution(low, high, log=...)``, ints ``IntDistribution(low, high, log=...)``,
value lists ``CategoricalDistribution`` (null is a valid choice). Only the free params
(``drawn.free_params``: not the seed, not pinned, weight > 0) are searched.

Per slot the proposer asks the searcher (``suggest(trial_id)``) for a flat config and
proposes it from the block's root config (parent None, strategy ``tpe``, mutation = the
params that differ from the root). A suggestion the size budget or GPU fit refuses is
told as a bad result (``BAD``) and another is asked, at most ``max_tries`` per slot; one
tried before is told that node's result. Finished nodes of the block are told as they are
seen (``on_trial_complete`` for our own suggestions, ``add_evaluated_point`` for the
others: the baseline, seed reruns, nodes of a resumed run), with the node's R² (held-out
when the window has held-out frames), failed or diverged ones as ``BAD``. Each block, and
each change of the free params or the space (user_input.md), starts a new study fed with
the block's finished nodes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from inr_tune.errors import ConfigError, ProposalError
from inr_tune.search.proposers.base import Proposal, SearchState, admit
from inr_tune.search.proposers.drawn import DrawnSearcher, free_params, params_key, tidy_value
from inr_tune.search.space import Param, SearchSpace, config_key, stored
from inr_tune.search.tree import HAS_R2, Node, Tree

__all__ = ["BAD", "METRIC", "TPEProposer", "optuna_space", "require_optuna"]

METRIC = "r2"
BAD = -1.0  # what a failed, diverged or refused config is told (R² is clipped at it)
INSTALL = 'pip install -e ".[tpe]"'


def require_optuna() -> Any:
    """The optuna module, or ConfigError (one line) saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            f"--searcher tpe needs optuna, which is not installed: {INSTALL} "
            "(or pip install 'optuna>=4')"
        ) from None
    return optuna


def optuna_space(space: SearchSpace, params: list[Param] | None = None) -> dict[str, Any]:
    """``{param: Optuna distribution}`` of ``params`` (default: every param but the seed)."""
    optuna = require_optuna()
    dist = optuna.distributions
    if params is None:
        params = [space.param(n) for n in space.search_params]
    out: dict[str, Any] = {}
    for p in params:
        if p.is_choice:
            out[p.name] = dist.CategoricalDistribution(list(p.values))
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            out[p.name] = dist.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            out[p.name] = dist.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


def node_value(node: Node) -> float:
    """What a finished node is told: its R² (at least ``BAD``; an ASHA-stopped trial's R²
    when it stopped), ``BAD`` for failed and diverged ones."""
    r2 = node.r2 if node.status in HAS_R2 else None
    return BAD if r2 is None else max(BAD, float(r2))


class TPEProposer(DrawnSearcher):
    """Optuna's TPE through Ray Tune's ``OptunaSearch``; deterministic for ``seed``."""

    name = "tpe"
    strategy = "tpe"

    def __init__(self, seed: int = 0, max_tries: int = 64) -> None:
        super().__init__(seed, max_tries)
        self._optuna = require_optuna()
        self._optuna.logging.set_verbosity(self._optuna.logging.WARNING)
        logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)
        self._study_key: tuple[Any, ...] | None = None
        self._search: Any = None
        self._params: list[Param] = []
        self._asked: dict[str, str] = {}  # params_key of a suggestion → its open trial id
        self._told: set[int] = set()  # nodes told to the current study
        self._n = 0  # trials asked in this process

    # ------------------------------------------------------------------ the study

    @property
    def searcher(self) -> Any:
        """The current ``OptunaSearch`` (None before the first call)."""
        return self._search

    def _study(self, state: SearchState) -> None:
        """A new study when the block, the space or the free params changed."""
        params = free_params(state)
        key = (state.block, state.space.describe(), tuple(p.name for p in params))
        if key == self._study_key:
            return
        from ray.tune.search.optuna import OptunaSearch

        self._study_key, self._params = key, params
        self._asked, self._told = {}, set()
        self._search = OptunaSearch(
            space=optuna_space(state.space, params) if params else None,
            metric=METRIC,
            mode="max",
            sampler=self._optuna.samplers.TPESampler(seed=self.seed),
        )

    def observe(self, state: SearchState) -> None:
        """Tell the study every finished node of the block it has not been told."""
        self._study(state)
        if not self._params:
            return
        for node in state.tree.block_nodes(state.block):
            if node.pending or node.id in self._told:
                continue
            self._told.add(node.id)
            cfg = stored(node.config).config
            values = {p.name: cfg.get(p.key) for p in self._params}
            self._tell(values, node_value(node))

    def _tell(self, values: dict[str, Any], value: float, trial_id: str | None = None) -> None:
        """Tell ``value`` for ``trial_id`` (or the open trial asked with ``values``); a
        config no trial asked for becomes an evaluated point (skipped when outside the
        distributions: a root value off the space's lists)."""
        tid = trial_id or self._asked.pop(params_key(values), None)
        if tid is not None:
            self._search.on_trial_complete(tid, {METRIC: value})
            return
        with contextlib.suppress(ValueError, TypeError):
            self._search.add_evaluated_point(values, value)

    # ------------------------------------------------------------------ proposals

    def draw(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], slot: int
    ) -> Proposal | None:
        self._study(state)
        if not self._params:
            return None
        root = state.root_config
        for _ in range(self.max_tries):
            self._n += 1
            tid = f"tpe-b{state.block}-{self._n}"
            raw = self._search.suggest(tid)
            values = {p.name: tidy_value(p, raw[p.name]) for p in self._params}
            mutation = self.mutation_of(state, values)
            if not mutation:  # the root config itself: told the baseline's result
                self._tell_known(tid, config_key(root), scratch, taken)
                continue
            try:
                child = state.space.apply(root, mutation)
            except ProposalError:
                self._search.on_trial_complete(tid, None, error=True)
                continue
            key = config_key(child)
            if key in taken:
                self._tell_known(tid, key, scratch, taken)
                continue
            problem = state.check_config(child) if state.check_config is not None else None
            if problem:  # refused before it runs (size budget, GPU fit): a bad result
                self._search.on_trial_complete(tid, {METRIC: BAD})
                continue
            proposal = Proposal(
                None, mutation, self.strategy, self.hypothesis(state, mutation), None
            )
            try:
                admit(state, scratch, taken, proposal)
            except ProposalError:
                self._search.on_trial_complete(tid, None, error=True)
                continue
            self._asked[params_key(values)] = tid
            return proposal
        return None

    def _tell_known(self, tid: str, key: str, scratch: Tree, taken: dict[str, int]) -> None:
        """A suggestion tried before: tell it that node's result (a failed trial while the
        node is still pending: the study learns nothing from it)."""
        node = scratch.get(taken.get(key, -1))
        if node is not None and not node.pending:
            self._search.on_trial_complete(tid, {METRIC: node_value(node)})
        else:
            self._search.on_trial_complete(tid, None, error=True)

    def hypothesis(self, state: SearchState, mutation: dict[str, Any]) -> str:
        told = len(self._told)
        return (
            f"TPE (Optuna, seed {self.seed}) suggests this config from {told} finished "
            f"trial(s) of the block; {len(mutation)} of its parameters differ from the "
            "block's root config."
        )
