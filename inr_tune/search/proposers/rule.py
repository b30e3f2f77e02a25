"""The offline proposer: the strategy table applied by rules, deterministic for a seed.

``RuleProposer.propose``:

1. writes an observation on each finished node (R² against its reference, in numbers and
   nines, and the mutation; the verdict comes at the block's end, from ``verdict.judge``);
2. at a block's start (no finished node yet) proposes the baseline (the root config
   unchanged) and fills the other slots with one-move mutations of the root config on
   different params (heaviest ``weight`` first: lr, ω, width in the shipped spaces), all
   with parent None;
3. otherwise realises the triggered strategies (``strategies.detect``; at most half the
   slots, one each) and fills the remaining slots with exploit proposals on the
   highest-UCB node.

Parallel picks spread out inside one call: each accepted proposal is added as a pending
node to a scratch copy of the tree before the next pick, so its parent's visits grow and
its UCB drops. The caller adds the real pending nodes after the batch. Every proposal
passes ``check_proposal``, so none is invalid, pinned or a repeat. The random generator
is seeded from (seed, tree size, block): the same tree gives the same proposals.

Where the candidate moves come from is ``moves.py``; the reasons and observations are
worded in ``reasons.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.proposers.base import (
    NodeNote,
    Proposal,
    ProposalBatch,
    Proposer,
    SearchState,
    admit,
    scratch_copy,
    taken_configs,
)
from inr_tune.search.proposers.moves import Candidates, weighted_order
from inr_tune.search.proposers.reasons import arrow, explain, observation
from inr_tune.search.space import config_key, fmt_value
from inr_tune.search.sweep import FitCache
from inr_tune.search.tree import Tree

__all__ = ["RuleProposer", "explain", "observation"]


class RuleProposer(Proposer):
    """Applies the strategy table by rules; deterministic for ``seed``."""

    name = "rule"

    def __init__(self, seed: int = 0, max_special: int | None = None) -> None:
        """``max_special``: most slots per call given to non-exploit strategies
        (default: half the slots, at least one)."""
        if seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {seed}")
        self.seed = int(seed)
        self.max_special = max_special
        self._call: Candidates | None = None  # the candidate moves of the current call
        self._fits = FitCache()  # ``_sweep``'s family switches, fitted to the budget

    # ------------------------------------------------------------------ entry point

    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Notes on ``state.finished``, then up to ``n_slots`` proposals (module docstring)."""
        notes = [self.observe(state, i) for i in state.finished if i in state.tree]
        batch = ProposalBatch([], [n for n in notes if n is not None], [])
        if n_slots <= 0:
            return batch
        rng = random.Random(self.seed * 1_000_003 + len(state.tree) * 7_919 + state.block)
        scratch = scratch_copy(state.tree)
        taken = taken_configs(scratch)
        self._call = Candidates(state)
        if not any(n.finished for n in scratch.block_nodes(state.block)):
            self._opening(state, scratch, taken, rng, n_slots, batch)
            return batch
        triggers = state.triggers(scratch, taken=set(taken))
        limit = self.max_special if self.max_special is not None else max(1, n_slots // 2)
        free = [p.name for p in self._cands.free_params()]
        avoid = tuple(strategies.overused_params(scratch, state.block, among=free))
        for trig in triggers:
            if len(batch.proposals) >= min(limit, n_slots):
                break
            proposal = self._realise(trig, state, scratch, taken, rng, avoid)
            if proposal is not None:
                batch.proposals.append(proposal)
                if trig.strategy == "stochastic-field":
                    batch.remarks.append(f"stochastic field flagged: {trig.reason}")
        while len(batch.proposals) < n_slots:
            proposal = self._exploit(state, scratch, taken, rng, avoid)
            if proposal is None:
                break
            batch.proposals.append(proposal)
        return batch

    # ------------------------------------------------------------------ bookkeeping

    def _commit(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], proposal: Proposal
    ) -> Proposal | None:
        """Check a proposal; if valid, add it to the scratch tree as a pending node."""
        if self._cands.known_repeat(scratch, taken, proposal):
            return None
        try:
            return admit(state, scratch, taken, proposal)
        except ProposalError:
            return None

    def _try(
        self,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        parent: int | None,
        moves: Iterator[tuple[str, Any]],
        strategy: str,
        lead: str,
        expect: str | None = None,
    ) -> Proposal | None:
        """The first valid, untried ``(param, value)`` of ``moves`` as a proposal."""
        cfg = self._cands.config_of(scratch, parent)
        for name, value in moves:
            p = state.space.param(name)
            old = cfg.get(p.key)
            reason, default_expect = explain(name, old, value, cfg, state)
            proposal = Proposal(
                parent,
                {name: value},
                strategy,
                f"{lead}: {reason}.",
                expect if expect is not None else default_expect,
            )
            if self._commit(state, scratch, taken, proposal) is not None:
                return proposal
        return None

    @property
    def _cands(self) -> Candidates:
        assert self._call is not None, "only within propose"
        return self._call

    # ------------------------------------------------------------------ strategies

    def _opening(
        self,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        rng: random.Random,
        n_slots: int,
        batch: ProposalBatch,
    ) -> None:
        """Block start: the baseline, then root-config mutations on distinct params."""
        if config_key(state.root_config) not in taken:
            baseline = Proposal(
                None,
                {},
                "baseline",
                f"Baseline: the block's starting config as given ({state.field}, "
                f"{state.n_frames} frames) is the reference for this block's mutations.",
                None,
            )
            if self._commit(state, scratch, taken, baseline) is not None:
                batch.proposals.append(baseline)
        grow = self._fill_budget(state, scratch, taken)
        if grow is not None and len(batch.proposals) < n_slots:
            batch.proposals.append(grow)
        used = {n.mutated for n in scratch.block_nodes(state.block) if n.mutated}
        ranked = sorted(
            self._cands.live_params(state.root_config),
            key=lambda p: (-p.weight, rng.random(), p.name),
        )
        for p in ranked:
            if len(batch.proposals) >= n_slots:
                break
            if p.name in used:
                continue
            values = p.neighbours(state.root_config.get(p.key))
            rng.shuffle(values)
            proposal = self._try(
                state,
                scratch,
                taken,
                None,
                iter((p.name, v) for v in values),
                "explore",
                "Opening spread around the root config",
            )
            if proposal is not None:
                batch.proposals.append(proposal)
                used.add(p.name)

    def _fill_budget(
        self, state: SearchState, scratch: Tree, taken: dict[str, int]
    ) -> Proposal | None:
        """A root far inside the size budget (ratio ≥ 1.5 × min_ratio) gets one opening move
        that adds the most parameters while staying inside it (one step of a size param:
        width, depth, rank, …); later exploits keep going that way while it helps."""
        from inr_tune.search.budget import SIZE_KEYS

        if state.size is None or state.min_ratio is None or state.check_config is None:
            return None
        root = state.root_config
        n_values = state.size_values
        if n_values / max(1, state.size(root)) < 1.5 * state.min_ratio:
            return None
        pinned = set(state.pinned)
        best: tuple[int, str, Any] | None = None
        for p in self._cands.live_params(root):
            if p.key not in SIZE_KEYS or p.key in pinned:
                continue
            for v in p.step(root.get(p.key), +1):
                try:
                    child = state.space.apply(root, {p.name: v})
                except ProposalError:
                    continue
                if state.check_config(child) is None and config_key(child) not in taken:
                    size = state.size(child)
                    if best is None or size > best[0]:
                        best = (size, p.name, v)
        if best is None:
            return None
        _, name, value = best
        ratio = n_values / max(1, state.size(root))
        return self._try(
            state,
            scratch,
            taken,
            None,
            iter([(name, value)]),
            "explore",
            f"Fill the size budget (the root holds {ratio:.0f}×, the budget allows "
            f"{fmt_value(state.min_ratio)}×)",
            "improve",
        )

    def _exploit(
        self,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        rng: random.Random,
        avoid: tuple[str, ...],
    ) -> Proposal | None:
        """One mutation of the highest-UCB node that still has an untried move."""
        if not self._cands.free_params(avoid):
            return None  # every param is avoided: no node has a move (and no rng is drawn)
        for score in scratch.ucb_scores(state.block, state.ucb_c, state.reward):
            node = score.node
            lead = (
                f"Exploit node {node.id} (highest UCB {score.ucb:.3f}, "
                f"{'R² ' + format(node.r2, '.5f') if node.r2 is not None else node.status})"
            )
            moves = self._cands.moves(scratch, node.id, rng, avoid)
            proposal = self._try(state, scratch, taken, node.id, moves, "exploit", lead)
            if proposal is not None:
                return proposal
        return None

    def _realise(
        self,
        trig: strategies.Trigger,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        rng: random.Random,
        avoid: tuple[str, ...],
    ) -> Proposal | None:
        """Turn a trigger into a checked proposal (None if no valid one exists)."""
        s = trig.strategy
        parent = trig.parent
        if parent is None or parent not in scratch:
            return None
        if trig.mutation is not None:  # recombine, robustness-test: the mutation is fixed
            ((name, value),) = trig.mutation.items()
            if s == "robustness-test":
                text = (
                    f"Robustness test of node {parent}: {trig.reason}; R² should stay within "
                    "seed noise, which then sets the tolerance for later verdicts."
                )
                expect = "same"
            else:
                cfg = self._cands.config_of(scratch, parent)
                reason, _ = explain(name, cfg.get(state.space.key_of(name)), value, cfg, state)
                text = f"Recombine: {trig.reason}; {reason}."
                expect = "improve"
            return self._commit(
                state, scratch, taken, Proposal(parent, dict(trig.mutation), s, text, expect)
            )
        if s == "failure-probe":
            return self._probe(trig, state, scratch, taken, rng)
        if s == "variant-sweep":
            return self._sweep(trig, state, scratch, taken)
        if s == "stochastic-field":
            moves = self._cands.moves(scratch, parent, rng, only=trig.params)
            return self._try(
                state, scratch, taken, parent, moves, s, f"Stochastic field: {trig.reason}"
            )
        moves = self._cands.moves(scratch, parent, rng, tuple(set(avoid) | set(trig.avoid)))
        title = {
            "explore": "Explore",
            "forced-branch": "Forced branch",
            "switch-param": "Switch param",
        }
        return self._try(
            state, scratch, taken, parent, moves, s, f"{title.get(s, s)}: {trig.reason}"
        )

    def _sweep(
        self,
        trig: strategies.Trigger,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
    ) -> Proposal | None:
        """The first family of the trigger's that gives a valid proposal from its parent,
        fitted to the budget where it must be (``sweep.FitCache``)."""
        assert trig.parent is not None
        base = self._cands.stored_of(scratch, trig.parent)
        if base is None:
            return None
        for name, value in trig.moves:
            mutation = self._fits.move(state, base, name, value)
            if mutation is None:
                continue
            old = base.get(state.space.param(name).key)
            reason, expect = explain(name, old, value, base.config, state)
            text = f"Variant sweep: {trig.reason}; {reason}"
            if len(mutation) > 1:
                steps = ", ".join(
                    f"{k} {arrow(base.get(state.space.param(k).key), v)}"
                    for k, v in list(mutation.items())[1:]
                )
                text += f", with {steps} to fit the size budget"
            proposal = Proposal(trig.parent, dict(mutation), "variant-sweep", text + ".", expect)
            if self._commit(state, scratch, taken, proposal) is not None:
                return proposal
        return None

    def _probe(
        self,
        trig: strategies.Trigger,
        state: SearchState,
        scratch: Tree,
        taken: dict[str, int],
        rng: random.Random,
    ) -> Proposal | None:
        """Push one probe-able param (not probed yet this block) to an extreme value."""
        assert trig.parent is not None
        cfg = self._cands.config_of(scratch, trig.parent)
        probed = {
            n.mutated for n in scratch.block_nodes(state.block) if n.strategy == "failure-probe"
        }
        params = [p for p in self._cands.live_params(cfg) if p.probe != "none"]
        order = weighted_order([p for p in params if p.name not in probed], rng) + (
            weighted_order([p for p in params if p.name in probed], rng)
        )
        for p in order:
            current = cfg.get(p.key)
            if p.probe == "both":
                pos = p.position(current)
                dirs = [1, -1] if pos is None or pos < 0.5 else [-1, 1]
            else:
                dirs = [1] if p.probe == "up" else [-1]
            for d in dirs:
                value = p.extreme(current, d)
                if value is None:
                    continue
                proposal = Proposal(
                    trig.parent,
                    {p.name: value},
                    "failure-probe",
                    f"Failure probe from node {trig.parent} ({trig.reason}): pushing {p.name} "
                    f"{arrow(current, value)}, far {'above' if d > 0 else 'below'} the working "
                    "value, should break the fit and show where the good region ends.",
                    "worsen",
                )
                if self._commit(state, scratch, taken, proposal) is not None:
                    return proposal
        return None

    # ------------------------------------------------------------------ observations

    def observe(self, state: SearchState, node_id: int) -> NodeNote | None:
        """An observation on a finished node, comparisons computed from the numbers."""
        tree = state.tree
        node = tree[node_id]
        if node.pending:
            return None
        return NodeNote(node_id, observation(tree, node, state.classes))
