"""The verdict test (search/verdict.py): planted and null effects, noise sources, the cases
that cannot be tested, and a block whose verdicts are computed once and shown alike."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from inr_tune.config import Config
from inr_tune.search.seeds import best_config, unconfirmed
from inr_tune.search.tree import Node, Tree
from inr_tune.search.verdict import EQUIVALENCE, judge

CFG = Config().to_dict()
SEED = {"seed": [0, 1]}


def _r2(nines: float) -> float:
    return 1.0 - 10.0 ** (-nines)


def _add(
    tree: Tree,
    parent: int | None,
    nines: float | None,
    *,
    mutation: dict[str, Any] | None = None,
    expect: str | None = "improve",
    status: str = "ok",
    metrics: dict[str, Any] | None = None,
    block: int = 1,
) -> Node:
    """A finished node whose held-out R² sits at ``nines`` decades (None: no R²)."""
    if mutation is None:
        mutation = {"omega": [8.0, 8.0 + len(tree) + 1]}
    strategy = "robustness-test" if "seed" in mutation else "exploit"
    node = tree.add(parent, CFG, mutation, strategy, "h", block, expect)
    m = dict(metrics or {})
    if nines is not None:
        m["holdout_r2"] = _r2(nines)
    tree.complete(node.id, status, m, None if nines is not None else "loss became nan")
    return node


def _config(tree: Tree, parent: int | None, values: list[float], **kw: Any) -> Node:
    """A config run once per value: the first is the node, the others its seed reruns."""
    node = _add(tree, parent, values[0], **kw)
    for i, v in enumerate(values[1:], start=1):
        _add(tree, node.id, v, mutation={"seed": [0, i]}, expect="same")
    return node


def _baseline(tree: Tree, values: list[float]) -> Node:
    return _config(tree, None, values, mutation={}, expect=None)


# ----------------------------------------------------------------------------- planted


@pytest.mark.parametrize(("expect", "word"), [("improve", "supported"), ("worsen", "falsified")])
def test_a_planted_5_sd_effect_is_called(expect: str, word: str) -> None:
    """3 seeds a side, SD exactly σ on both, means 5 σ apart: beyond the 3.76 σ margin."""
    sd = 0.02
    tree = Tree()
    base = _baseline(tree, [3.0 - sd, 3.0, 3.0 + sd])
    child = _config(tree, base.id, [3.1 - sd, 3.1, 3.1 + sd], expect=expect)
    v = judge(tree, child.id)
    assert v.word == word, v.basis
    assert "3 vs 3 runs" in v.basis and "df 4" in v.basis
    same = _config(tree, base.id, [3.1 - sd, 3.1 + 0.001, 3.1 + sd], expect="same")
    assert judge(tree, same.id).word == "falsified"


def test_a_planted_effect_within_the_margin_is_not_called() -> None:
    sd = 0.02
    tree = Tree()
    base = _baseline(tree, [3.0 - sd, 3.0, 3.0 + sd])
    child = _config(tree, base.id, [3.06 - sd, 3.06, 3.06 + sd])  # 3 σ < 3.76 σ
    assert judge(tree, child.id).word == "inconclusive"


# ----------------------------------------------------------------------------- null


def _null_case(rng: random.Random, layout: str) -> Tree:
    """One comparison with no real effect (every run N(3, 0.03²) nines); the judged
    node is always the last config added with expect "improve"."""
    draw = lambda k: [3.0 + rng.gauss(0.0, 0.03) for _ in range(k)]  # noqa: E731
    tree = Tree()
    if layout == "3v3":
        base = _baseline(tree, draw(3))
        _config(tree, base.id, draw(3))
    elif layout == "1v3":
        base = _baseline(tree, draw(3))
        _config(tree, base.id, draw(1))
    elif layout == "1v1-ancestor":  # noise from a re-run grandparent
        base = _baseline(tree, draw(3))
        mid = _config(tree, base.id, draw(1))
        _config(tree, mid.id, draw(1))
    else:  # "1v1-block": the block's only re-run config is elsewhere in the tree
        base = _baseline(tree, draw(1))
        _config(tree, base.id, draw(2))
        _config(tree, base.id, draw(1))
    return tree


@pytest.mark.parametrize("layout", ["3v3", "1v3", "1v1-ancestor", "1v1-block"])
def test_a_null_effect_is_inconclusive_in_95_percent_of_1000_comparisons(layout: str) -> None:
    rng = random.Random(1234)
    words = []
    for _ in range(1000):
        tree = _null_case(rng, layout)
        last = max(n.id for n in tree.nodes if n.strategy != "robustness-test")
        words.append(judge(tree, last).word)
    share = words.count("inconclusive") / len(words)
    assert share >= 0.95, (layout, share)


def test_with_3_seeds_a_side_a_5_sd_effect_is_called_in_most_random_draws() -> None:
    """Power with the default budget: 3 vs 3 seeds, effect 5 σ, random noise."""
    rng = random.Random(7)
    called = 0
    for _ in range(300):
        tree = Tree()
        base = _baseline(tree, [3.0 + rng.gauss(0, 0.02) for _ in range(3)])
        child = _config(tree, base.id, [3.1 + rng.gauss(0, 0.02) for _ in range(3)])
        called += judge(tree, child.id).word == "supported"
    assert called / 300 >= 0.6


# ----------------------------------------------------------------------------- sources


def test_the_noise_source_is_named() -> None:
    tree = Tree()
    base = _baseline(tree, [3.0])
    assert "noise unknown" in judge(tree, _add(tree, base.id, 5.0).id).basis
    mid = _config(tree, base.id, [3.1, 3.12, 3.09])
    child = _add(tree, mid.id, 3.2)
    basis = judge(tree, child.id).basis
    assert f"3 seeds of node {mid.id} (reference)" in basis
    grandchild = _add(tree, child.id, 3.3)
    assert f"of node {mid.id} (nearest re-run ancestor)" in judge(tree, grandchild.id).basis
    other = _add(tree, base.id, 3.3)
    assert f"of node {mid.id} (largest seed SD of block 1)" in judge(tree, other.id).basis


def test_a_large_effect_with_few_runs_must_beat_the_block_spread() -> None:
    tree = Tree()
    base = _baseline(tree, [3.0, 3.4])  # 2 runs: df 1, spread 0.4
    child = _add(tree, base.id, 6.0)  # 3 nines better
    v = judge(tree, child.id)
    assert v.word == "inconclusive", v.basis  # 1 df: the t margin is 64 SD
    tree2 = Tree()
    base2 = _baseline(tree2, [3.0, 3.01, 2.99, 3.0])
    far = _add(tree2, base2.id, 4.0)
    assert judge(tree2, far.id).word == "supported"


@pytest.mark.parametrize(("sd", "word"), [(0.005, "supported"), (0.1, "inconclusive")])
def test_same_is_supported_only_inside_the_equivalence_margin(sd: float, word: str) -> None:
    tree = Tree()
    base = _baseline(tree, [3.0 - sd, 3.0, 3.0 + sd])
    child = _config(tree, base.id, [3.0 - sd, 3.01, 3.0 + sd], expect="same")
    v = judge(tree, child.id)
    assert v.word == word, v.basis
    if word == "supported":
        assert f"±{EQUIVALENCE}" in v.basis


# ----------------------------------------------------------------------------- untestable


def test_failures_are_categorical() -> None:
    tree = Tree()
    base = _baseline(tree, [3.0])
    assert judge(tree, _add(tree, base.id, None, status="diverged").id).word == "falsified"
    probe = _add(tree, base.id, None, status="diverged", expect="worsen")
    assert judge(tree, probe.id).word == "supported"
    failed = _add(tree, base.id, None, status="failed")
    assert judge(tree, _add(tree, failed.id, 3.0).id).word == "supported"


def test_reruns_asha_and_clock_cut_changes_are_inconclusive() -> None:
    tree = Tree()
    base = _baseline(tree, [3.0, 3.01, 2.99])
    rerun = next(n for n in tree.nodes if n.strategy == "robustness-test")
    assert "seed rerun" in judge(tree, rerun.id).basis
    early = _add(tree, base.id, 6.0, status="early_stopped")
    assert "ASHA" in judge(tree, early.id).basis
    cut = {"budget_cut": True, "steps_done": 900, "total_steps": 2000}
    steps = _add(tree, base.id, 6.0, mutation={"total_steps": [1000, 2000]}, metrics=cut)
    v = judge(tree, steps.id)
    assert v.word == "inconclusive" and "cut by the clock (900 of 2000 steps)" in v.basis
    omega = _add(tree, base.id, 6.0, metrics=cut)  # ω is not about the schedule
    assert judge(tree, omega.id).word == "supported"
    assert judge(tree, base.id).basis.startswith("baseline")
    assert judge(tree, _add(tree, base.id, 6.0, expect=None).id).word == "inconclusive"


def test_best_config_is_the_best_mean_over_seeds() -> None:
    """Re-run configs rank first; a single run above their mean is named, not crowned."""
    tree = Tree()
    base = _baseline(tree, [3.0])
    good = _config(tree, base.id, [4.0, 4.2, 3.8])
    assert best_config(tree, tree.nodes).original.id == good.id  # type: ignore[union-attr]
    lucky = _add(tree, base.id, 4.1)
    top = best_config(tree, tree.nodes)
    assert top is not None and top.original.id == good.id
    assert unconfirmed(tree, tree.nodes, top) == lucky
    text = top.r2_text()
    assert re.fullmatch(r"0\.9\d+ ± 0\.0\d+ \(3 seeds: nodes 2, 3, 4\)", text), text
    only = Tree()
    single = _baseline(only, [3.0])
    top = best_config(only, only.nodes)
    assert top is not None and top.original == single
    assert top.r2_text() == "0.999000 (1 seed, not re-run)"


# ----------------------------------------------------------------------------- in a block


def test_a_block_judges_once_and_shows_the_same_word_everywhere(tmp_path: Path) -> None:
    """A rule block of 8 trials (results drawn, no training): the last batch re-runs the
    best config twice; verdicts appear only at the block's end, one per node, and the
    analysis entry, the tree and memory.md agree; the summary gives mean ± SD."""
    from inr_tune.config_files import load_config
    from inr_tune.journal import read_events
    from inr_tune.reports.analysis import render_analysis
    from inr_tune.reports.memory import render_memory
    from inr_tune.search.session import FINISHED
    from tests.helpers import rule_session

    root = load_config(None, ["data.n_frames=24", "search.min_ratio=1"])
    session = rule_session(tmp_path, root, n_iter=8, parallel=4)
    rng = random.Random(3)
    batches: list[list[Node]] = []
    while True:
        batch = []
        while isinstance(node := session.next_trial(), Node):
            batch.append(node)
        if not batch:
            break
        batches.append(batch)
        for n in batch:
            r2 = _r2(3.0 + rng.gauss(0, 0.05))
            session.complete(n.id, "ok", {"final_r2": r2, "holdout_r2": r2}, None)
    assert session.next_trial() == FINISHED and [len(b) for b in batches] == [4, 2, 2]
    reruns = [n for n in batches[2] if n.strategy == "robustness-test"]
    assert len(reruns) == 2 and len({n.parent for n in reruns}) == 1
    tree = session.tree
    assert all(n.verdict is None for n in tree.nodes), "no verdict before the block ends"
    session.finish()
    events = read_events(tmp_path / "journal.jsonl")
    judged = [e["node_id"] for e in events if e["event"] == "node_noted" and "verdict" in e]
    assert sorted(judged) == [n.id for n in tree.nodes], "exactly one verdict per node"
    analysis = render_analysis(events, tree, {"good": 0.9}, "t")
    shown = re.findall(r"## Iter (\d+).*?\nVerdict: (\w+)", analysis, flags=re.S)
    assert len(shown) == 8
    assert all(tree[int(i)].verdict == w for i, w in shown)
    for n in tree.nodes:
        assert not re.search(r"supported|falsified|inconclusive", n.observation or "")
    end = next(e for e in events if e["event"] == "block_end")
    assert re.search(r"best config node \d+ \(R² 0\.99\d+ ± 0\.0\d+ \([34] seeds", end["summary"])
    memory = render_memory(events, tree, {"good": 0.9}, "t")
    assert re.search(r"\| 0\.99\d+ ± 0\.0\d+ \([34] seeds\) \|", memory), memory
