"""The searchers of ``--searcher``: random, tpe (Optuna through Ray Tune), greedy.

Fast tests drive each proposer directly (determinism per seed, the size budget, configs
tried before, pins, multi-param mutations only for random/tpe, TPE's distributions from
both shipped spaces); the slow test runs a tiny real block per searcher as a user would.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inr_tune.config import Config, config_from_dict
from inr_tune.errors import ConfigError, ProposalError
from inr_tune.search.proposers import (
    GreedyProposer,
    Proposal,
    ProposalBatch,
    Proposer,
    RandomProposer,
    SearchState,
    check_proposal,
    make_proposer,
    taken_configs,
)
from inr_tune.search.proposers.drawn import draw_value
from inr_tune.search.space import SearchSpace, config_key
from inr_tune.search.tree import Tree
from tests.helpers import TINY, block_args, completed, run_block, write_synthetic_mpm
from tests.proposer_contract import (
    MPM_CLASSES,
    MPM_SPACE,
    ROOT_CONFIG,
    ProposerContract,
    grow,
    make_state,
)
from tests.proposer_contract import simulate as contract_simulate

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "configs" / "spaces"


def tpe(seed: int = 0) -> Proposer:
    pytest.importorskip("optuna")
    from inr_tune.search.proposers.tpe import TPEProposer

    return TPEProposer(seed=seed)


def small(cfg: Config) -> str | None:
    """A size budget in miniature: at most 384 wide and 5 layers (the root is 256 × 4)."""
    if cfg.model.hidden_dim > 384 or cfg.model.n_layers > 5:
        return f"too big: {cfg.model.hidden_dim}×{cfg.model.n_layers}"
    return None


def synthetic_r2(cfg: Config) -> float:
    """A smooth landscape over lr, ω and width (best near 3e-4, 20, 128)."""
    d = (
        ((math.log10(cfg.training.lr) + 3.5) / 0.6) ** 2
        + ((math.log10(cfg.model.omega) - math.log10(20.0)) / 0.3) ** 2
        + ((math.log2(cfg.model.hidden_dim) - 7.0) / 1.5) ** 2
    )
    return 1.0 - 10 ** (-4.0 * math.exp(-d / 4.0))


def check_drawn(
    state: SearchState, batch: ProposalBatch, n_slots: int, strategy: str
) -> list[Config]:
    """Every proposal valid on a scratch copy, parent None, the seed and pins untouched."""
    assert len(batch.proposals) <= max(0, n_slots)
    scratch = state.tree.copy()
    taken = taken_configs(scratch)
    out = []
    for p in batch.proposals:
        assert p.parent is None
        assert p.strategy in ("baseline", strategy), p.strategy
        assert bool(p.mutation) == (p.strategy != "baseline")
        assert "seed" not in p.mutation
        cfg, changes = check_proposal(state, p, tree=scratch, taken=taken)
        for key in state.pinned:
            assert cfg.get(key) == state.root_config.get(key)
        node = scratch.add(p.parent, cfg, changes, p.strategy, p.hypothesis, state.block, p.expect)
        taken[config_key(cfg)] = node.id
        out.append(cfg)
    return out


def simulate(proposer: Proposer, **kw: Any) -> tuple[Tree, list[Any]]:
    """``proposer_contract.simulate`` on ``synthetic_r2``."""
    return contract_simulate(proposer, synthetic_r2, **kw)


# ----------------------------------------------------------------------------- config


def test_searcher_setting_and_make_proposer() -> None:
    assert Config().search.searcher == "ucb"
    search = Config().search
    for name, cls in (("random", RandomProposer), ("greedy", GreedyProposer)):
        search.searcher = name
        proposer, label = make_proposer(search, Path("."), None)
        assert isinstance(proposer, cls) and label.startswith(name)
    with pytest.raises(ConfigError, match="searcher"):
        Config().replace(search={"searcher": "bayes"})


def test_tpe_without_optuna_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna → ImportError
    search = Config().search
    search.searcher = "tpe"
    with pytest.raises(ConfigError) as err:
        make_proposer(search, Path("."), None)
    assert 'pip install -e ".[tpe]"' in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- space


def test_several_params_only_for_random_and_tpe() -> None:
    two = {"lr": 2e-4, "omega": 12.0}
    with pytest.raises(ProposalError, match="exactly one parameter; got 2"):
        MPM_SPACE.mutate(ROOT_CONFIG, two, strategy="exploit")
    for strategy in ("random", "tpe"):
        cfg, changes = MPM_SPACE.mutate(ROOT_CONFIG, two, strategy=strategy)
        assert changes == {"lr": (1e-4, 2e-4), "omega": (8.0, 12.0)}
        assert (cfg.training.lr, cfg.model.omega) == (2e-4, 12.0)
        with pytest.raises(ProposalError, match="only in a robustness-test"):
            MPM_SPACE.mutate(ROOT_CONFIG, {**two, "seed": 3}, strategy=strategy)
        with pytest.raises(ProposalError, match="pinned"):
            MPM_SPACE.mutate(ROOT_CONFIG, two, {"model.omega": 8.0}, strategy=strategy)
        with pytest.raises(ProposalError, match="already has omega=8"):
            MPM_SPACE.mutate(ROOT_CONFIG, {"lr": 2e-4, "omega": 8.0}, strategy=strategy)
        with pytest.raises(ProposalError, match="at least one parameter"):
            MPM_SPACE.mutate(ROOT_CONFIG, {}, strategy=strategy)
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    state = make_state(tree)
    check_proposal(state, Proposal(None, two, "random", "drawn", None))
    with pytest.raises(ProposalError, match="parent is null"):
        check_proposal(state, Proposal(base.id, two, "tpe", "drawn", None))
    with pytest.raises(ProposalError, match="exactly one parameter"):
        check_proposal(state, Proposal(None, two, "explore", "two at once", None))


def test_draws_follow_the_space() -> None:
    import random

    rng = random.Random(0)
    for name in ("lr", "omega", "n_layers", "total_steps", "hidden_dim", "omega_hidden"):
        p = MPM_SPACE.param(name)
        values = [draw_value(p, rng) for _ in range(400)]
        for v in values:
            p.coerce(v)  # inside the bounds or the list
        if p.is_choice:
            assert set(values) == set(p.values), name  # every list value comes up
        elif p.type == "int":
            assert all(isinstance(v, int) for v in values), name
        if p.log:  # log-uniform: about half the draws below the geometric middle
            mid = math.sqrt(p.low * p.high)
            assert 0.4 < sum(v < mid for v in values) / len(values) < 0.6, name


# ----------------------------------------------------------------------------- random


def test_random_is_seeded_respects_budget_pins_and_taken() -> None:
    tree = Tree()
    grow(tree, None, {}, 0.99)
    pinned = {"model.omega": 8.0, "training.optimizer": "adam"}
    state = make_state(tree, finished=[1], check_config=small, pinned=pinned)
    a = RandomProposer(seed=3).propose(state, 4)
    assert a == RandomProposer(seed=3).propose(state, 4)
    assert a.proposals != RandomProposer(seed=4).propose(state, 4).proposals
    configs = check_drawn(state, a, 4, "random")
    assert len(configs) == 4 and all(small(c) is None for c in configs)
    assert all(len(p.mutation) > 1 for p in a.proposals)  # whole configs, not one move
    assert [n.node_id for n in a.notes] == [1]
    # the configs of this batch, once in the tree, are not drawn again
    for p, cfg in zip(a.proposals, configs, strict=True):
        tree.add(
            None,
            cfg,
            MPM_SPACE.validate(ROOT_CONFIG, p.mutation, strategy="random"),
            "random",
            "",
            1,
        )
    again = RandomProposer(seed=3).propose(make_state(tree, check_config=small), 4)
    keys = set(taken_configs(tree))
    assert all(config_key(c) not in keys for c in check_drawn(make_state(tree), again, 4, "random"))


def test_random_opens_with_the_baseline_and_gives_up_when_nothing_fits() -> None:
    batch = RandomProposer(seed=0).propose(make_state(Tree()), 4)
    assert [p.strategy for p in batch.proposals] == ["baseline", "random", "random", "random"]
    nothing = RandomProposer(seed=0, max_tries=20).propose(
        make_state(Tree(), check_config=lambda cfg: "never"), 2
    )
    assert nothing.proposals == [] and "no config" in nothing.remarks[0]


def test_random_simulated_block() -> None:
    tree, _ = simulate(RandomProposer(seed=1))
    assert len(tree) == 16
    assert [n.strategy for n in tree.nodes].count("random") == 15
    assert len({config_key(config_from_dict(n.config)) for n in tree.nodes}) == 16


# ----------------------------------------------------------------------------- greedy


class TestGreedyContract(ProposerContract):
    @pytest.fixture
    def make_proposer(self) -> Callable[[], Proposer]:
        return lambda: GreedyProposer(seed=0)


def test_greedy_mutates_the_best_node() -> None:
    tree = Tree()
    base = grow(tree, None, {}, 0.99)
    a = grow(tree, None, {"omega": 12.0}, 0.996)
    grow(tree, base.id, {"lr": 2e-4}, 0.996)  # ties with a: the earlier node wins
    grow(tree, None, {"hidden_dim": 384}, None, status="diverged")
    state = make_state(tree, finished=[n.id for n in tree.nodes])
    batch = GreedyProposer(seed=0).propose(state, 4)
    assert batch == GreedyProposer(seed=0).propose(state, 4)
    assert [p.parent for p in batch.proposals] == [a.id] * 4
    assert {p.strategy for p in batch.proposals} == {"exploit"}
    assert all(len(p.mutation) == 1 for p in batch.proposals)
    first = GreedyProposer(seed=0).propose(make_state(Tree()), 4)
    assert [p.strategy for p in first.proposals] == ["baseline", "exploit", "exploit", "exploit"]
    assert all(p.parent is None for p in first.proposals)


def test_greedy_simulated_block_climbs() -> None:
    tree, batches = simulate(GreedyProposer(seed=0), check_config=small)
    assert len(tree) == 16
    best = tree.best(1)
    assert best is not None and best.r2 > tree[1].r2
    for batch in batches[1:]:  # each batch branches from the best node when it was chosen
        assert len({p.parent for p in batch}) == 1


# ----------------------------------------------------------------------------- tpe


@pytest.mark.parametrize("name", ["mpm.yaml", "flyvis.yaml"])
def test_tpe_distributions_from_the_shipped_spaces(name: str) -> None:
    optuna = pytest.importorskip("optuna")
    from inr_tune.search.proposers.tpe import optuna_space

    space = SearchSpace.from_yaml(SPACES / name)
    dists = optuna_space(space)
    assert sorted(dists) == sorted(space.search_params) and "seed" not in dists
    d = optuna.distributions
    for pname, dist in dists.items():
        p = space.param(pname)
        if p.is_choice:
            assert isinstance(dist, d.CategoricalDistribution)
            assert tuple(dist.choices) == p.values
        elif p.type == "int":
            assert isinstance(dist, d.IntDistribution)
            assert (dist.low, dist.high, dist.log) == (p.low, p.high, p.log)
        else:
            assert isinstance(dist, d.FloatDistribution)
            assert (dist.low, dist.high, dist.log) == (p.low, p.high, p.log)
    assert dists["lr"].log and dists["total_steps"].log and not dists["n_layers"].log
    assert None in dists["omega_hidden"].choices and None in dists["grad_clip"].choices


def test_tpe_is_seeded_and_respects_budget_pins_and_taken() -> None:
    tree = Tree()
    grow(tree, None, {}, 0.99)
    pinned = {"model.omega": 8.0}
    state = make_state(tree, finished=[1], check_config=small, pinned=pinned)
    a = tpe(3).propose(state, 4)
    assert a == tpe(3).propose(state, 4)
    assert a.proposals != tpe(4).propose(state, 4).proposals
    configs = check_drawn(state, a, 4, "tpe")
    assert len(configs) == 4 and all(small(c) is None for c in configs)
    assert all("omega" not in p.mutation for p in a.proposals)


def test_tpe_learns_from_finished_and_refused_trials() -> None:
    proposer = tpe(0)
    tree, _ = simulate(proposer, n_iter=16, check_config=small)
    assert [n.strategy for n in tree.nodes].count("tpe") == 15
    study = proposer.searcher._ot_study
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    # the 16 nodes (12 told so far: the last batch has not been shown to the proposer),
    # and the suggestions the budget refused, told as a bad result
    assert len(done) >= 12
    refused = [t for t in done if t.value == -1.0]
    assert refused, "the tiny budget refuses some suggestions"
    assert all(t.params["hidden_dim"] > 384 or t.params["n_layers"] > 5 for t in refused)
    told = sorted(t.value for t in done if t.value > -1.0)
    best = max(n.r2 for n in tree.nodes if n.id <= 12)
    assert math.isclose(told[-1], best)


def test_tpe_opens_a_new_study_per_block() -> None:
    proposer = tpe(0)
    tree = Tree()
    grow(tree, None, {}, 0.99)
    proposer.propose(make_state(tree, finished=[1]), 2)
    first = proposer.searcher
    root2 = ROOT_CONFIG.replace(data={"n_frames": 600})
    batch = proposer.propose(make_state(tree, block=2, root_config=root2, n_frames=600), 2)
    assert proposer.searcher is not first
    assert batch.proposals[0].strategy == "baseline"


# ----------------------------------------------------------------------------- reports


def test_reports_show_multi_param_mutations() -> None:
    from inr_tune.reports.analysis import _entry
    from inr_tune.reports.live import _fmt_mutation

    tree = Tree()
    grow(tree, None, {}, 0.99)
    node = grow(tree, None, {"lr": 2e-4, "omega": 12.0, "n_layers": 3}, 0.995, strategy="random")
    assert _fmt_mutation(node) == "3 params: lr 0.0001→0.0002; omega 8→12; n_layers 4→3"
    text = "\n".join(_entry(tree, node.id, MPM_CLASSES, None))
    assert "Mutation: 3 params from the root config: lr: 0.0001 -> 0.0002; omega: 8 -> 12" in text
    assert "drawn at random" in text and "Mode/Strategy: drawn/random" in text


# ----------------------------------------------------------------------------- real blocks

TINY_SPACE = """\
name: tiny
params:
  lr: {key: training.lr, type: float, min: 1.0e-5, max: 1.0e-2, log: true, moves: ["*2", "/2"]}
  hidden_dim: {key: model.hidden_dim, values: [8, 16, 24], moves: [next]}
  n_layers: {key: model.n_layers, type: int, min: 1, max: 2, moves: ["+1", "-1"]}
  omega: {key: model.omega, type: float, min: 2.0, max: 40.0, log: true, moves: ["*1.5", "/1.5"]}
  grad_clip: {key: training.grad_clip, values: [null, 1.0], moves: [any]}
  seed: {key: training.seed, type: int, min: 0, max: 1000000, moves: ["+1"], role: seed, weight: 0}
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=50)


