"""The variant-sweep trigger: every model family once per block, from the best node."""

from __future__ import annotations

import pytest

from inr_tune.config import Config
from inr_tune.errors import ProposalError
from inr_tune.search import strategies
from inr_tune.search.budget import Budget
from inr_tune.search.proposers import RuleProposer, SearchState
from inr_tune.search.sweep import fitted_move, structural_params, variant_sweep
from inr_tune.search.tree import Tree
from tests.proposer_contract import (
    MPM_CLASSES,
    MPM_SPACE,
    ROOT_CONFIG,
    check_batch,
    grow,
    make_state,
)

FAMILIES = [v for v in MPM_SPACE.param("inr_type").values if v != ROOT_CONFIG.model.inr_type]


def test_structural_params_are_the_choices_that_change_what_the_model_reads() -> None:
    assert [p.name for p in structural_params(MPM_SPACE, ROOT_CONFIG)] == ["inr_type"]
    factorized = MPM_SPACE.apply(ROOT_CONFIG, {"inr_type": "factorized"})
    # a factorized model's basis (siren | table) decides whether basis_omega is read
    assert [p.name for p in structural_params(MPM_SPACE, factorized)] == ["inr_type", "basis"]


def test_every_family_the_block_lacks_is_listed_from_the_best_node() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.90)
    best = grow(tree, base.id, {"lr": 2e-4}, 0.95)
    trig = variant_sweep(tree, 1, MPM_SPACE)
    assert trig is not None and trig.strategy == "variant-sweep"
    assert trig.parent == best.id
    assert list(trig.moves) == [("inr_type", v) for v in FAMILIES]


def test_families_some_node_had_are_not_listed_again() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.90)
    grow(tree, base.id, {"inr_type": FAMILIES[0]}, 0.80)
    grow(tree, base.id, {"inr_type": FAMILIES[1]}, None, status="pending")
    trig = variant_sweep(tree, 1, MPM_SPACE)
    assert trig is not None
    assert [v for _, v in trig.moves] == FAMILIES[2:]
    for v in FAMILIES[2:]:
        grow(tree, base.id, {"inr_type": v}, 0.5)
    assert variant_sweep(tree, 1, MPM_SPACE) is None


def test_no_sweep_before_a_node_finished_or_when_the_variant_is_pinned() -> None:
    tree = Tree()
    grow(tree, None, {}, None, status="pending")
    assert variant_sweep(tree, 1, MPM_SPACE) is None
    tree = Tree()
    grow(tree, None, {}, 0.9)
    pin = {"model.inr_type": ROOT_CONFIG.model.inr_type}
    assert variant_sweep(tree, 1, MPM_SPACE, pinned=pin) is None
    assert variant_sweep(tree, 1, MPM_SPACE, pinned={"inr_type": "x"}) is None


def test_the_rule_proposer_sweeps_one_family_per_call_until_all_were_tried() -> None:
    tree = Tree()
    grow(tree, None, {}, 0.90)
    tried = []
    for _ in range(len(FAMILIES) + 1):
        state = make_state(tree, finished=[n.id for n in tree.nodes if n.finished])
        batch = RuleProposer(seed=0).propose(state, 2)
        check_batch(state, batch, 2)
        sweeps = [p for p in batch.proposals if p.strategy == "variant-sweep"]
        assert len(sweeps) <= 1, "one special slot of two"
        for p in batch.proposals:
            node = grow(tree, p.parent, dict(p.mutation), 0.5, strategy=p.strategy)
            if p.strategy == "variant-sweep":
                assert p.parent == 1 and p.hypothesis.startswith("Variant sweep")
                tried.append(tree[node.id].config["model"]["inr_type"])
    assert sorted(tried) == sorted(FAMILIES)
    assert not any(
        t.strategy == "variant-sweep"
        for t in strategies.detect(tree, 1, MPM_SPACE, n_iter_block=8, classes=MPM_CLASSES)
    )


def _budgeted_state(
    tree: Tree, root: Config, min_ratio: float, n_points: int = 3000, **kw: object
) -> SearchState:
    """A state whose size budget is ``min_ratio`` on 100 frames × ``n_points`` × 4."""
    budget = Budget("budget", min_ratio, 100, n_points, 4)
    return make_state(
        tree,
        finished=[n.id for n in tree.nodes if n.finished],
        root_config=root,
        check_config=budget.check,
        size=budget.params,
        size_values=budget.n_values,
        min_ratio=min_ratio,
        **kw,
    )


