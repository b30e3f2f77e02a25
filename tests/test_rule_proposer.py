"""RuleProposer: the contract, determinism, each strategy's trigger, a simulated block."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from inr_tune.config import Config, config_from_dict
from inr_tune.search import strategies
from inr_tune.search.proposers import Proposer, RuleProposer, SearchState, check_proposal
from inr_tune.search.strategies import BlockStats, block_stats, review
from inr_tune.search.tree import Tree
from inr_tune.search.verdict import verdict_for
from tests.proposer_contract import (
    MPM_CLASSES,
    MPM_SPACE,
    ROOT_CONFIG,
    ProposerContract,
    check_batch,
    grow,
    make_state,
)


class TestRuleProposerContract(ProposerContract):
    @pytest.fixture
    def make_proposer(self) -> Callable[[], Proposer]:
        return lambda: RuleProposer(seed=0)


class TestRuleProposerContractOtherSeed(ProposerContract):
    @pytest.fixture
    def make_proposer(self) -> Callable[[], Proposer]:
        return lambda: RuleProposer(seed=7, max_special=4)


def _mixed_tree() -> Tree:
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    a = grow(tree, None, {"omega": 12.0}, 0.996)
    grow(tree, None, {"lr": 2e-4}, 0.98)
    grow(tree, a.id, {"hidden_dim": 384}, 0.997)
    grow(tree, base.id, {"n_layers": 5}, None, status="diverged")
    return tree


def test_deterministic_for_a_seed() -> None:
    a = RuleProposer(seed=5).propose(make_state(_mixed_tree(), finished=[1, 2]), 4)
    b = RuleProposer(seed=5).propose(make_state(_mixed_tree(), finished=[1, 2]), 4)
    assert a == b
    assert a.proposals
    empty_a = RuleProposer(seed=5).propose(make_state(Tree()), 4)
    empty_b = RuleProposer(seed=5).propose(make_state(Tree()), 4)
    assert empty_a == empty_b


def test_first_batch_is_baseline_plus_root_mutations() -> None:
    state = make_state(Tree())
    batch = RuleProposer(seed=0).propose(state, 4)
    check_batch(state, batch, 4)
    first, *rest = batch.proposals
    assert (first.parent, first.mutation, first.strategy, first.expect) == (
        None,
        {},
        "baseline",
        None,
    )
    assert len(rest) == 3 and all(p.parent is None and len(p.mutation) == 1 for p in rest)
    assert len({next(iter(p.mutation)) for p in rest}) == 3, "different params in the opening"


def test_pending_picks_spread_over_parents() -> None:
    tree = Tree()
    for omega in (None, 12.0, 18.0, 5.0):
        grow(tree, None, {} if omega is None else {"omega": omega}, 0.995)
    state = make_state(tree)
    batch = RuleProposer(seed=0).propose(state, 4)
    assert len(batch.proposals) == 4
    assert len({p.parent for p in batch.proposals}) >= 3, [p.parent for p in batch.proposals]


# ----------------------------------------------------------------------------- strategies


def _strategies_of(tree: Tree, n_slots: int = 8, **kw: object) -> dict[str, list]:
    state = make_state(tree, finished=[n.id for n in tree.nodes], **kw)  # type: ignore[arg-type]
    batch = RuleProposer(seed=1, max_special=8).propose(state, n_slots)
    check_batch(state, batch, n_slots)
    out: dict[str, list] = {}
    for p in batch.proposals:
        out.setdefault(p.strategy, []).append(p)
    out["_remarks"] = batch.remarks
    return out


def test_exploit_is_the_default() -> None:
    tree = Tree()
    grow(tree, None, {}, 0.9)
    pin = {"model.inr_type": ROOT_CONFIG.model.inr_type}  # else the variant sweep fires
    detected = strategies.detect(
        tree, 1, MPM_SPACE, n_iter_block=8, classes=MPM_CLASSES, pinned=pin
    )
    assert detected == []
    got = _strategies_of(tree, 2, pinned=pin)
    assert [p.parent for p in got["exploit"]] == [1, 1]
    assert all(p.expect in ("improve", "same") for p in got["exploit"])


def test_failure_probe_after_three_high_results() -> None:
    tree = Tree()
    a = grow(tree, None, {}, 0.96)
    b = grow(tree, a.id, {"lr": 2e-4}, 0.97)
    trig = strategies.failure_probe(tree, 1)
    assert trig is None, "two high results are not enough"
    grow(tree, b.id, {"omega": 12.0}, 0.98)
    trig = strategies.failure_probe(tree, 1)
    assert trig is not None and trig.parent == 3
    (probe,) = _strategies_of(tree)["failure-probe"]
    assert probe.expect == "worsen" and probe.parent == 3
    ((name, value),) = probe.mutation.items()
    current = ROOT_CONFIG.replace(training={"lr": 2e-4}, model={"omega": 12.0}).get(
        MPM_SPACE.key_of(name)
    )
    assert MPM_SPACE.param(name).probe != "none"
    assert value not in MPM_SPACE.param(name).neighbours(current), "an extreme, not one move"


def test_explore_after_consecutive_successes() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.9)
    other = grow(tree, None, {"omega": 12.0}, 0.5)
    c = grow(tree, base.id, {"lr": 2e-4}, 0.995)
    trig = strategies.explore(tree, 1, 8, MPM_CLASSES)
    assert trig is None, "one success is not enough (8 / 4 = 2)"
    grow(tree, c.id, {"hidden_dim": 384}, 0.996)
    trig = strategies.explore(tree, 1, 8, MPM_CLASSES)
    assert trig is not None and trig.parent == other.id, "outside the recent chain 4-3-1"
    assert [p.parent for p in _strategies_of(tree)["explore"]] == [other.id]


def test_recombine_two_distant_good_nodes() -> None:
    tree = Tree()
    grow(tree, None, {}, 0.9)
    a = grow(tree, None, {"omega": 12.0}, 0.97)
    b = grow(tree, None, {"hidden_dim": 384}, 0.98)
    trig = strategies.recombine(tree, 1, MPM_SPACE)
    assert trig is not None
    assert (trig.parent, trig.other, dict(trig.mutation or {})) == (b.id, a.id, {"omega": 12.0})
    (p,) = _strategies_of(tree)["recombine"]
    assert (p.parent, p.mutation, p.expect) == (b.id, {"omega": 12.0}, "improve")
    assert f"node {a.id}" in p.hypothesis


def test_forced_branch_after_four_same_param_results() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.9)
    side = grow(tree, None, {"omega": 12.0}, 0.92)
    node = base
    for lr in (1.2e-4, 1.5e-4, 1.8e-4, 2.1e-4):
        node = grow(tree, node.id, {"lr": lr}, 0.9 + lr * 100)
    trig = strategies.forced_branch(tree, 1)
    assert trig is not None and trig.avoid == ("lr",) and trig.parent == side.id
    (p,) = _strategies_of(tree)["forced-branch"]
    assert p.parent == side.id and "lr" not in p.mutation


def test_switch_param_when_one_param_dominates() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.9)
    a = grow(tree, base.id, {"lr": 2e-4}, 0.91)
    b = grow(tree, a.id, {"omega": 12.0}, 0.92)
    c = grow(tree, b.id, {"lr": 3e-4}, 0.93)
    d = grow(tree, c.id, {"lr": 4e-4}, 0.94)
    assert strategies.switch_param(tree, 1) is None, "3 lr mutations"
    grow(tree, d.id, {"lr": 5e-4}, 0.945)
    assert strategies.forced_branch(tree, 1) is None, "not 4 in a row"
    trig = strategies.switch_param(tree, 1)
    assert trig is not None and trig.avoid == ("lr",)
    got = _strategies_of(tree)
    assert got["switch-param"] and "lr" not in got["switch-param"][0].mutation
    assert all("lr" not in p.mutation for p in got.get("exploit", []))


def test_a_long_block_that_moved_every_param_often_still_exploits() -> None:
    """Once every free param was mutated SAME_PARAM_LIMIT times, counting them all as
    overused left the exploit no move (a 500-trial block then got 1 proposal per call);
    overuse is now counted from the least-mutated free param."""
    from inr_tune.search.space import SearchSpace

    small = SearchSpace.from_dict(
        {
            "params": {
                "lr": {
                    "key": "training.lr",
                    "type": "float",
                    "min": 1e-6,
                    "max": 1e-2,
                    "log": True,
                    "moves": ["*2", "/2"],
                    "weight": 3,
                },
                "omega": {
                    "key": "model.omega",
                    "type": "float",
                    "min": 1.0,
                    "max": 200.0,
                    "log": True,
                    "moves": ["*1.5", "/1.5"],
                    "weight": 3,
                },
            }
        }
    )
    tree = Tree()
    node = grow(tree, None, {}, 0.9)
    lr, omega = ROOT_CONFIG.training.lr, ROOT_CONFIG.model.omega
    for i in range(strategies.SAME_PARAM_LIMIT):
        lr, omega = lr * 2, omega * 1.5
        node = grow(tree, node.id, {"lr": lr}, 0.9 + 0.001 * i)
        node = grow(tree, node.id, {"omega": omega}, 0.9 + 0.001 * i + 0.0005)
    assert set(strategies.overused_params(tree, 1)) == {"lr", "omega"}
    assert strategies.overused_params(tree, 1, among=["lr", "omega"]) == {}
    state = make_state(tree, finished=[n.id for n in tree.nodes], space=small)
    batch = RuleProposer(seed=0).propose(state, 4)
    check_batch(state, batch, 4)
    assert len(batch.proposals) == 4


def test_robustness_test_once_per_lineage() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.996)
    trig = strategies.robustness_test(tree, 1, MPM_SPACE, MPM_CLASSES)
    assert trig is not None and dict(trig.mutation or {}) == {"seed": 1}
    (p,) = _strategies_of(tree)["robustness-test"]
    assert (p.parent, p.mutation, p.expect) == (base.id, {"seed": 1}, "same")
    grow(tree, base.id, {"seed": 1}, 0.9961)
    assert strategies.robustness_test(tree, 1, MPM_SPACE, MPM_CLASSES) is None
    # a better child in the same lineage is not re-tested either
    grow(tree, base.id, {"omega": 12.0}, 0.998)
    assert strategies.robustness_test(tree, 1, MPM_SPACE, MPM_CLASSES) is None


def test_stochastic_field_when_seeds_disagree() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.80)
    grow(tree, base.id, {"seed": 1}, 0.95)
    trig = strategies.stochastic_field(tree, 1, "S")
    assert trig is not None and "S" in trig.reason
    got = _strategies_of(tree)
    (p,) = got["stochastic-field"]
    assert next(iter(p.mutation)) in ("grad_clip", "schedule", "loss")
    assert any("stochastic" in r for r in got["_remarks"])


def test_seed_only_changes_in_robustness_tests() -> None:
    tree = _mixed_tree()
    for n_slots in (1, 4, 8):
        state = make_state(tree, finished=[n.id for n in tree.nodes])
        for p in RuleProposer(seed=2, max_special=8).propose(state, n_slots).proposals:
            assert ("seed" in p.mutation) == (p.strategy == "robustness-test")


# ----------------------------------------------------------------------------- notes


def test_observations_for_finished_nodes() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.99870)
    child = grow(tree, base.id, {"omega": 12.0}, 0.99912, expect="improve")
    bad = grow(tree, base.id, {"lr": 1e-3}, None, status="diverged")
    state = make_state(tree, finished=[base.id, child.id, bad.id])
    notes = {n.node_id: n.observation for n in RuleProposer().propose(state, 1).notes}
    assert set(notes) == {1, 2, 3}
    assert notes[1].startswith("baseline R² 0.99870")
    assert notes[2].startswith("R² 0.99912 vs parent 0.99870: better by 0.00042 (+0.17 nines)")
    assert notes[2].endswith("omega 8→12")  # numbers only: the verdict comes at block end
    assert notes[3].startswith("diverged") and notes[3].endswith("lr 0.0001→0.001")


def test_hypotheses_name_param_direction_and_expectation() -> None:
    state = make_state(_mixed_tree(), finished=[1, 2, 3, 4, 5])
    batch = RuleProposer(seed=4).propose(state, 4)
    for p in batch.proposals:
        ((name, _),) = p.mutation.items()
        assert p.expect in ("improve", "worsen", "same")
        assert name in p.hypothesis or (name == "omega" and "ω" in p.hypothesis)
        assert "→" in p.hypothesis


# ----------------------------------------------------------------------------- simulation


def synthetic_r2(cfg: Config) -> float:
    """A smooth landscape: best near lr 3e-4, ω 20, width 512 (about 4 nines there)."""
    d = (
        ((math.log10(cfg.training.lr) + 3.5) / 0.6) ** 2
        + ((math.log10(cfg.model.omega) - math.log10(20.0)) / 0.3) ** 2
        + ((math.log2(cfg.model.hidden_dim) - 9.0) / 1.5) ** 2
    )
    return 1.0 - 10 ** (-4.0 * math.exp(-d / 4.0))


def simulate_block(seed: int, n_iter: int = 8, parallel: int = 4) -> Tree:
    """A block runner in miniature: propose, add pending, finish, repeat."""
    tree, proposer, finished, added = Tree(), RuleProposer(seed), [], 0
    while added < n_iter:
        free = min(parallel - len(tree.pending(1)), n_iter - added)
        state = SearchState(
            tree=tree,
            space=MPM_SPACE,
            block=1,
            iter_in_block=added,
            n_iter_block=n_iter,
            field="F",
            n_frames=400,
            classes=dict(MPM_CLASSES),
            root_config=ROOT_CONFIG,
            finished=finished,
        )
        batch = proposer.propose(state, free)
        assert batch.proposals, "the proposer ran dry"
        for note in batch.notes:
            tree.note(note.node_id, observation=note.observation)
        for p in batch.proposals:
            cfg, changes = check_proposal(state, p)
            tree.add(p.parent, cfg, changes, p.strategy, p.hypothesis, 1, p.expect)
            added += 1
        finished = []
        for node in tree.pending(1):
            tree.complete(node.id, "ok", {"final_r2": synthetic_r2(config_from_dict(node.config))})
            tree.note(node.id, verdict=verdict_for(tree, node.id))
            finished.append(node.id)
    return tree


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_block_improves_on_the_baseline(seed: int) -> None:
    tree = simulate_block(seed)
    assert len(tree) == 8
    baseline = tree[1]
    assert baseline.strategy == "baseline" and not baseline.mutation
    best = tree.best(1)
    assert best is not None and best.r2 is not None and baseline.r2 is not None
    assert best.r2 > baseline.r2
    assert all(n.verdict in ("supported", "falsified", "inconclusive") for n in tree.nodes)
    for node in tree.nodes:  # child = parent + mutation, nothing edited in place
        parent = ROOT_CONFIG if node.parent is None else config_from_dict(tree[node.parent].config)
        mutation = {k: new for k, (_, new) in node.mutation.items()}
        expected = MPM_SPACE.apply(parent, mutation) if mutation else parent
        assert config_from_dict(node.config) == expected


def test_simulation_is_reproducible() -> None:
    assert simulate_block(3).to_dict() == simulate_block(3).to_dict()


# ----------------------------------------------------------------------------- review


def test_block_stats() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.99)  # 1
    a = grow(tree, base.id, {"lr": 2e-4}, 0.995)  # 2: chain, better
    b = grow(tree, a.id, {"lr": 4e-4}, 0.994)  # 3: chain, worse
    grow(tree, base.id, {"omega": 12.0}, 0.999)  # 4: branch, better
    grow(tree, b.id, {"lr": 8e-4}, None, status="failed")  # 5: branch, worse
    stats = block_stats(tree, 1)
    assert stats.n_nodes == 5 and stats.n_failed == 1
    assert stats.branching_rate == pytest.approx(2 / 4)
    assert stats.improvement_rate == pytest.approx(2 / 4)
    assert stats.best == 4 and stats.best_r2 == pytest.approx(0.999)
    assert stats.same_param_run == 2 and stats.same_param == "lr"
    assert stats.plateau == [1, 2, 3]  # nines 0.333, 0.384, 0.373: within ±0.05
    assert "best config node 4 (R² 0.999000 (1 seed, not re-run))" in stats.summary()


def _stats(**kw: object) -> BlockStats:
    args: dict[str, object] = {
        "block": 3,
        "n_nodes": 8,
        "n_finished": 8,
        "n_failed": 0,
        "branching_rate": 0.5,
        "improvement_rate": 0.5,
        "plateau": [],
        "same_param_run": 2,
        "same_param": "lr",
        "best": 5,
        "best_r2": 0.999,
    }
    args.update(kw)
    return BlockStats(**args)  # type: ignore[arg-type]


def test_review_rules() -> None:
    assert review(_stats(), 1.414) == (1.414, [])
    c, rules = review(_stats(branching_rate=0.1), 1.414)
    assert c > 1.414 and any("Branching" in r for r in rules)
    assert review(_stats(improvement_rate=0.2), 1.414)[0] < 1.414
    assert review(_stats(improvement_rate=0.9), 1.414)[0] > 1.414
    c, rules = review(_stats(plateau=[2, 3, 4]), 1.414)
    assert c >= 2.0 and any("plateau" in r for r in rules)
    _, rules = review(_stats(same_param_run=5), 1.414)
    assert any("switch dimension" in r for r in rules)
    assert review(_stats(branching_rate=0.0, improvement_rate=0.9), 2.9)[0] == 3.0
    assert review(_stats(improvement_rate=0.1), 0.55)[0] == 0.5


def test_default_review_block_dedups_rules() -> None:
    tree = Tree()
    node = grow(tree, None, {}, 0.99)
    for lr in (2e-4, 3e-4, 4e-4, 5e-4, 6e-4):
        node = grow(tree, node.id, {"lr": lr}, 0.99)
    first = RuleProposer().review_block(make_state(tree))
    assert first.new_rules
    again = RuleProposer().review_block(make_state(tree, rules=first.new_rules))
    assert again.new_rules == []


# ----------------------------------------------------------------------------- speed-ups


@pytest.mark.slow
def test_benchmark_run_proposes_as_recorded(tmp_path) -> None:
    """The 200-trial run of ``benchmarks/searcher_cost.py`` (rule proposer, seed 0, synthetic
    results) proposes exactly what it did before the searcher was made faster (issue 14 §4):
    every node's parent, mutation, strategy, hypothesis and expectation. An intended change
    of the rules changes this hash: check the new proposals, then record the new hash."""
    import hashlib
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "searcher_cost.py"
    spec = importlib.util.spec_from_file_location("searcher_cost", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    dump = tmp_path / "proposals.json"
    bench.drive(200, 4, dump)
    digest = hashlib.sha1(dump.read_bytes()).hexdigest()
    assert digest == "081a85297531ac3599191396ed86833e2a7cbd06"


def test_taken_configs_follows_a_growing_tree() -> None:
    from inr_tune.search.proposers.base import scratch_copy, taken_configs
    from inr_tune.search.space import config_key

    tree = _mixed_tree()
    first = taken_configs(tree)
    first["x"] = -1  # callers may add to the answer: the kept one is not touched
    grow(tree, 2, {"lr": 4e-4}, 0.995)
    now = taken_configs(tree)
    expected: dict[str, int] = {}
    for node in tree.nodes:
        expected.setdefault(config_key(node.config), node.id)
    assert now == expected and "x" not in now
    copy = scratch_copy(tree)
    assert copy.to_dict() == tree.to_dict() and taken_configs(copy) == expected
    copy.add(None, ROOT_CONFIG.replace(model={"omega": 30.0}), {"omega": [8, 30]}, "explore", "", 1)
    assert len(tree) == len(copy) - 1


def test_moves_ranked_by_what_the_whole_tree_saw() -> None:
    """Issue 14 §3: a node's candidate moves are ordered by how that kind of move did
    anywhere in the block (mean reward change against the reference), not only around the
    node: a move that helped elsewhere comes first, one that hurt comes last."""
    import random

    from inr_tune.search.proposers.moves import Candidates, move_key

    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    up = grow(tree, base.id, {"omega": 12.0}, 0.996)  # ω up helped here
    grow(tree, base.id, {"lr": 2e-4}, 0.95)  # lr up (from 1e-4) hurt here
    other = grow(tree, None, {"hidden_dim": 384}, 0.985)  # a branch with no lead of its own
    state = make_state(tree)
    cands = Candidates(state)
    gains = cands.evidence(tree)
    omega, lr = MPM_SPACE.param("omega"), MPM_SPACE.param("lr")
    assert gains[move_key(omega, 8.0, 12.0)] > 0 > gains[move_key(lr, 1e-4, 4e-4)]
    assert move_key(omega, 8.0, 5.0) not in gains, "down is another kind of move than up"
    moves = list(cands.moves(tree, other.id, random.Random(0)))
    first_name, first_value = moves[0]
    cfg = cands.config_of(tree, other.id)
    assert first_name == "omega" and first_value > cfg.get("model.omega")
    lr_up = [i for i, (n, v) in enumerate(moves) if n == "lr" and v > cfg.get("training.lr")]
    untried = [i for i, (n, _) in enumerate(moves) if n in ("n_layers", "batch_size")]
    assert lr_up and untried and min(lr_up) > max(untried), "moves that hurt come last"
    assert up.id != other.id


def test_evidence_keeps_negative_r2_in_order() -> None:
    """A move from R² −0.5 to −1.5 hurt, and one from −0.5 to −0.1 helped: the evidence
    reads the same unclipped score UCB's Q is scaled from (clipped at 0, both were "no
    change")."""
    from inr_tune.search.proposers.moves import Candidates, move_key

    tree = Tree()
    base = grow(tree, None, {}, -0.5)
    grow(tree, base.id, {"omega": 12.0}, -1.5)
    grow(tree, base.id, {"lr": 2e-4}, -0.1)
    grow(tree, base.id, {"n_layers": 5}, None)  # failed: scores as R² −1
    gains = Candidates(make_state(tree)).evidence(tree)
    omega, lr, layers = (MPM_SPACE.param(n) for n in ("omega", "lr", "n_layers"))
    assert gains[move_key(omega, 8.0, 12.0)] < 0 < gains[move_key(lr, 1e-4, 2e-4)]
    assert gains[move_key(layers, 4, 5)] < 0


