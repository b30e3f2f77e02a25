"""The size budget: ratios before training, refusals, the root fitted, the Pareto front."""

from __future__ import annotations

import math

import pytest

from inr_tune.config_files import load_config
from inr_tune.errors import ConfigError, ProposalError
from inr_tune.models.variants import FieldSpec, build_model
from inr_tune.reports.pareto import best_in_budget, comparison_sentence
from inr_tune.search.budget import Budget, fit_root
from inr_tune.search.experiment import load_experiment
from inr_tune.search.proposers.base import Proposal, SearchState, check_proposal
from inr_tune.search.tree import Node, Tree, pareto_front, pareto_shares

SHAPE = (400, 1800, 4)  # the default F@400 window


def _budget(min_ratio: float | None, objective: str = "budget") -> Budget:
    return Budget(objective, min_ratio, *SHAPE)


def test_ratio_is_known_before_training() -> None:
    cfg = load_config(None, ["model.inr_type=siren_txy", "model.hidden_dim=64", "model.n_layers=2"])
    model = build_model(cfg.model, FieldSpec(*SHAPE))
    assert _budget(20).params(cfg) == model.total_params
    assert _budget(20).ratio(cfg) == pytest.approx(math.prod(SHAPE) / model.total_params)


def test_check_refuses_under_the_budget_and_r2_ignores_size() -> None:
    big = load_config(None, ["model.inr_type=siren_t", "model.hidden_dim=128"])  # ~3×
    small = load_config(None, ["model.inr_type=siren_txy", "model.hidden_dim=64"])  # ~230×
    assert "under the size budget min_ratio 20×" in _budget(20).check(big)
    assert _budget(20).check(small) is None
    assert _budget(20, "r2").check(big) is None  # size ignored
    assert _budget(None).check(big) is None  # no budget given
    assert _budget(20, "pareto").check(big) is not None  # the budget holds for pareto too


def test_fit_root_shrinks_then_switches_variant_then_refuses() -> None:
    space = load_experiment("mpm").space
    root = load_config(None, ["model.inr_type=siren_txy", "model.hidden_dim=512"])  # 3.8×
    fitted, changes = fit_root(root, space, _budget(20))
    assert _budget(20).check(fitted) is None and changes
    assert fitted.model.inr_type == "siren_txy" and fitted.model.hidden_dim < 512
    # siren_t cannot pass T/(h+1) ≈ 6× at the space's smallest width: another variant
    wide = load_config(None, ["model.inr_type=siren_t", "model.hidden_dim=128"])
    fitted, changes = fit_root(wide, space, _budget(50))
    assert fitted.model.inr_type != "siren_t" and changes[0].startswith("inr_type siren_t→")
    with pytest.raises(ConfigError, match="no config of the search space reaches"):
        fit_root(wide, space, _budget(1e9))


def _state(space, root, budget: Budget) -> SearchState:
    """A block-start state of F@400 under ``budget``, as the session builds it."""
    return SearchState(
        tree=Tree(),
        space=space,
        block=1,
        iter_in_block=0,
        n_iter_block=8,
        field="F",
        n_frames=400,
        root_config=root,
        check_config=budget.check,
        min_ratio=budget.min_ratio,
        size=budget.params,
        size_values=budget.n_values,
    )


def test_a_proposal_under_the_budget_is_refused_with_its_reason() -> None:
    exp = load_experiment("mpm")
    root = load_config(
        None, ["model.inr_type=siren_txy", "model.hidden_dim=128", "model.n_layers=2"]
    )
    budget = _budget(60)
    assert budget.check(root) is None
    state = _state(exp.space, root, budget)
    with pytest.raises(ProposalError, match="under the size budget"):
        check_proposal(state, Proposal(None, {"hidden_dim": 1024}, "exploit", "wider"))
    child, _ = check_proposal(state, Proposal(None, {"hidden_dim": 64}, "exploit", "narrower"))
    assert child.model.hidden_dim == 64


def _node(i: int, ratio: float, r2: float, inr_type: str = "siren_txy") -> Node:
    return Node(
        id=i,
        parent=None,
        block=1,
        config={"model": {"inr_type": inr_type}},
        status="ok",
        metrics={"compression_ratio": ratio, "holdout_r2": r2, "final_r2": 0.0},
    )


