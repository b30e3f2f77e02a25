"""The exploration tree: nodes (one trial each), rewards and UCB scores. No Ray, no torch.

Invariants, enforced by ``Tree.add``: node ids are 1, 2, … in creation order; a node's
parent exists before it (``parent=None`` means the block's root config), so the parent
links can never form a cycle; a node's config is stored as a plain dict and never edited.
Failed and diverged nodes stay in the tree with reward 0.

The block runner keeps the tree in step with the journal (the source of truth) through
four events (``inr_tune.journal`` records), which ``Tree.replay`` reads back (other events
are ignored): ``BatchAdded`` (pending nodes, ``Node.to_dict()`` each; ``NodeAdded`` for
one), ``NodeCompleted`` (status, metrics, error) and ``NodeNoted`` (observation and
visual, or verdict and basis).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from inr_tune.fileio import jsonable
from inr_tune.journal import BatchAdded, Event, NodeAdded, NodeCompleted, NodeNoted, as_record
from inr_tune.search.node import (
    DIVERGED,
    EARLY_STOPPED,
    EXPECTS,
    FAILED,
    HAS_R2,
    OK,
    PENDING,
    REWARDS,
    STATUSES,
    Node,
    reward_of,
    scaled_rewards,
)

__all__ = [
    "DIVERGED",
    "EARLY_STOPPED",
    "EVENT_ADDED",
    "EVENT_COMPLETED",
    "EVENT_NOTED",
    "EXPECTS",
    "FAILED",
    "HAS_R2",
    "OK",
    "PENDING",
    "REWARDS",
    "STATUSES",
    "Node",
    "Tree",
    "UCBScore",
    "format_ucb_scores",
    "pareto_front",
    "pareto_shares",
    "reward_of",
    "scaled_rewards",
]

EVENT_ADDED, EVENT_COMPLETED, EVENT_NOTED = NodeAdded.name, NodeCompleted.name, NodeNoted.name


class UCBScore(NamedTuple):
    node: Node
    ucb: float
    visits: int


class Tree:
    """All nodes of a run (every block), in id order."""

    def __init__(self) -> None:
        self._nodes: dict[int, Node] = {}
        self._children: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ building

    def add(
        self,
        parent: int | None,
        config: Mapping[str, Any] | Any,
        mutation: Mapping[str, Any],
        strategy: str,
        hypothesis: str,
        block: int,
        expect: str | None = None,
    ) -> Node:
        """Add a pending node with the next id. ``parent`` must exist (or be None).

        ``config`` is a Config or its ``to_dict()``; it is deep-copied. ``mutation`` maps a
        param to ``(old, new)``; it is empty only for a block's baseline.
        """
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        node = Node(
            id=self.next_id,
            parent=parent,
            block=block,
            config=copy.deepcopy(dict(config)),
            mutation={str(k): list(v) for k, v in mutation.items()},
            strategy=strategy,
            hypothesis=hypothesis,
            expect=expect,
        )
        return self.insert(node)

    def insert(self, node: Node) -> Node:
        """Add a ready-made node (replay); same checks as ``add``."""
        if node.id in self._nodes or node.id < self.next_id:
            raise ValueError(f"node id {node.id} must be new and > {self.next_id - 1}")
        if node.parent is not None and node.parent not in self._nodes:
            raise ValueError(f"node {node.id}: parent {node.parent} does not exist")
        if node.expect not in EXPECTS:
            raise ValueError(f"node {node.id}: expect={node.expect!r}; allowed: {EXPECTS}")
        if node.status not in STATUSES:
            raise ValueError(f"node {node.id}: status={node.status!r}; allowed: {STATUSES}")
        for param, pair in node.mutation.items():
            if len(pair) != 2:
                raise ValueError(f"node {node.id}: mutation of {param} must be [old, new]")
        self._nodes[node.id] = node
        self._children[node.id] = []
        if node.parent is not None:
            self._children[node.parent].append(node.id)
        return node

    def complete(
        self,
        node_id: int,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> Node:
        """Record a pending node's result (status ok, failed, diverged or early_stopped)."""
        node = self[node_id]
        if status not in STATUSES or status == PENDING:
            raise ValueError(
                f"status {status!r} not allowed; use ok, failed, diverged or early_stopped"
            )
        if not node.pending:
            raise ValueError(f"node {node_id} is already {node.status}")
        node.status = status
        node.metrics = jsonable(dict(metrics or {}))
        node.error = error
        return node

    def note(
        self,
        node_id: int,
        observation: str | None = None,
        visual: str | None = None,
        verdict: str | None = None,
        basis: str | None = None,
    ) -> Node:
        """Set a node's observation, visual remark, verdict and the verdict's basis (None
        leaves one unchanged)."""
        node = self[node_id]
        if observation is not None:
            node.observation = observation
        if visual is not None:
            node.visual = visual
        if verdict is not None:
            node.verdict = verdict
        if basis is not None:
            node.verdict_basis = basis
        return node

    # ------------------------------------------------------------------ queries

    @property
    def next_id(self) -> int:
        return max(self._nodes, default=0) + 1

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __getitem__(self, node_id: int) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id} in the tree") from None

    def get(self, node_id: int | None) -> Node | None:
        return None if node_id is None else self._nodes.get(node_id)

    def children(self, node_id: int) -> list[Node]:
        return [self._nodes[i] for i in self._children[self[node_id].id]]

    def descendants(self, node_id: int) -> list[Node]:
        """All nodes below ``node_id`` (pending ones included), each once, in id order."""
        out: list[int] = []
        stack = list(self._children[self[node_id].id])
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(self._children[i])
        return [self._nodes[i] for i in sorted(out)]

    def chain(self, node_id: int) -> list[Node]:
        """The node and its ancestors, nearest first, up to its root (parent None)."""
        out = [self[node_id]]
        while out[-1].parent is not None:
            out.append(self._nodes[out[-1].parent])
        return out

    def distance(self, a: int, b: int) -> int:
        """Edges between two nodes. Nodes with parent None hang from one virtual root."""
        path_a = [n.id for n in self.chain(a)]
        path_b = [n.id for n in self.chain(b)]
        index_b = {n: i for i, n in enumerate(path_b)}
        for i, n in enumerate(path_a):
            if n in index_b:
                return i + index_b[n]
        return len(path_a) + len(path_b)

    def block_nodes(self, block: int) -> list[Node]:
        return [n for n in self._nodes.values() if n.block == block]

    def pending(self, block: int | None = None) -> list[Node]:
        return [n for n in self._nodes.values() if n.pending and block in (None, n.block)]

    def finished(self, block: int | None = None) -> list[Node]:
        return [n for n in self._nodes.values() if n.finished and block in (None, n.block)]

    def best(self, block: int | None = None) -> Node | None:
        """The node with the highest R² (in ``block`` if given); ties: the earlier node."""
        scored = [n for n in self.finished(block) if n.r2 is not None]
        if not scored:
            return None
        return max(scored, key=lambda n: (n.r2, -n.id))

    def reference(self, node_id: int) -> Node | None:
        """The node a result is compared with: its parent, or for a block-root child the
        block's baseline (the node with parent None and no mutation); None for a baseline."""
        node = self[node_id]
        if node.parent is not None:
            return self._nodes[node.parent]
        if not node.mutation:
            return None
        for n in self.block_nodes(node.block):
            if n.parent is None and not n.mutation and n.id != node.id:
                return n
        return None

    # ------------------------------------------------------------------ UCB

    def ucb_scores(self, block: int, c: float = 1.414, reward: str = "nines") -> list[UCBScore]:
        """UCB(k) = Q_k + c·√(ln N / n_k) for every finished node k of ``block``.

        Q_k = the node's reward scaled to the block's range (``scaled_rewards``: the
        block's worst scored node 0, its best 1, negative R² kept in order; failed and
        diverged nodes 0). Raw rewards
        of one block often differ by 0.01 (nines of R² 0.65 vs 0.70) while the exploration
        term differs by ~1 between a leaf and a node with two children: unscaled, UCB
        ignored Q and walked down whichever leaf came last. With ``reward="pareto"`` Q_k is
        the node's share of the block's Pareto front (``pareto_shares``) over the largest
        share (the front's biggest contributor gets 1, a dominated node 0).

        N = nodes of the block (finished + pending); n_k = 1 + descendants of k in the block,
        pending ones included (a pending child is a descendant and counts once), so a node
        picked for an in-flight trial scores lower for the next pick. Sorted by UCB
        descending, ties by id.
        """
        members = self.block_nodes(block)
        big_n = len(members)
        log_n = math.log(big_n) if big_n > 0 else 0.0
        if reward == "pareto":
            shares = pareto_shares(members)
            top = max(shares.values(), default=0.0)
            q_of = {k: v / top for k, v in shares.items()} if top > 0 else shares
        else:
            q_of = scaled_rewards(members, reward)
        # block descendants in one pass, children first (a child's id is the larger)
        below: dict[int, int] = {}
        for n in reversed(self._nodes.values()):
            if n.parent is not None and (add := below.get(n.id, 0) + (n.block == block)):
                below[n.parent] = below.get(n.parent, 0) + add
        out = []
        for node in members:
            if node.pending:
                continue
            visits = 1 + below.get(node.id, 0)
            q = q_of.get(node.id, 0.0)
            ucb = q + c * math.sqrt(log_n / visits)
            out.append(UCBScore(node, ucb, visits))
        out.sort(key=lambda s: (-s.ucb, s.node.id))
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [n.to_dict() for n in self._nodes.values()]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Tree:
        tree = cls()
        for item in raw.get("nodes", []):
            tree.insert(Node.from_dict(item))
        return tree

    def copy(self) -> Tree:
        """A deep copy (proposers add scratch pending nodes to one)."""
        return Tree.from_dict(self.to_dict())

    def apply_event(self, event: Event | Mapping[str, Any]) -> Node | None:
        """Apply one journal event (a record, or a line as read): ``BatchAdded`` and
        ``NodeAdded`` insert pending nodes, ``NodeCompleted`` and ``NodeNoted`` update
        one; others are ignored. Returns the node added, completed or noted (the last
        one of a batch)."""
        record = as_record(event)
        if isinstance(record, BatchAdded):
            added = [self.insert(Node.from_dict(raw)) for raw in record.nodes]
            return added[-1] if added else None
        if isinstance(record, NodeAdded):
            return self.insert(Node.from_dict(record.node))
        if isinstance(record, NodeCompleted):
            return self.complete(int(record.node_id), record.status, record.metrics, record.error)
        if isinstance(record, NodeNoted):
            return self.note(
                int(record.node_id),
                record.observation,
                record.visual,
                record.verdict,
                record.basis,
            )
        return None

    @classmethod
    def replay(cls, events: Iterable[Event | Mapping[str, Any]]) -> Tree:
        """Rebuild a tree from journal events in order (unrelated events are skipped)."""
        tree = cls()
        for event in events:
            tree.apply_event(event)
        return tree