def test_moves_that_changed_nothing_rank_after_untried_ones() -> None:
    """A kind of move that moved the score by less than ``FLAT_GAIN`` (a tie) ranks after
    the kinds never tried, and a node whose own move only tied is not followed further the
    same way; one that clearly helped still leads."""
    import random

    from inr_tune.search.proposers.moves import FLAT_GAIN, Candidates

    tree = Tree()
    base = grow(tree, None, {}, 0.5)
    tie = grow(tree, base.id, {"omega": 12.0}, 0.501)  # ω up: +0.0009 nines, a tie
    assert 0 < math.log10(0.5 / 0.499) < FLAT_GAIN["nines"]
    cands = Candidates(make_state(tree))
    moves = list(cands.moves(tree, tie.id, random.Random(0)))
    cfg = cands.config_of(tree, tie.id)
    omega_up = [i for i, (n, v) in enumerate(moves) if n == "omega" and v > cfg.get("model.omega")]
    untried = [i for i, (n, _) in enumerate(moves) if n in ("n_layers", "batch_size", "lr")]
    assert omega_up and untried and min(omega_up) > max(untried)

    tree = Tree()
    base = grow(tree, None, {}, 0.5)
    helped = grow(tree, base.id, {"omega": 12.0}, 0.6)  # +0.097 nines: clearly helped
    moves = list(Candidates(make_state(tree)).moves(tree, helped.id, random.Random(0)))
    assert moves[0][0] == "omega" and moves[0][1] > 12.0