def test_pareto_front_and_shares() -> None:
    nodes = [_node(1, 10, 0.9999), _node(2, 50, 0.999), _node(3, 100, 0.99), _node(4, 40, 0.99)]
    front = pareto_front(nodes)
    assert [n.id for n in front] == [1, 2, 3]  # node 4 is dominated by node 2
    shares = pareto_shares(nodes)
    assert set(shares) == {1, 2, 3} and all(0 < v <= 1 for v in shares.values())
    assert nodes[0].r2 == 0.9999  # the held-out R² is the one judged, not final_r2
    tree = Tree()
    for n in nodes:
        tree.insert(n)
    scores = {s.node.id: s.ucb for s in tree.ucb_scores(1, c=0.0, reward="pareto")}
    assert scores[4] == 0.0 and max(scores.values()) == pytest.approx(1.0)


def _real_baselines():
    """PCA/ZFP/SZ3 of a small smooth window (the real compressors)."""
    import numpy as np

    from inr_tune.baselines import compute_baselines

    t = np.linspace(0, 1, 60)[:, None, None]
    x = np.linspace(0, 1, 200)[None, :, None]
    noise = np.random.default_rng(0).standard_normal((60, 200, 2)) * 1e-3
    values = np.sin(3 * t + 2 * x * np.array([1.0, 2.0])) + noise
    return compute_baselines(values.astype(np.float32), holdout_every=10)


def test_the_sentence_says_ahead_or_behind_plainly() -> None:
    from inr_tune.baselines import nines
    from inr_tune.reports.pareto import baseline_at

    baselines = _real_baselines()
    base_r2, setting = baseline_at(baselines, 8.0)
    behind = 1 - (1 - base_r2) * 10  # one nine worse than the best baseline at 8×
    nodes = [_node(1, 8.0, behind), _node(2, 1.5, 0.9999999)]
    assert best_in_budget(nodes, 5).id == 1  # node 2 is outside the budget
    text = comparison_sentence(nodes, baselines, 5)
    assert "best INR at 8× (node 1, siren_txy)" in text and setting in text
    assert "behind by 1.00 nines" in text
    ahead = comparison_sentence([_node(1, 8.0, 1 - (1 - base_r2) / 10)], baselines, 5)
    assert "ahead by 1.00 nines" in ahead
    assert nines(base_r2) > 1
    assert "nothing to compare" in comparison_sentence(nodes, baselines, 1000)


def test_user_input_changes_the_budget_of_a_running_block(tmp_path) -> None:
    """``set search.min_ratio=…`` in user_input.md: the next batch obeys the new budget."""
    from inr_tune.journal import read_events
    from tests.helpers import rule_session

    root = load_config(
        None,
        ["data.n_frames=24", "model.inr_type=siren_txy", "model.hidden_dim=16", "model.n_layers=1"],
    )
    budget = Budget("budget", 2.0, 24, 50, 4)  # root: 4800 values / 404 params = 11.9×
    session = rule_session(tmp_path, root, n_iter=8, parallel=4, budget=budget)
    first = [session.next_trial() for _ in range(4)]
    assert all(budget.ratio(load_config_dict(n.config)) >= 2.0 for n in first)
    (tmp_path / "user_input.md").write_text("keep it small\nset search.min_ratio=11\n")
    for n in first:
        session.complete(n.id, "ok", {"final_r2": 0.99, "compression_ratio": 1.0}, None)
    second = [session.next_trial() for _ in range(2)]  # 2 more slots go to seed reruns
    assert session.budget.min_ratio == 11.0
    assert second and all(budget.ratio(load_config_dict(n.config)) >= 11.0 for n in second)
    events = read_events(tmp_path / "journal.jsonl")
    assert any(e["event"] == "budget_changed" for e in events)
    refused = [e for e in events if e["event"] == "proposal_rejected"]
    assert not refused or all("size budget" in e["error"] for e in refused)


def load_config_dict(raw: dict):
    from inr_tune.search.space import as_config

    return as_config(raw)


def test_the_rule_proposer_fills_a_budget_with_room() -> None:
    """A root far inside the budget gets one opening move that adds the most parameters
    while staying inside; a root near the budget gets none."""
    from inr_tune.search.experiment import BlockSpec
    from inr_tune.search.proposers import RuleProposer

    exp = load_experiment("mpm")
    root = exp.root_config(BlockSpec("F", 400), gpu=False)  # factorized table, rank 6: 63×
    for min_ratio, grows in ((20, True), (50, False)):
        budget = _budget(min_ratio)
        state = _state(exp.space, root, budget)
        batch = RuleProposer(seed=0).propose(state, 4)
        fills = [p for p in batch.proposals if p.hypothesis.startswith("Fill the size budget")]
        assert bool(fills) == grows
        if grows:
            assert fills[0].mutation == {"rank": 8}  # the biggest step that stays ≥ 20×
        for p in batch.proposals:
            child = root if not p.mutation else exp.space.apply(root, p.mutation)
            assert budget.ratio(child) >= min_ratio
