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
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from inr_tune.config import Config
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
from inr_tune.search.space import Param, StoredConfig, config_key, fmt_value, stored
from inr_tune.search.tree import DIVERGED, EARLY_STOPPED, FAILED, Node, Tree
from inr_tune.search.verdict import describe_change, seed_noise

__all__ = ["RuleProposer", "explain", "observation"]


def _arrow(old: Any, new: Any) -> str:
    return f"{fmt_value(old)}→{fmt_value(new)}"


def explain(param: str, old: Any, new: Any, cfg: Config, state: SearchState) -> tuple[str, str]:
    """A one-sentence reason for changing ``param`` from ``old`` to ``new``, and ``expect``.

    The reasons are the study's known facts (higher ω needs lower lr, the best ω falls as
    frames grow, capacity limits C and S, …), filled in with this config's numbers.
    """
    f, frames = state.field, state.n_frames
    omega, lr, steps = cfg.model.omega, cfg.training.lr, cfg.training.total_steps
    up = isinstance(old, (int, float)) and isinstance(new, (int, float)) and new > old
    a = _arrow(old, new)
    if param == "lr":
        prod = omega * float(new)
        if up:
            return (
                f"raising lr {a} should let {f} converge further within {fmt_value(steps)} steps; "
                f"higher ω needs lower lr, so ω·lr = {prod:.2g} at ω={fmt_value(omega)} tests the ceiling",
                "improve",
            )
        return (
            f"lowering lr {a} should steady training at ω={fmt_value(omega)} "
            f"(higher ω needs lower lr; ω·lr becomes {prod:.2g})",
            "improve",
        )
    if param == "omega":
        if up:
            return (
                f"raising ω {a} lets the SIREN resolve finer detail of {f} across {frames} frames; "
                f"at lr={fmt_value(lr)} ω·lr becomes {float(new) * lr:.2g}",
                "improve",
            )
        return (
            f"lowering ω {a}: the best ω falls as the frame count grows, and {frames} frames "
            "may want a smoother basis",
            "improve",
        )
    if param == "omega_hidden":
        hid = omega if new is None else float(new)
        note = "following ω" if new is None else "the SIREN paper keeps 30"
        return (
            f"omega_hidden {a} puts the hidden layers at ω={fmt_value(hid)} ({note}): the hidden ω "
            f"scales each step of the hidden weights (≈ ω·lr = {hid * lr:.2g}), not the init",
            "improve",
        )
    if param == "hidden_dim":
        if up:
            return (
                f"widening hidden_dim {a} adds capacity, the usual limit for {f} at {frames} frames",
                "improve",
            )
        return (
            f"narrowing hidden_dim {a} tests whether capacity is the limit; if R² holds, the config is cheaper",
            "same",
        )
    if param == "n_layers":
        if up:
            return (
                f"one more layer (n_layers {a}) adds depth; depth mattered for F at 400 frames",
                "improve",
            )
        return (f"one layer fewer (n_layers {a}) tests whether depth is the limit", "same")
    if param == "total_steps":
        if up:
            per = float(new) / max(1, frames)
            return (
                f"more steps (total_steps {a}, {per:.0f} per frame): if the loss was still falling, R² should rise",
                "improve",
            )
        return (f"fewer steps (total_steps {a}) tests for over-training and saves time", "same")
    if param == "batch_size":
        if up:
            return (
                f"batch_size {a}: more frames per step average the gradient",
                "improve",
            )
        return (
            f"batch_size {a}: fewer frames per step give more updates per frame seen",
            "improve",
        )
    if param in ("t_period", "xy_period"):
        axis = "time" if param == "t_period" else "space"
        way = "stretches" if up else "compresses"
        return (
            f"{param} {a} {way} the {axis} encoding, moving the frequency band ω={fmt_value(omega)} "
            f"covers along {axis}",
            "improve",
        )
    if param == "optimizer":
        return (f"optimizer {a}: another update rule may leave the current basin", "improve")
    if param == "schedule":
        return (f"schedule {a} changes how lr decays over {fmt_value(steps)} steps", "improve")
    if param == "loss":
        return (f"loss {a}: a robust loss discounts the outliers of heavy-tailed fields", "improve")
    if param == "grad_clip":
        return (f"gradient clipping {a} bounds the size of rare large updates", "improve")
    if param == "points_per_step":
        return (f"points per step {a} trades gradient noise against speed per step", "same")
    if param == "inr_type":
        return (
            f"inr_type {a}: the input encoding decides what the net must learn "
            "(siren_t won at 100 frames, siren_id failed with 9000 particles)",
            "improve",
        )
    return (f"{param} {a}", "improve")


class _Call:
    """What one ``propose`` call computes once: the root config's key, the free params per
    ``avoid``, and which finished nodes were based on which."""

    def __init__(self) -> None:
        self.root: StoredConfig | None = None
        self.free: dict[tuple[str, ...], list[Param]] = {}
        self.based: dict[int, dict[int, list[Node]]] = {}