def pareto_front(nodes: Iterable[Node]) -> list[Node]:
    """Nodes not dominated in (compression_ratio ↑, R² ↑), by ratio ascending.

    A node is dominated when another has a ratio ≥ and an R² ≥ (one of them strictly).
    Nodes without both numbers are left out.
    """
    scored = [n for n in nodes if n.r2 is not None and n.ratio is not None]
    scored.sort(key=lambda n: (-n.ratio, -n.r2, n.id))  # type: ignore[operator]
    front: list[Node] = []
    best = -math.inf
    for n in scored:  # ratio descending: keep each node that beats every more compressed one
        if n.r2 > best:  # type: ignore[operator]
            front.append(n)
            best = n.r2  # type: ignore[assignment]
    return front[::-1]


def pareto_shares(nodes: Iterable[Node]) -> dict[int, float]:
    """Each front node's exclusive share of the front's hypervolume, in [0, 1].

    The area is taken in (log10 ratio, nines-reward) space above the reference point
    (ratio 1, R² 0): a node's share is the area only it dominates, divided by the whole
    front's area. Nodes off the front get 0.
    """
    front = pareto_front(nodes)  # ratio ascending, R² descending
    if not front:
        return {}
    xs = [max(0.0, math.log10(n.ratio)) for n in front]  # type: ignore[arg-type]
    ys = [reward_of(n.r2, "nines") for n in front]
    total = 0.0
    for i in range(len(front)):  # staircase: x from the previous corner to this one
        total += (xs[i] - (xs[i - 1] if i else 0.0)) * ys[i]
    if total <= 0:
        return {n.id: 1.0 / len(front) for n in front}
    out = {}
    for i, n in enumerate(front):
        left = xs[i - 1] if i else 0.0
        below = ys[i + 1] if i + 1 < len(front) else 0.0
        out[n.id] = (xs[i] - left) * (ys[i] - below) / total
    return out


def format_ucb_scores(scores: Iterable[UCBScore]) -> str:
    """ucb_scores.txt: ``Node 2: UCB=2.175, parent=1, visits=1, R2=0.997000`` per line.

    ``parent=root`` for a block-root child. A node without R² (failed, diverged) shows
    ``R2=nan, status=failed``. Empty string when there are no scores (a block's start).
    """
    lines = []
    for node, ucb, visits in scores:
        parent = "root" if node.parent is None else str(node.parent)
        r2 = node.r2
        tail = f"R2={r2:.6f}" if r2 is not None else f"R2=nan, status={node.status}"
        lines.append(f"Node {node.id}: UCB={ucb:.3f}, parent={parent}, visits={visits}, {tail}")
    return "\n".join(lines) + ("\n" if lines else "")