def test_a_stalled_block_sets_the_weights_aside() -> None:
    """When the block's best has not risen by more than FLAT_GAIN over its last few
    finished nodes, untried params come in a uniform order: the variant (weight 0.1) is
    then no longer almost always the last one offered."""
    import random

    from inr_tune.search.proposers.moves import STALL_MIN, Candidates

    def first_place(tree: Tree, parent: int) -> list[int]:
        places = []
        for seed in range(200):
            moves = Candidates(make_state(tree, n_iter_block=16)).moves(
                tree, parent, random.Random(seed)
            )
            names = list(dict.fromkeys(n for n, _ in moves))
            places.append(names.index("inr_type"))
        return places

    flat = Tree()
    base = grow(flat, None, {}, 0.5)
    for k in range(STALL_MIN):  # R² 0.5 → 0.5005 …: within FLAT_GAIN of the start
        grow(flat, base.id, {"omega": [12.0, 5.0, 18.0, 3.0][k]}, 0.5 + 0.0002 * k)
    assert Candidates(make_state(flat, n_iter_block=16)).stalled(flat)
    rising = Tree()
    base2 = grow(rising, None, {}, 0.5)
    for k in range(STALL_MIN):  # each clearly better than the last
        grow(rising, base2.id, {"omega": [12.0, 5.0, 18.0, 3.0][k]}, 0.6 + 0.1 * k)
    assert not Candidates(make_state(rising, n_iter_block=16)).stalled(rising)
    n_params = len(
        dict.fromkeys(
            n for n, _ in Candidates(make_state(flat)).moves(flat, base.id, random.Random(0))
        )
    )
    stalled, weighted = first_place(flat, base.id), first_place(rising, base2.id)
    assert sum(stalled) / len(stalled) < 0.7 * n_params < sum(weighted) / len(weighted)


