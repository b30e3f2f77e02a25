"""Where the rule proposer's candidate moves come from, for one ``propose`` call.

``Candidates`` reads a ``SearchState`` and offers, for a parent node, one-move mutations
most promising first (``moves``): first those the results around the parent point to,
then the neighbours of every free param the parent's variant reads (``live_params``),
ranked by how that kind of move did anywhere in the block's tree (``evidence``): kinds
that helped; untried kinds in weighted random order (once the block has ``stalled``:
uniform, the params the block never moved first); kinds whose effect was below
``FLAT_GAIN``; kinds that hurt. What a call computes once (the free params per avoid set,
which finished nodes were based on which, the evidence, the root config's key) is kept on
it; a new call gets a new one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import ProposalError
from inr_tune.model_keys import used_model_keys
from inr_tune.search.node import score_of
from inr_tune.search.proposers.base import Proposal, SearchState
from inr_tune.search.space import Param, StoredConfig, stored
from inr_tune.search.tree import DIVERGED, FAILED, Node, Tree

__all__ = ["FLAT_GAIN", "STALL_MIN", "Candidates", "move_key", "weighted_order"]

#: A score change smaller than this (per reward kind) counts as no change: about 2 % of the
#: unexplained variance in nines (0.01), 0.002 in R². A kind of move that only ever moved
#: the score this little ranks after the kinds never tried, and a node whose own move
#: gained this little is not followed further the same way: repeating a tie teaches
#: nothing, an untried param might.
FLAT_GAIN = {"nines": 0.01, "r2": 0.002}
#: ``Candidates.stalled``: the fewest trailing finished nodes that must all fail to raise
#: the block's best before the params' weights are set aside.
STALL_MIN = 4


def weighted_order(params: list[Param], rng: random.Random, uniform: bool = False) -> list[Param]:
    """Params in a random order biased by weight (Efraimidis–Spirakis keys); ``uniform``:
    every param with a weight > 0 counts as weight 1 (the same draws, so the same rng
    state after)."""
    keyed = [
        (rng.random() ** (1.0 if uniform else 1.0 / p.weight), p.name, p)
        for p in params
        if p.weight > 0
    ]
    return [p for _, _, p in sorted(keyed, key=lambda t: (-t[0], t[1]))]


class Candidates:
    """The candidate moves of one ``propose`` call on ``state`` (module docstring)."""

    def __init__(self, state: SearchState) -> None:
        self.state = state
        self._root: StoredConfig | None = None
        self._free: dict[tuple[str, ...], list[Param]] = {}
        self._based: dict[int, dict[int, list[Node]]] = {}
        self._evidence: dict[int, dict[tuple[str, Any], float]] = {}
        self._stalled: bool | None = None
        self._moved: tuple[int, set[str]] | None = None

    def known_repeat(self, scratch: Tree, taken: dict[str, int], proposal: Proposal) -> bool:
        """True when the proposal's child config is taken, found without building it.

        ``admit`` would refuse such a proposal anyway (as a repeat, or earlier for another
        reason); this is only the cheap way to the same answer for the many candidate
        moves that lead to configs tried before (``StoredConfig.child_key``).
        """
        if len(proposal.mutation) != 1:
            return False
        try:
            ((name, raw),) = proposal.mutation.items()
            p = self.state.space.param(str(name))
            value = p.coerce(raw)
        except ProposalError:
            return False
        base = self.stored_of(scratch, proposal.parent)
        return base is not None and base.child_key(p.key, value) in taken

    def stored_of(self, tree: Tree, parent: int | None) -> StoredConfig | None:
        if parent is None:
            if self._root is None:
                self._root = stored(self.state.root_config.to_dict())
            return self._root
        node = tree.get(parent)
        return None if node is None else stored(node.config)

    def config_of(self, tree: Tree, parent: int | None) -> Config:
        """The parent's config (shared: read it, never change it)."""
        return self.state.root_config if parent is None else stored(tree[parent].config).config

    def free_params(self, avoid: tuple[str, ...] = ()) -> list[Param]:
        if avoid in self._free:
            return list(self._free[avoid])
        pinned = set(self.state.pinned)
        out = []
        for name in self.state.space.search_params:
            p = self.state.space.param(name)
            if name in avoid or p.key in pinned or name in pinned or p.weight <= 0:
                continue
            out.append(p)
        self._free[avoid] = list(out)
        return out

    def live_params(self, cfg: Config, avoid: tuple[str, ...] = ()) -> list[Param]:
        """``free_params(avoid)`` less the model keys ``cfg``'s variant does not read
        (``used_model_keys``: moving them would train ``cfg``'s model again)."""
        used = used_model_keys(cfg.model)
        return [
            p
            for p in self.free_params(avoid)
            if not p.key.startswith("model.") or p.key[len("model.") :] in used
        ]

    def moves(
        self,
        tree: Tree,
        parent: int | None,
        rng: random.Random,
        avoid: tuple[str, ...] = (),
        only: tuple[str, ...] = (),
    ) -> Iterator[tuple[str, Any]]:
        """Candidate one-move mutations of ``parent``, most promising first.

        First the moves the results around ``parent`` point to (``informed_moves``), then
        every free param's neighbours ranked by what the block has seen of that kind of
        move anywhere in the tree (``evidence``): those that helped on average by more than
        ``FLAT_GAIN`` (largest mean gain first), then those never tried (params in weighted
        random order), then those that changed nothing (|mean gain| ≤ ``FLAT_GAIN``), then
        those that hurt (least harmful first). Once the block has ``stalled`` the params
        come in uniform random order and, among the untried moves, those of params no node
        of the block has moved yet (``moved_params``) come first: one value of each param
        before a second value of any (an untried value of a param whose first values tied
        is the same bet again).
        """
        cfg = self.config_of(tree, parent)
        params = self.live_params(cfg, avoid)
        if only:
            params = [p for name in only for p in params if p.name == name]
        names = {p.name for p in params}
        node = tree.get(parent)
        if node is not None:
            yield from self.informed_moves(tree, node, cfg, names)
        gains = self.evidence(tree)
        flat = self.flat_gain
        stalled = self.stalled(tree)
        moved = self.moved_params(tree) if stalled else set()
        helped, fresh, untried, tied, hurt = [], [], [], [], []
        for p in weighted_order(params, rng, uniform=stalled):
            values = p.neighbours(cfg.get(p.key))
            rng.shuffle(values)
            for v in values:
                gain = gains.get(move_key(p, cfg.get(p.key), v))
                if gain is None:
                    (fresh if stalled and p.name not in moved else untried).append((p.name, v))
                    continue
                group = helped if gain > flat else tied if gain >= -flat else hurt
                group.append((-gain, len(helped) + len(tied) + len(hurt), p.name, v))
        for _, _, name, v in sorted(helped):
            yield name, v
        yield from fresh
        yield from untried
        for _, _, name, v in sorted(tied) + sorted(hurt):
            yield name, v

    def stalled(self, tree: Tree) -> bool:
        """The block's best score rose by no more than ``FLAT_GAIN`` over its last
        ``STALL`` finished nodes (``n_iter_block // 4``, at least 4). The weights are the
        space's prior on which params matter; when the moves they ranked first have
        stopped paying, untried params come in a uniform random order instead (a
        low-weight param such as the INR variant is otherwise tried last). Once per call."""
        if self._stalled is None:
            kind = "r2" if self.state.reward == "r2" else "nines"
            scores = [
                score_of(n.r2, kind)
                for n in sorted(tree.block_nodes(self.state.block), key=lambda n: n.id)
                if n.finished
            ]
            k = max(STALL_MIN, self.state.n_iter_block // 4)
            self._stalled = len(scores) > k and max(scores) <= max(scores[:-k]) + self.flat_gain
        return self._stalled

    def moved_params(self, tree: Tree) -> set[str]:
        """Names of the params some one-move node of the block mutated, finished or
        pending (``tree`` is the call's scratch tree: this call's proposals count). Kept
        while the tree has as many nodes (one exploit asks for every node it tries)."""
        if self._moved is None or self._moved[0] != len(tree):
            moved = {
                str(n.mutated)
                for n in tree.block_nodes(self.state.block)
                if n.mutated and len(n.mutation) == 1
            }
            self._moved = (len(tree), moved)
        return self._moved[1]

    @property
    def flat_gain(self) -> float:
        """``FLAT_GAIN`` for the state's reward (pareto ranks by nines)."""
        return FLAT_GAIN["r2" if self.state.reward == "r2" else "nines"]

    def evidence(self, tree: Tree) -> dict[tuple[str, Any], float]:
        """The mean score change of each kind of move over the block's finished one-move
        trials: ``{move_key: mean(score(node) − score(reference))}`` (the node against its
        parent, or the baseline for a block-root mutation). The score is ``score_of``, the
        one UCB's Q is scaled from: unclipped below R² = 0, so a move from R² −0.5 to −1.5
        hurt; a failed node scores as R² −1. Computed once per call (within a call only
        pending nodes are added)."""
        block = self.state.block
        if block in self._evidence:
            return self._evidence[block]
        kind = "r2" if self.state.reward == "r2" else "nines"
        changes: dict[tuple[str, Any], list[float]] = {}
        for node in tree.block_nodes(block):
            if not node.finished or len(node.mutation) != 1:
                continue
            ref = tree.reference(node.id)
            name = str(node.mutated)
            if ref is None or not ref.finished or name not in self.state.space.search_params:
                continue
            old, new = node.mutation[name]
            key = move_key(self.state.space.param(name), old, new)
            changes.setdefault(key, []).append(score_of(node.r2, kind) - score_of(ref.r2, kind))
        out = {k: sum(v) / len(v) for k, v in changes.items()}
        self._evidence[block] = out
        return out

    def informed_moves(
        self, tree: Tree, node: Node, cfg: Config, names: set[str]
    ) -> Iterator[tuple[str, Any]]:
        """Moves suggested by results around ``node``.

        - ``node``'s own mutation helped (by more than ``FLAT_GAIN``): go further the
          same way;
        - a trial based on ``node`` (child, or block-root mutation of a baseline) got worse
          (by more than ``FLAT_GAIN``, or failed) moving a param one way: try the other way;
        - ``node`` failed or diverged: lower lr, then lower ω.
        """
        space = self.state.space

        def direction(old: Any, new: Any) -> int:
            if isinstance(old, (int, float)) and isinstance(new, (int, float)):
                return 1 if new > old else -1
            return 0

        kind = "r2" if self.state.reward == "r2" else "nines"
        flat = self.flat_gain
        ref = tree.reference(node.id)
        helped = (
            node.mutated in names
            and ref is not None
            and node.r2 is not None
            and (ref.r2 is None or score_of(node.r2, kind) > score_of(ref.r2, kind) + flat)
        )
        if helped:
            old, new = node.mutation[str(node.mutated)]
            d = direction(old, new)
            if d:
                for v in space.param(str(node.mutated)).step(new, d):
                    yield str(node.mutated), v
        if node.r2 is not None:
            for other in self.based_on(tree, node):
                if other.mutated not in names:
                    continue
                if other.r2 is None or score_of(other.r2, kind) < score_of(node.r2, kind) - flat:
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

    def based_on(self, tree: Tree, node: Node) -> list[Node]:
        """Finished, mutated nodes of ``node``'s block whose reference is ``node``, in id
        order (indexed once per call: within a call only pending nodes are added)."""
        index = self._based.get(node.block)
        if index is None:
            index = {}
            for other in tree.block_nodes(node.block):
                if other.finished and other.mutated:
                    ref = tree.reference(other.id)
                    if ref is not None:
                        index.setdefault(ref.id, []).append(other)
            self._based[node.block] = index
        return [n for n in index.get(node.id, []) if tree.reference(n.id) is node]


def move_key(p: Param, old: Any, new: Any) -> tuple[str, Any]:
    """What kind of move ``old → new`` of ``p`` is: ``(name, +1 | -1)`` for a number moved
    up or down, ``(name, repr(new))`` for a choice (or a move to or from null)."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (old, new))
    if not p.is_choice and numbers:
        return (p.name, 1 if new > old else -1)
    return (p.name, repr(new))
