"""``--searcher random``: seeded random configs drawn from the search space YAML.

Each free param (``drawn.free_params``) is drawn on its own: uniform over a value list,
log-uniform between min and max for ``log: true`` params, uniform otherwise, ints whole.
A draw that the size budget or GPU fit refuses (``SearchState.check_config``), that was
tried before (``taken_configs``) or that equals the root config is drawn again, at most
``max_tries`` times per slot. The generator is seeded from (seed, tree size, block): the
same tree gives the same configs, so a run is reproducible and a resumed run draws the
same. Parent None, strategy ``random``.
"""

from __future__ import annotations

import random

from inr_tune.errors import ProposalError
from inr_tune.search.proposers.base import Proposal, SearchState, admit
from inr_tune.search.proposers.drawn import DrawnSearcher, draw_value, free_params
from inr_tune.search.tree import Tree

__all__ = ["RandomProposer"]


class RandomProposer(DrawnSearcher):
    """Random search over the space; deterministic for ``seed``."""

    name = "random"
    strategy = "random"

    def draw(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], slot: int
    ) -> Proposal | None:
        rng = random.Random(
            self.seed * 1_000_003 + len(scratch) * 7_919 + state.block * 104_729 + slot
        )
        params = free_params(state)
        if not params:
            return None
        for _ in range(self.max_tries):
            values = {p.name: draw_value(p, rng) for p in params}
            mutation = self.mutation_of(state, values)
            if not mutation:
                continue
            proposal = Proposal(
                None, mutation, self.strategy, self.hypothesis(state, mutation), None
            )
            try:
                return admit(state, scratch, taken, proposal)
            except ProposalError:
                continue
        return None
