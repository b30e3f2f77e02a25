"""Fast checks of benchmarks/search_efficiency.py's pure functions on hand-made tables
(no search runs: the benchmark itself is run by hand, see README "Benchmarks"), and a tiny
run of benchmarks/searcher_synthetic.py (synthetic results, no training)."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency.py"


@pytest.fixture(scope="module")
def se():
    spec = importlib.util.spec_from_file_location("search_efficiency", _PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["search_efficiency"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_objective_trace_counts_ok_and_early_stopped_in_node_order(se):
    df = pd.DataFrame(
        {
            "node": [3, 1, 2, 4, 5],
            "status": ["ok", "ok", "failed", "early_stopped", "diverged"],
            "holdout_r2": [0.9, 0.5, 0.99, 0.7, 0.999],
        }
    )
    tr = se.objective_trace(df)
    assert tr[0] == 0.5 and math.isnan(tr[1]) and tr[2] == 0.9 and tr[3] == 0.7
    assert math.isnan(tr[4])  # a diverged trial reaches nothing


def test_best_so_far_best_at_and_trials_to_target(se):
    tr = [math.nan, 0.3, 0.2, 0.8, math.nan, 0.9]
    bsf = se.best_so_far(tr)
    assert math.isnan(bsf[0])
    assert list(bsf[1:]) == [0.3, 0.3, 0.8, 0.8, 0.9]
    padded = se.best_so_far(tr, 8)  # a run that stopped early keeps its best
    assert len(padded) == 8 and padded[-1] == 0.9
    assert len(se.best_so_far(tr, 3)) == 3
    assert se.best_at(tr, 3) == 0.3 and math.isnan(se.best_at(tr, 1))
    assert se.trials_to_target(tr, 0.8) == 4
    assert se.trials_to_target(tr, 0.95) is None


def test_summarise_medians_iqr_target_and_table(se):
    runs = (
        [
            {"task": "T", "searcher": "ucb", "seed": s, "trace": np.array(t)}
            for s, t in enumerate(
                [[0.1, 0.5, 0.9, 0.9], [0.2, 0.6, 0.6, 0.95], [0.3, 0.3, 0.3, 0.3]]
            )
        ]
        + [
            {"task": "T", "searcher": "random", "seed": s, "trace": np.array(t)}
            for s, t in enumerate(
                [[0.4, 0.4, 0.4, 0.4], [0.1, 0.2, 0.3, 0.8], [0.5, 0.5, 0.5, 0.5]]
            )
        ]
        + [{"task": "T", "searcher": "tpe", "seed": 0, "trace": None, "note": "skipped"}]
    )
    targets, rows = se.summarise(runs, [2, 4])
    # best after 4: ucb 0.9, 0.95, 0.3; random 0.4, 0.8, 0.5 → median of all six = 0.65
    assert targets["T"] == pytest.approx(0.65)
    ucb = next(r for r in rows if r["searcher"] == "ucb")
    assert ucb["n"] == 3 and ucb["best@4"][0] == pytest.approx(0.9)
    assert ucb["best@2"] == pytest.approx((0.5, 0.4, 0.55))
    assert ucb["reached"] == 2 and ucb["to_target"] == 4  # 3, 4, never → median 4
    rnd = next(r for r in rows if r["searcher"] == "random")
    assert rnd["reached"] == 1 and math.isinf(rnd["to_target"])
    assert not any(r["searcher"] == "tpe" for r in rows)  # no trace: left out
    md = se.markdown(runs, [2, 4], header={"Machine": "test"})
    assert "| T | ucb | 3 |" in md and "tpe seed 0: skipped" in md
    assert "UCB > random" in md
    csv = se.csv_rows(runs)
    assert csv.splitlines()[0].startswith("task,searcher")
    assert len(csv.splitlines()) == 1 + len(runs)


def test_csv_round_trip(se, tmp_path):
    runs = [
        {"task": "T", "searcher": "ucb", "seed": 0, "trace": np.array([0.1, math.nan, 0.7]),
         "trials": 3, "ok_trials": 2, "block_wall_s": 12.5, "trial_wall_s": 4.0},
        {"task": "T", "searcher": "tpe", "seed": 0, "trace": None, "note": "skipped"},
    ]  # fmt: skip
    path = tmp_path / "r.csv"
    path.write_text(se.csv_rows(runs))
    back = se.read_csv_runs(path)
    assert back[0]["seed"] == 0 and back[0]["block_wall_s"] == 12.5
    assert back[0]["trace"][2] == 0.7 and math.isnan(back[0]["trace"][1])
    assert back[1]["trace"] is None and back[1]["note"] == "skipped"
    assert se.summarise(back, [3])[1][0]["best@3"][0] == 0.7


def test_searcher_synthetic_runs_real_blocks_and_reports(tmp_path, capsys):
    """benchmarks/searcher_synthetic.py drives the real block session for each searcher on
    a synthetic landscape (seconds, no training) and writes its table."""
    path = _PATH.parent / "searcher_synthetic.py"
    spec = importlib.util.spec_from_file_location("searcher_synthetic", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "synthetic.md"
    argv = ["--landscapes", "1", "--seeds", "1", "--trials", "6", "--searchers", "ucb,greedy"]
    assert mod.main([*argv, "--out", str(out)]) == 0
    text = out.read_text()
    assert "| flyvis | ucb |" in text and "| mpm | greedy |" in text
    args = mod.argparse.Namespace(trials=6, parallel=2, ucb_c=1.414)
    trace = mod.run_block("flyvis", mod.make_proposer("ucb", 0), 0, args)
    assert len(trace) == 6 and all(b >= a for a, b in itertools.pairwise(trace))
    assert trace == mod.run_block("flyvis", mod.make_proposer("ucb", 0), 0, args), "seeded"
    assert mod.main(["--searchers", "annealing"]) == 2
    capsys.readouterr()


def test_no_run_reads_finished_runs_only(se, tmp_path, capsys):
    """--no-run: nothing trains; a missing run is a 'not run' row; no --runs is an error."""
    assert se.main(["--no-run"]) == 2
    out = tmp_path / "res"
    argv = ["--no-run", "--runs", str(tmp_path), "--results", str(out), "--seeds", "1"]
    assert se.main([*argv, "--tasks", "stimulus@100", "--searchers", "ucb"]) == 0
    assert "not run (--no-run)" in capsys.readouterr().out
    assert (out / "search_efficiency.md").is_file()
