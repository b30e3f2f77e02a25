"""The proposer interface: what a proposer is given, what it returns, how that is checked.

Every proposer (rule-based, LLM) implements ``Proposer.propose``; the block runner calls
it, passes each proposal through ``check_proposal`` (the same check for every proposer),
and adds the accepted ones to the tree as pending nodes.
"""

from __future__ import annotations

import dataclasses
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inr_tune.config import Config
from inr_tune.errors import ProposalError
from inr_tune.model_keys import used_model_keys
from inr_tune.search import strategies
from inr_tune.search.space import SearchSpace, as_config, config_key, stored
from inr_tune.search.tree import EXPECTS, Node, Tree
from inr_tune.search.trigger import ALL_STRATEGIES, SEARCHER_STRATEGIES

__all__ = [
    "BlockReview",
    "NodeNote",
    "Proposal",
    "ProposalBatch",
    "Proposer",
    "SearchState",
    "admit",
    "check_effective",
    "check_proposal",
    "scratch_copy",
    "taken_configs",
]


@dataclass
class Proposal:
    """One trial to run: ``parent``'s config with one mutation.

    ``parent`` is a finished node of the current block, or None for the block's root config
    (``SearchState.root_config``). ``mutation`` is ``{param: new value}`` with exactly one
    param (short name or dotted key); under the strategies ``random`` and ``tpe`` (configs
    drawn from the space by ``--searcher random|tpe``) the parent is None and the mutation
    holds every param that differs from the root config. An empty mutation is allowed only
    for the block's baseline: strategy ``"baseline"``, parent None, the root config run
    unchanged.

    The first batch of a block has no finished node to branch from, so it holds the
    baseline plus mutations of the root config, all with parent None (block roots).
    ``expect`` is the hypothesis' predicted direction ("improve", "worsen", "same"); the
    verdict on it is computed in code at the block's end (``verdict.judge``).
    """

    parent: int | None
    mutation: dict[str, Any]
    strategy: str
    hypothesis: str
    expect: str | None = None


@dataclass
class NodeNote:
    """A proposer's remarks on a finished node (shown in analysis.md)."""

    node_id: int
    observation: str
    visual: str | None = None  # a remark on the field panel (LLM only)


@dataclass
class ProposalBatch:
    """What ``propose`` returns: proposals, notes on finished nodes, free remarks."""

    proposals: list[Proposal] = field(default_factory=list)
    notes: list[NodeNote] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class BlockReview:
    """The block-end review: summary and knowledge for memory.md, next ucb_c, new rules."""

    summary: str
    principles: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)
    next_ucb_c: float = 1.414
    new_rules: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class SearchState:
    """Everything a proposer may look at. The tree is read-only to proposers."""

    tree: Tree
    space: SearchSpace
    block: int
    iter_in_block: int  # trials of this block already added (finished + pending)
    n_iter_block: int  # trials per block
    field: str
    n_frames: int
    ucb_c: float = 1.414
    reward: str = "nines"
    classes: dict[str, float] = field(default_factory=dict)  # quality classes, best first
    pinned: dict[str, Any] = field(default_factory=dict)  # {dotted key: value} set by the user
    finished: list[int] = field(default_factory=list)  # nodes finished since the last call
    user_input: str = ""
    memory: str = ""
    brief: str = ""
    root_config: Config  # the block's starting config
    rules: list[str] = field(default_factory=list)  # the run's own added rules
    # None when a config may run, else why not (size budget, GPU memory); see budget.py
    check_config: Callable[[Config], str | None] | None = None
    budget: str = ""  # the size budget in words, for prompts
    min_ratio: float | None = None  # the active size budget (None: size ignored)
    size: Callable[[Config], int] | None = None  # trainable parameters of a config
    size_values: int = 0  # values of the window (ratio = size_values / size(config))

    def triggers(
        self, tree: Tree | None = None, taken: set[str] | None = None
    ) -> list[strategies.Trigger]:
        """The strategies whose conditions hold on ``tree`` (default: this state's tree)."""
        return strategies.detect(
            self.tree if tree is None else tree,
            self.block,
            self.space,
            n_iter_block=self.n_iter_block,
            classes=self.classes,
            ucb_c=self.ucb_c,
            reward=self.reward,
            pinned=self.pinned,
            field=self.field,
            taken=taken,
        )