@pytest.mark.slow
@pytest.mark.parametrize("searcher", ["random", "tpe", "greedy"])
def test_block_with_each_searcher(searcher: str, tmp_path: Path, dataset: Path) -> None:
    if searcher == "tpe":
        pytest.importorskip("optuna")
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    out = tmp_path / "run"
    sets = [*TINY, f"data.path={dataset}", f"search.space={space}"]
    r = run_block(
        *block_args("--searcher", searcher, "--out", str(out), sets=sets, iterations=6, parallel=2)
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert searcher in r.stdout  # the banner names the searcher
    events = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "run_start")
    assert searcher in json.dumps(start["options"])  # the run's settings hold the searcher
    block = next(e for e in events if e["event"] == "block_start")
    assert block["proposer"].startswith(searcher)
    nodes = [n for e in events if e["event"] == "batch_added" for n in e["nodes"]]
    assert len(nodes) == 6 and len(completed(out)) == 6
    strategies = [n["strategy"] for n in nodes]
    assert strategies[0] == "baseline"
    assert strategies[-2:] == ["robustness-test", "robustness-test"]  # the session's reruns
    own = strategies[1:-2]
    assert own and set(own) == {"exploit" if searcher == "greedy" else searcher}
    for n in nodes[1:-2]:
        assert "seed" not in n["mutation"]
        if searcher == "greedy":
            assert len(n["mutation"]) == 1
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == strategies
    assert all(r["status"] for r in rows)
    analysis = (out / "analysis.md").read_text()
    assert analysis.count("## Iter ") == 6 and "## Block 1 summary" in analysis


def test_tpe_after_a_resume_is_told_the_finished_nodes() -> None:
    tree, _ = simulate(tpe(0), n_iter=8, check_config=small)
    fresh = tpe(0)  # a resumed run: a new proposer on the replayed tree
    state = make_state(tree, check_config=small)
    batch = fresh.propose(state, 4)
    check_drawn(state, batch, 4, "tpe")
    assert len(batch.proposals) == 4
    trials = fresh.searcher._ot_study.get_trials(deepcopy=False)
    told = [t for t in trials if t.state.name == "COMPLETE" and t.value > -1.0]
    assert len(told) == 8  # every finished node, as an evaluated point