def _weighted_order(params: list[Param], rng: random.Random) -> list[Param]:
    """Params in a random order biased by weight (Efraimidis–Spirakis keys)."""
    keyed = [(rng.random() ** (1.0 / p.weight), p.name, p) for p in params if p.weight > 0]
    return [p for _, _, p in sorted(keyed, key=lambda t: (-t[0], t[1]))]


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
        self._call: _Call | None = None  # what one ``propose`` call computes once

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
        self._call = _Call()
        if not any(n.finished for n in scratch.block_nodes(state.block)):
            self._opening(state, scratch, taken, rng, n_slots, batch)
            return batch
        triggers = state.triggers(scratch, taken=set(taken))
        limit = self.max_special if self.max_special is not None else max(1, n_slots // 2)
        avoid = tuple(strategies.overused_params(scratch, state.block))
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
        if self._known_repeat(state, scratch, taken, proposal):
            return None
        try:
            return admit(state, scratch, taken, proposal)
        except ProposalError:
            return None

    def _known_repeat(
        self, state: SearchState, scratch: Tree, taken: dict[str, int], proposal: Proposal
    ) -> bool:
        """True when the proposal's child config is taken, found without building it.

        ``admit`` would refuse such a proposal anyway (as a repeat, or earlier for another
        reason); this is only the cheap way to the same answer for the many candidate
        moves that lead to configs tried before (``StoredConfig.child_key``).
        """
        if len(proposal.mutation) != 1:
            return False
        try:
            ((name, raw),) = proposal.mutation.items()
            p = state.space.param(str(name))
            value = p.coerce(raw)
        except ProposalError:
            return False
        base = self._stored_of(state, scratch, proposal.parent)
        return base is not None and base.child_key(p.key, value) in taken

    def _stored_of(self, state: SearchState, tree: Tree, parent: int | None) -> StoredConfig | None:
        if parent is None:
            call = self._call
            if call is None:
                return None
            if call.root is None:
                call.root = stored(state.root_config.to_dict())
            return call.root
        node = tree.get(parent)
        return None if node is None else stored(node.config)

    def _config_of(self, state: SearchState, tree: Tree, parent: int | None) -> Config:
        """The parent's config (shared: read it, never change it)."""
        return state.root_config if parent is None else stored(tree[parent].config).config

    def _free_params(self, state: SearchState, avoid: tuple[str, ...] = ()) -> list[Param]:
        call = self._call
        if call is not None and avoid in call.free:
            return list(call.free[avoid])
        pinned = set(state.pinned)
        out = []
        for name in state.space.search_params:
            p = state.space.param(name)
            if name in avoid or p.key in pinned or name in pinned or p.weight <= 0:
                continue
            out.append(p)
        if call is not None:
            call.free[avoid] = list(out)
        return out

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
        cfg = self._config_of(state, scratch, parent)
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

    # ------------------------------------------------------------------ moves

    def _moves(
        self,
        state: SearchState,
        tree: Tree,
        parent: int | None,
        rng: random.Random,
        avoid: tuple[str, ...] = (),
        only: tuple[str, ...] = (),
    ) -> Iterator[tuple[str, Any]]:
        """Candidate one-move mutations of ``parent``, most promising first.

        First the moves the results point to (``_informed_moves``), then every param's
        neighbours, params in weighted random order.
        """
        cfg = self._config_of(state, tree, parent)
        params = self._free_params(state, avoid)
        if only:
            params = [p for name in only for p in params if p.name == name]
        names = {p.name for p in params}
        node = tree.get(parent)
        if node is not None:
            yield from self._informed_moves(state, tree, node, cfg, names)
        for p in _weighted_order(params, rng):
            values = p.neighbours(cfg.get(p.key))
            rng.shuffle(values)
            for v in values:
                yield p.name, v

    def _informed_moves(
        self, state: SearchState, tree: Tree, node: Node, cfg: Config, names: set[str]
    ) -> Iterator[tuple[str, Any]]:
        """Moves suggested by results around ``node``.

        - ``node``'s own mutation helped: go further the same way;
        - a trial based on ``node`` (child, or block-root mutation of a baseline) got worse
          moving a param one way: try the other way;
        - ``node`` failed or diverged: lower lr, then lower ω.
        """
        space = state.space

        def direction(old: Any, new: Any) -> int:
            if isinstance(old, (int, float)) and isinstance(new, (int, float)):
                return 1 if new > old else -1
            return 0

        ref = tree.reference(node.id)
        helped = (
            node.mutated in names
            and ref is not None
            and node.r2 is not None
            and (ref.r2 is None or node.r2 > ref.r2)
        )
        if helped:
            old, new = node.mutation[str(node.mutated)]
            d = direction(old, new)
            if d:
                for v in space.param(str(node.mutated)).step(new, d):
                    yield str(node.mutated), v
        if node.r2 is not None:
            for other in self._based_on(tree, node):
                if other.mutated not in names:
                    continue
                if other.r2 is None or other.r2 < node.r2:
                    old, new = other.mutation[other.mutated]
                    d = direction(old, new)
                    if d:
                        p = space.param(other.mutated)
                        for v in p.step(cfg.get(p.key), -d):
                            yield p.name, v
        if node.status in (FAILED, DIVERGED):
            for name in ("lr", "omega"):
                if name in names:
                    p = space.param(name)
                    for v in p.step(cfg.get(p.key), -1):
                        yield name, v

    def _based_on(self, tree: Tree, node: Node) -> list[Node]:
        """Finished, mutated nodes of ``node``'s block whose reference is ``node``, in id
        order (indexed once per call: within a call only pending nodes are added)."""
        call = self._call
        index = call.based.get(node.block) if call is not None else None
        if index is None:
            index = {}
            for other in tree.block_nodes(node.block):
                if other.finished and other.mutated:
                    ref = tree.reference(other.id)
                    if ref is not None:
                        index.setdefault(ref.id, []).append(other)
            if call is not None:
                call.based[node.block] = index
        return [n for n in index.get(node.id, []) if tree.reference(n.id) is node]

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
        ranked = sorted(self._free_params(state), key=lambda p: (-p.weight, rng.random(), p.name))
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
        for p in self._free_params(state):
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
        if not self._free_params(state, avoid):
            return None  # every param is avoided: no node has a move (and no rng is drawn)
        for score in scratch.ucb_scores(state.block, state.ucb_c, state.reward):
            node = score.node
            lead = (
                f"Exploit node {node.id} (highest UCB {score.ucb:.3f}, "
                f"{'R² ' + format(node.r2, '.5f') if node.r2 is not None else node.status})"
            )
            moves = self._moves(state, scratch, node.id, rng, avoid)
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
                cfg = self._config_of(state, scratch, parent)
                reason, _ = explain(name, cfg.get(state.space.key_of(name)), value, cfg, state)
                text = f"Recombine: {trig.reason}; {reason}."
                expect = "improve"
            return self._commit(
                state, scratch, taken, Proposal(parent, dict(trig.mutation), s, text, expect)
            )
        if s == "failure-probe":
            return self._probe(trig, state, scratch, taken, rng)
        if s == "stochastic-field":
            moves = self._moves(state, scratch, parent, rng, only=trig.params)
            return self._try(
                state, scratch, taken, parent, moves, s, f"Stochastic field: {trig.reason}"
            )
        moves = self._moves(state, scratch, parent, rng, tuple(set(avoid) | set(trig.avoid)))
        title = {
            "explore": "Explore",
            "forced-branch": "Forced branch",
            "switch-param": "Switch param",
        }
        return self._try(
            state, scratch, taken, parent, moves, s, f"{title.get(s, s)}: {trig.reason}"
        )

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
        cfg = self._config_of(state, scratch, trig.parent)
        probed = {
            n.mutated for n in scratch.block_nodes(state.block) if n.strategy == "failure-probe"
        }
        params = [p for p in self._free_params(state) if p.probe != "none"]
        order = _weighted_order([p for p in params if p.name not in probed], rng) + (
            _weighted_order([p for p in params if p.name in probed], rng)
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
                    f"{_arrow(current, value)}, far {'above' if d > 0 else 'below'} the working "
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


def observation(tree: Tree, node: Node, classes: dict[str, float]) -> str:
    """``R² 0.99912 vs parent 0.99870: better by 0.00042 (+0.17 nines); omega 8→12``.

    Numbers only: the verdict on the hypothesis is computed once, at the block's end
    (``verdict.judge``), and shown beside this observation.
    """
    ref = tree.reference(node.id)
    mut = ", ".join(f"{k} {_arrow(o, n)}" for k, (o, n) in node.mutation.items())
    tail = f"; {mut}" if mut else ""
    if node.r2 is None:
        reason = f" ({node.error})" if node.error else ""
        return f"{node.status}{reason}{tail}"
    grade = strategies.quality(node.r2, classes) if classes else ""
    if ref is None:
        return f"baseline R² {node.r2:.5f}" + (f" ({grade})" if grade else "")
    label = "parent" if node.parent is not None else "baseline"
    text = describe_change(node.r2, ref.r2, label)
    if node.status == EARLY_STOPPED:
        text = "stopped early; " + text
    if grade:
        text += f", {grade}"
    noise = seed_noise(tree, node.id)
    if node.strategy == "robustness-test" and noise is not None:
        text += f"; seed SD so far {noise:.3f} nines"
    return text + tail
