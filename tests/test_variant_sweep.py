"""The variant-sweep trigger: every model family once per block, from the best node."""

from __future__ import annotations

from inr_tune.search import strategies
from inr_tune.search.proposers import RuleProposer
from inr_tune.search.sweep import structural_params, variant_sweep
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
