"""ucb_scores.txt keeps the last block's scores once the run has ended (empty only at a
block's start), written by the block runner's Reports."""

from __future__ import annotations

import json
from pathlib import Path

from inr_tune.config_files import load_config
from inr_tune.journal import Journal
from inr_tune.reports.run_dir import Reports
from inr_tune.runner.searcher import UCBTreeSearcher
from inr_tune.search.tree import format_ucb_scores
from tests.helpers import rule_session

TINY = ["data.n_frames=24", "training.total_steps=48", "model.hidden_dim=16", "model.n_layers=1"]


def test_scores_survive_the_end_of_the_run(tmp_path: Path) -> None:
    root = load_config(None, [*TINY, "search.min_ratio=1"])
    Journal(tmp_path / "journal.jsonl").append(
        "block_start", block=1, field="F", n_frames=24, root_config=root.to_dict(), ucb_c=1.414
    )
    session = rule_session(tmp_path, root, n_iter=4, parallel=2)
    ctx = session.ctx
    reports = Reports(tmp_path, "t")
    reports.write(ctx, 1, 1.414)
    assert (tmp_path / "ucb_scores.txt").read_text() == "", "empty at a block's start"
    searcher = UCBTreeSearcher(session, lambda node: {"node_id": node.id, "cfg": node.config})
    for r2 in (0.9, 0.95, 0.97, 0.99):  # batches of 2: the searcher waits between them
        trial = f"t{r2}"
        if searcher.suggest(trial) is None:
            raise AssertionError("the searcher should have a free slot")
        searcher.on_trial_complete(
            trial, {"metrics_json": json.dumps({"status": "ok", "final_r2": r2})}
        )
    assert session.done
    review = session.finish()
    reports.write(ctx, 1, 1.414, tree_png=False)  # the block's end
    expected = format_ucb_scores(ctx.tree.ucb_scores(1, 1.414, ctx.reward))
    assert expected.count("\n") == 4 and expected.startswith("Node ")
    assert (tmp_path / "ucb_scores.txt").read_text() == expected
    # the run's end (block None, the next block's ucb_c): still the last block's scores
    reports.write(ctx, None, review.next_ucb_c + 1.0)
    assert (tmp_path / "ucb_scores.txt").read_text() == expected
    # a new block starts: its scores, empty until a trial of it finishes
    ctx.log("block_start", block=2, field="F", n_frames=48, root_config={}, ucb_c=1.0)
    reports.write(ctx, 2, 1.0)
    assert (tmp_path / "ucb_scores.txt").read_text() == ""
