"""One block of a search, trial by trial (no Ray: ``runner/searcher.py`` adapts it).

``BlockSession.next_trial()`` hands out the next pending node, asking the proposer for a
new batch when the previous one has finished (batch mode: the next ``parallel`` trials
are chosen once every trial of the batch has a result, so a run is reproducible and a
resumed run makes the same choices); ``complete()`` records a result. Every decision goes
to the journal first; the tree is rebuilt from it on resume."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

from inr_tune.baselines import baseline_metrics
from inr_tune.config import Config
from inr_tune.config_files import save_config
from inr_tune.errors import ProposalError
from inr_tune.journal import (
    BatchAdded,
    BudgetChanged,
    NodeAdded,
    NodeCompleted,
    NodeNoted,
    NoProposal,
    ProposalRejected,
    ProposerRemarks,
    UcbCChanged,
)
from inr_tune.search.block_end import judge_block, review_block
from inr_tune.search.budget import Budget
from inr_tune.search.context import (
    LIVE_KEYS,
    RunContext,
    check_setting,
    replay_tree,
    unreviewed,
    with_space,
)
from inr_tune.search.experiment import BlockSpec
from inr_tune.search.proposers.base import (
    BlockReview,
    Proposal,
    ProposalBatch,
    SearchState,
    check_proposal,
    scratch_copy,
    taken_configs,
)
from inr_tune.search.reruns import rerun_proposals
from inr_tune.search.seeds import original_of
from inr_tune.search.space import as_config, config_key
from inr_tune.search.tree import Node, Tree

__all__ = [
    "FINISHED",
    "LIVE_KEYS",
    "BlockSession",
    "RunContext",
    "check_setting",
    "replay_tree",
    "unreviewed",
    "with_space",
]

FINISHED = "finished"


class BlockSession:
    """Hands out the trials of one block and records their results."""

    def __init__(
        self,
        ctx: RunContext,
        *,
        block: int,
        spec: BlockSpec,
        root_config: Config,
        ucb_c: float,
        overlap: bool = False,
        budget: Budget | None = None,
        baselines: Any = None,
    ) -> None:
        self.ctx = ctx
        self.budget = budget
        self.baselines = baselines  # inr_tune.baselines.Baselines of this block's window
        self.overlap = overlap
        self._pending_call: concurrent.futures.Future[Any] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.block = block
        self.spec = spec
        self.root_config = root_config
        self.ucb_c = ucb_c
        self.exhausted = False
        self._launched: set[int] = set()
        # finished nodes no proposer call has seen: kept in the journal, so a resumed run
        # still shows them to the next call (and writes their observations)
        self._finished_since: list[int] = unreviewed(ctx.journal.events, block)
        self.user_text = ""

    # ------------------------------------------------------------------ state
    @property
    def tree(self) -> Tree:
        return self.ctx.tree

    def nodes(self) -> list[Node]:
        return self.tree.block_nodes(self.block)

    def running(self) -> list[Node]:
        return [n for n in self.nodes() if n.pending and n.id in self._launched]

    def queued(self) -> list[Node]:
        return [n for n in self.nodes() if n.pending and n.id not in self._launched]

    @property
    def done(self) -> bool:
        nodes = self.nodes()
        enough = len(nodes) >= self.ctx.n_iter or self.exhausted
        return enough and not any(n.pending for n in nodes)

    @property
    def reward(self) -> str:
        """The node reward: ``pareto`` under that objective, else the run's reward."""
        if self.budget is not None and self.budget.objective == "pareto":
            return "pareto"
        return self.ctx.reward

    def check(self, cfg: Config) -> str | None:
        """Why ``cfg`` may not run (GPU fit, size budget), or None."""
        problem = self.ctx.check_config(cfg)
        if problem is None and self.budget is not None:
            problem = self.budget.check(cfg)
        return problem

    def _apply_overrides(self) -> None:
        """The search settings of user_input.md (``ctx.overrides``, checked when read) that
        act within a block: ``search.ucb_c`` and the size budget (``min_ratio``/``objective``)."""
        over = self.ctx.overrides
        if over.get("search.ucb_c", self.ucb_c) != self.ucb_c:
            self.ucb_c = float(over["search.ucb_c"])
            self.ctx.log(UcbCChanged(block=self.block, ucb_c=self.ucb_c))
        if self.budget is None:
            return
        new = dataclasses.replace(
            self.budget,
            objective=over.get("search.objective", self.budget.objective),
            min_ratio=over.get("search.min_ratio", self.budget.min_ratio),
        )
        if new != self.budget:
            self.budget = new
            self.ctx.log(BudgetChanged(block=self.block, budget=new.describe()))

    def state(self, finished: list[int]) -> SearchState:
        exp = self.ctx.experiment
        return SearchState(
            tree=self.tree,
            space=exp.space,
            block=self.block,
            iter_in_block=len(self.nodes()),
            n_iter_block=self.ctx.n_iter,
            field=self.spec.field,
            n_frames=self.spec.n_frames,
            ucb_c=self.ucb_c,
            reward=self.reward,
            classes=exp.classes,
            pinned=dict(self.ctx.pinned),
            finished=sorted(finished),
            user_input=self.user_text,
            memory=self.ctx.memory(),
            brief=exp.brief + ("\n\n" + exp.knowledge if exp.knowledge else ""),
            root_config=self.root_config,
            rules=list(self.ctx.rules),
            check_config=self.check,
            budget=self.budget.describe() if self.budget is not None else "",
            min_ratio=self.budget.min_ratio if self.budget and self.budget.active else None,
            size=self.budget.params if self.budget is not None else None,
            size_values=self.budget.n_values if self.budget is not None else 0,
        )

    # ------------------------------------------------------------------ trials
    def next_trial(self) -> Node | str | None:
        """The next node to launch, None (wait for running trials) or FINISHED."""
        queued = self.queued()
        if queued:
            node = queued[0]
            self._launched.add(node.id)
            return node
        if len(self.nodes()) >= self.ctx.n_iter or self.exhausted:
            return FINISHED
        if self._pending_call is not None:  # overlap mode: a proposer call is under way
            if not self._pending_call.done():
                return None
            call, self._pending_call = self._pending_call, None
            self._accept_batch(*call.result())
            return self.next_trial() if self.queued() else None
        running = len(self.running())
        budget = self.ctx.n_iter - self._reserved()
        if len(self.nodes()) >= budget:  # proposals spent: the seed-rerun round
            if running:
                return None
            if not self._launch_reruns():
                self.exhausted = True
                return FINISHED
            return self.next_trial()
        free = min(self.ctx.parallel - running, budget - len(self.nodes()))
        if running and (not self.overlap or free <= 0):
            return None  # batch mode: the next batch is chosen when this one is done
        state, n_slots, new_text = self._prepare(free)
        if self.overlap and running:
            # The proposer (a slow LLM call) works in a thread on a snapshot of the tree
            # while the running trials go on: the workers do not idle during the call.
            snapshot = SearchState(**{**state.__dict__, "tree": state.tree.copy()})
            self._pool = self._pool or concurrent.futures.ThreadPoolExecutor(1, "proposer")
            self._pending_call = self._pool.submit(
                lambda: (snapshot, self.ctx.proposer.propose(snapshot, n_slots), n_slots, new_text)
            )
            return None
        self._accept_batch(state, self.ctx.proposer.propose(state, n_slots), n_slots, new_text)
        return self.next_trial() if self.queued() else None

    def _reserved(self) -> int:
        """Slots kept for seed reruns: ``search.seed_reruns``, or 0 when the space has no
        seed or the block is too small to have a batch of proposals before them."""
        want = int(
            self.ctx.overrides.get("search.seed_reruns", self.root_config.search.seed_reruns)
        )
        if self.ctx.experiment.space.seed_param() is None:
            return 0
        return want if self.ctx.n_iter - want >= self.ctx.parallel else 0

    def _launch_reruns(self) -> bool:
        """Queue the block's last batch: ``search.seed_reruns`` new seeds of the best
        finished config (on top of any it ran already). They measure the seed noise the
        block's verdicts test against and give the best config as mean ± SD. False when
        nothing is left to re-run (they ran already, or no seed value is free)."""
        want = self._reserved()
        seed = self.ctx.experiment.space.seed_param()
        finished = [n for n in self.nodes() if n.status == "ok" and n.r2 is not None]
        if not want or seed is None or not finished:
            return False
        if len(self.nodes()) > self.ctx.n_iter - want:  # launched already
            return False
        best = original_of(self.tree, max(finished, key=lambda n: (n.r2, -n.id)))
        proposals = rerun_proposals(self.tree, self.ctx.experiment.space, best, want)
        state = self.state([])
        accepted = self._accept(state, proposals, "session")
        if accepted:
            self._accept_batch(state, ProposalBatch([]), len(accepted), "", accepted)
        return bool(accepted)

    def _prepare(self, n_slots: int) -> tuple[SearchState, int, str]:
        new_text = self.ctx.read_user_input()
        if new_text:
            self.user_text = new_text
        self._apply_overrides()
        finished, self._finished_since = self._finished_since, []
        return self.state(finished), n_slots, new_text

    def _accept_batch(
        self,
        state: SearchState,
        batch: Any,
        n_slots: int,
        new_text: str,
        reruns: list[tuple[Config, dict[str, Any], Proposal]] | None = None,
    ) -> None:
        state = SearchState(**{**state.__dict__, "tree": self.tree})  # validate on the live tree
        self._record_notes(batch.notes)
        if batch.remarks:
            self.ctx.log(ProposerRemarks(block=self.block, remarks=list(batch.remarks)))
        accepted = list(reruns or [])  # already checked (the seed-rerun round)
        accepted += self._accept(
            state,
            batch.proposals[: n_slots - len(accepted)],
            self.ctx.proposer.name,
            taken_from=accepted,
        )
        if len(accepted) < n_slots:  # too few, or some invalid on the live tree: refill once
            proposer = self.ctx.proposer
            refill = getattr(proposer, "refill", proposer.propose)  # LLM: its rule fallback
            more = refill(self._with_pending(state, accepted), n_slots - len(accepted))
            accepted += self._accept(
                state,
                more.proposals,
                getattr(proposer, "refill_name", proposer.name),
                taken_from=accepted,
            )
        if not accepted:
            self.ctx.log(
                NoProposal(
                    block=self.block,
                    reason="no valid proposal for a free slot",
                    reviewed=sorted(state.finished),
                )
            )
            if not self.running():  # nothing left to try and nothing running: end the block
                self.exhausted = True
            return
        nodes = []
        next_id = self.tree.next_id
        for i, (child, changes, p) in enumerate(accepted):
            nodes.append(
                Node(
                    id=next_id + i,
                    parent=p.parent,
                    block=self.block,
                    config=child.to_dict(),
                    mutation={k: list(v) for k, v in changes.items()},
                    strategy=p.strategy,
                    hypothesis=p.hypothesis,
                    expect=p.expect,
                ).to_dict()
            )
        # One journal line for the whole batch: a crash never leaves half a batch.
        self.ctx.log(
            BatchAdded(
                block=self.block,
                nodes=nodes,
                user_input=bool(new_text),
                reviewed=sorted(state.finished),
            )
        )
        for raw in nodes:
            node = self.tree.apply_event(NodeAdded(node=raw)) or self.tree[raw["id"]]
            path = self.ctx.run_dir / "configs" / f"iter_{node.id:03d}.yaml"
            save_config(as_config(node.config), path)

    def _with_pending(
        self, state: SearchState, accepted: list[tuple[Config, dict[str, Any], Proposal]]
    ) -> SearchState:
        """``state`` on a copy of its tree with ``accepted`` added as pending nodes."""
        scratch = scratch_copy(state.tree)  # configs shared, not deep-copied
        for child, changes, p in accepted:
            scratch.add(p.parent, child, changes, p.strategy, p.hypothesis, self.block, p.expect)
        return SearchState(**{**state.__dict__, "tree": scratch})

    def _accept(
        self,
        state: SearchState,
        proposals: list[Proposal],
        source: str,
        taken_from: list[tuple[Config, dict[str, Any], Proposal]] | None = None,
    ) -> list[tuple[Config, dict[str, Any], Proposal]]:
        taken = taken_configs(state.tree)
        for child, _, _ in taken_from or []:
            taken[config_key(child)] = -1
        out = []
        for p in proposals:
            try:
                child, changes = check_proposal(state, p, taken=taken)
            except ProposalError as err:
                self.ctx.log(
                    ProposalRejected(
                        block=self.block,
                        source=source,
                        error=str(err),
                        parent=p.parent,
                        mutation=p.mutation,
                        strategy=p.strategy,
                    )
                )
                continue
            taken[config_key(child)] = -1
            out.append((child, changes, p))
        return out

    def _record_notes(self, notes: list[Any]) -> None:
        for note in notes:
            node = self.tree.get(note.node_id)
            if node is None or node.pending:
                continue
            self.ctx.log(
                NodeNoted(node_id=node.id, observation=note.observation, visual=note.visual)
            )
            self.tree.note(node.id, observation=note.observation, visual=note.visual)

    def complete(
        self, node_id: int, status: str, metrics: dict[str, Any], error: str | None
    ) -> Node:
        """Record a trial's result (beside the baselines at its ratio) and its verdict."""
        metrics = {**metrics, **baseline_metrics(self.baselines, metrics)}
        self.ctx.log(NodeCompleted(node_id=node_id, status=status, metrics=metrics, error=error))
        node = self.tree.complete(node_id, status, metrics, error)
        scores = self.tree.ucb_scores(self.block, self.ucb_c, self.reward)
        next_parent = scores[0].node.id if scores else None
        self.ctx.log(NodeNoted(node_id=node_id, next_parent=next_parent))
        self._launched.discard(node_id)
        self._finished_since.append(node_id)
        return node

    def finish(self) -> BlockReview:
        """Notes on the last batch, verdicts, then the block-end review (journaled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._finished_since:
            finished, self._finished_since = self._finished_since, []
            batch = self.ctx.proposer.propose(self.state(finished), 0)
            self._record_notes(batch.notes)
        judge_block(self.ctx, self.nodes())
        return review_block(self.ctx, self.state([]), self.block, self.spec, self.nodes())