# per tree: (nodes seen, the last of them, config_key → first node id); a tree only grows
_TAKEN: weakref.WeakKeyDictionary[Tree, tuple[int, Node | None, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)


def taken_configs(tree: Tree) -> dict[str, int]:
    """``config_key`` → first node id having that config, over the whole run.

    A new dict each call (callers add to it). Nodes are only ever appended and their
    configs never edited, so each tree's answer is kept and only new nodes are keyed.
    """
    nodes = tree.nodes
    seen = _TAKEN.get(tree)
    if (
        seen is not None
        and seen[0] <= len(nodes)
        and (not seen[0] or nodes[seen[0] - 1] is seen[1])
    ):
        start, out = seen[0], dict(seen[2])
    else:
        start, out = 0, {}
    for node in nodes[start:]:
        out.setdefault(stored(node.config).key, node.id)
    _TAKEN[tree] = (len(nodes), nodes[-1] if nodes else None, dict(out))
    return out


def scratch_copy(tree: Tree) -> Tree:
    """A copy of ``tree`` for a proposer to add scratch pending nodes to.

    Its nodes are new objects (adding to the copy leaves ``tree`` alone), but they share
    their config, mutation and metrics with ``tree``'s: no one edits those, and sharing
    saves copying every config on every call.
    """
    out = Tree()
    for node in tree.nodes:
        out.insert(dataclasses.replace(node))
    return out


def check_proposal(
    state: SearchState,
    proposal: Proposal,
    *,
    tree: Tree | None = None,
    taken: dict[str, int] | None = None,
) -> tuple[Config, dict[str, tuple[Any, Any]]]:
    """Validate a proposal; return the child Config and ``{param: (old, new)}``.

    Checks the strategy name, ``expect``, that the parent is a finished node of this block
    (or None), the mutation (``SearchSpace.validate``: one param — several for the
    searchers' strategies random and tpe, whose parent must be None —, type, range, pins),
    that a one-param mutation changes the model (``check_effective``), the state's
    ``check_config`` (size budget, GPU fit) and that the child config was not
    tried before. ``tree`` defaults to ``state.tree``;
    ``taken`` (from ``taken_configs``) may be passed to save recomputing it.
    Raises ProposalError with a one-line reason.
    """
    tree = state.tree if tree is None else tree
    if proposal.strategy not in ALL_STRATEGIES:
        raise ProposalError(
            f"unknown strategy {proposal.strategy!r}; allowed: {', '.join(ALL_STRATEGIES)}"
        )
    if proposal.strategy in SEARCHER_STRATEGIES and proposal.parent is not None:
        raise ProposalError(
            f"a {proposal.strategy} proposal is a config drawn from the space: its parent is "
            "null (the block's root config), and its mutation the params that differ from it"
        )
    if proposal.expect not in EXPECTS:
        raise ProposalError(f"expect={proposal.expect!r}; allowed: improve, worsen, same or null")
    if not isinstance(proposal.hypothesis, str):
        raise ProposalError("hypothesis must be a string")
    if proposal.parent is None:
        base = state.root_config
    else:
        is_id = isinstance(proposal.parent, int) and not isinstance(proposal.parent, bool)
        node = tree.get(proposal.parent) if is_id else None
        if node is None:
            raise ProposalError(
                f"parent {proposal.parent!r} does not exist; use a finished node of block "
                f"{state.block} or null for the block's root config"
            )
        if node.block != state.block:
            raise ProposalError(
                f"parent {node.id} is in block {node.block}, not the current block {state.block}"
            )
        if node.pending:
            raise ProposalError(f"parent {node.id} has not finished yet; pick a finished node")
        base = as_config(node.config)
    if not isinstance(proposal.mutation, dict):
        raise ProposalError("mutation must be a mapping {parameter: new value}")
    if not proposal.mutation:
        if proposal.strategy != "baseline" or proposal.parent is not None:
            raise ProposalError(
                "an empty mutation is allowed only for the block's baseline "
                "(strategy baseline, parent null)"
            )
        child, changes = base, {}
    else:
        if proposal.strategy == "baseline":
            raise ProposalError(
                "a baseline runs the root config unchanged: its mutation must be empty"
            )
        child, changes = state.space.mutate(
            base, proposal.mutation, state.pinned, strategy=proposal.strategy
        )
        if len(changes) == 1:
            check_effective(state, base, child, next(iter(changes)))
    if state.check_config is not None:
        problem = state.check_config(child)
        if problem:
            raise ProposalError(problem)
    taken = taken_configs(tree) if taken is None else taken
    key = config_key(child)
    if key in taken:
        raise ProposalError(
            f"this config was already tried as node {taken[key]}; only a robustness-test "
            "(a new seed) re-runs a config"
        )
    return child, changes


def check_effective(state: SearchState, base: Config, child: Config, name: str) -> None:
    """ProposalError when the one mutated param ``name`` is a model key that neither the
    parent's nor the child's variant reads (``used_model_keys``): the child would train
    the parent's model again."""
    section, _, key = state.space.key_of(name).partition(".")
    if section != "model":
        return
    if key in used_model_keys(base.model) or key in used_model_keys(child.model):
        return
    what = base.model.inr_type
    if base.model.inr_type == "factorized":
        what += f" with a {base.model.basis} basis"
    raise ProposalError(
        f"{name} does nothing for inr_type={what}; the child would train the parent's "
        "model again — mutate a param this variant reads"
    )


def admit(state: SearchState, scratch: Tree, taken: dict[str, int], proposal: Proposal) -> Proposal:
    """``check_proposal`` against ``scratch``; add the accepted proposal as a pending node.

    Proposers building a batch call this per pick so later picks see earlier ones as
    visits and as taken configs. Raises ProposalError for an invalid proposal.
    """
    child, changes = check_proposal(state, proposal, tree=scratch, taken=taken)
    node = scratch.add(
        proposal.parent,
        child,
        changes,
        proposal.strategy,
        proposal.hypothesis,
        state.block,
        proposal.expect,
    )
    taken[config_key(child)] = node.id
    return proposal


class Proposer(ABC):
    """Chooses the next trials of a search.

    - ``propose(state, n_slots)`` is called by the block runner whenever trial slots are
      free: at a block's start (no finished node yet) and each time running trials
      finish (``state.finished`` lists them). It returns at most ``n_slots`` proposals
      (fewer, even none, is fine: the runner waits for more results) and a note on each
      finished node. The runner checks every proposal with ``check_proposal`` and adds
      the accepted ones to the tree as pending nodes, so later calls see them as visits.
    - ``review_block(state)`` is called once when a block's last trial has finished, before
      the next block starts. The default computes it with ``strategies.block_stats`` and
      ``strategies.review``.
    - ``close()`` is called when the run ends (no-op by default).

    Proposers must not modify ``state.tree``.
    """

    name: str = "base"

    @abstractmethod
    def propose(self, state: SearchState, n_slots: int) -> ProposalBatch:
        """Up to ``n_slots`` proposals, plus notes on ``state.finished`` nodes."""

    def review_block(self, state: SearchState) -> BlockReview:
        """Block summary, next ucb_c and new rules, computed from the tree."""
        stats = strategies.block_stats(state.tree, state.block, state.reward)
        next_c, rules = strategies.review(stats, state.ucb_c)
        return BlockReview(
            summary=stats.summary(),
            principles=[],
            open_questions=[],
            next_ucb_c=next_c,
            new_rules=[r for r in rules if r not in state.rules],
        )

    def close(self) -> None:  # noqa: B027 (an optional hook, no-op by default)
        """Release resources (clients, files); no-op by default."""