def test_a_stalled_block_moves_every_param_once_before_any_twice() -> None:
    """Once the block has stalled, the untried values of a param the block already moved
    (ω_hidden None → 8 tied) wait until every param it never moved has had a move: on
    S@100 the tree had tried points_per_step at 256, 512, 1024 and 2048 before the variant."""
    import random

    from inr_tune.search.proposers.moves import STALL_MIN, Candidates

    tree = Tree()
    base = grow(tree, None, {}, 0.5)
    grow(tree, base.id, {"omega_hidden": 8}, 0.5001)
    for k in range(STALL_MIN):
        grow(tree, base.id, {"omega": [12.0, 5.0, 18.0, 3.0][k]}, 0.5 + 0.0002 * k)
    cands = Candidates(make_state(tree, n_iter_block=16))
    assert cands.stalled(tree) and cands.moved_params(tree) == {"omega_hidden", "omega"}
    for seed in range(20):
        moves = list(
            Candidates(make_state(tree, n_iter_block=16)).moves(tree, base.id, random.Random(seed))
        )
        again = [i for i, (n, _) in enumerate(moves) if n == "omega_hidden"]
        never = [i for i, (n, _) in enumerate(moves) if n not in ("omega_hidden", "omega")]
        assert again and never and max(never) < min(again)
    # while the block still improves, the weighted order is kept: a second ω_hidden value
    # is not pushed behind every unmoved param
    rising = Tree()
    base2 = grow(rising, None, {}, 0.5)
    grow(rising, base2.id, {"omega_hidden": 8}, 0.5001)
    for k in range(STALL_MIN):
        grow(rising, base2.id, {"omega": [12.0, 5.0, 18.0, 3.0][k]}, 0.6 + 0.1 * k)
    early = []
    for seed in range(50):
        moves = list(
            Candidates(make_state(rising, n_iter_block=16)).moves(
                rising, base2.id, random.Random(seed)
            )
        )
        again = [i for i, (n, _) in enumerate(moves) if n == "omega_hidden"]
        never = [i for i, (n, _) in enumerate(moves) if n not in ("omega_hidden", "omega")]
        early.append(min(again) < max(never))
    assert any(early)