def test_a_family_over_the_budget_comes_with_its_size_params_stepped_down() -> None:
    """From a small siren_txy config (2.4k parameters; 24k allowed) a factorized model with
    its defaults holds 40k: the sweep steps its size params down with the switch, and
    families that cannot fit at all (siren_t, ngp: an output or table per point) are
    skipped."""
    root = ROOT_CONFIG.replace(model={"hidden_dim": 32, "n_layers": 2})
    tree = Tree()
    grow(tree, None, {}, 0.90, root=root)
    state = _budgeted_state(tree, root, 50.0)
    factorized = MPM_SPACE.apply(root, {"inr_type": "factorized"})
    assert state.check_config(factorized) is not None, "the bare switch is over the budget"
    mutation = fitted_move(state, root, "inr_type", "factorized")
    assert mutation is not None and next(iter(mutation)) == "inr_type" and len(mutation) > 1
    child = MPM_SPACE.apply(root, mutation)
    assert state.check_config(child) is None
    assert all(
        child.get(MPM_SPACE.param(k).key) < factorized.get(MPM_SPACE.param(k).key)
        for k in list(mutation)[1:]
    )
    assert fitted_move(state, root, "inr_type", "siren_t") is None
    assert fitted_move(state, root, "inr_type", "siren_id") == {"inr_type": "siren_id"}
    batch = RuleProposer(seed=0).propose(state, 2)
    check_batch(state, batch, 2)
    (sweep,) = [p for p in batch.proposals if p.strategy == "variant-sweep"]
    assert sweep.parent == 1
    # siren_id comes first in the space and fits as it is; once it has been tried, the
    # next call fits factorized
    assert sweep.mutation == {"inr_type": "siren_id"}
    grow(tree, 1, {"inr_type": "siren_id"}, 0.5, root=root, strategy="variant-sweep")
    state = _budgeted_state(tree, root, 50.0)
    batch = RuleProposer(seed=0).propose(state, 2)
    check_batch(state, batch, 2)
    (sweep,) = [p for p in batch.proposals if p.strategy == "variant-sweep"]
    assert sweep.mutation == mutation
    assert "to fit the size budget" in sweep.hypothesis


def test_a_multi_param_variant_sweep_may_only_add_smaller_size_params() -> None:
    root = ROOT_CONFIG.replace(model={"hidden_dim": 32, "n_layers": 2})
    ok = {"inr_type": "factorized", "rank": 4}
    assert MPM_SPACE.validate(root, ok, strategy="variant-sweep")
    with pytest.raises(ProposalError, match="exactly one parameter"):
        MPM_SPACE.validate(root, ok, strategy="exploit")
    with pytest.raises(ProposalError, match="model family first"):
        MPM_SPACE.validate(root, {"rank": 4, "inr_type": "factorized"}, strategy="variant-sweep")
    with pytest.raises(ProposalError, match="step size params down"):
        MPM_SPACE.validate(root, {"inr_type": "factorized", "lr": 1e-3}, strategy="variant-sweep")
    with pytest.raises(ProposalError, match="step size params down"):
        MPM_SPACE.validate(
            root, {"inr_type": "factorized", "hidden_dim": 64}, strategy="variant-sweep"
        )


def test_a_family_that_only_fits_with_another_basis_switches_it_too() -> None:
    """F@100's configs carry basis=table (inert for a siren): a factorized model with a
    per-point table over 9000 particles cannot reach 50× at any size, one with a siren
    basis can, so the switch sets the basis with the variant."""
    root = ROOT_CONFIG.replace(model={"hidden_dim": 32, "n_layers": 2, "basis": "table"})
    state = _budgeted_state(Tree(), root, 50.0, n_points=9000)
    mutation = fitted_move(state, root, "inr_type", "factorized")
    assert mutation is not None and list(mutation)[:2] == ["inr_type", "basis"]
    assert mutation["basis"] == "siren"
    child = MPM_SPACE.validate(root, mutation, strategy="variant-sweep")
    assert child["basis"] == ("table", "siren")
    pinned = _budgeted_state(Tree(), root, 50.0, n_points=9000, pinned={"model.basis": "table"})
    assert fitted_move(pinned, root, "inr_type", "factorized") is None


def test_a_swept_basis_is_not_made_inert_by_switching_the_variant_to_fit() -> None:
    """Sweeping basis=table from a factorized config: were the table over the budget at
    every size, switching inr_type to a siren would "fit" only by making the basis
    unread. That is no test of the table, so no such fit is offered."""
    root = ROOT_CONFIG.replace(model={"hidden_dim": 32, "n_layers": 2, "inr_type": "factorized"})
    state = _budgeted_state(Tree(), root, 50.0, n_points=9000)
    assert state.check_config(root) is None
    assert fitted_move(state, root, "basis", "table") is None
