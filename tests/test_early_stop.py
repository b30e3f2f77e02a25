"""Trials a scheduler (ASHA) stops early: what they report and how their node is scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inr_tune import metrics as M
from inr_tune.config import load_config
from inr_tune.runner.searcher import result_to_outcome
from inr_tune.search.tree import Tree
from tests.helpers import write_synthetic_mpm

TINY = [
    "data.n_frames=40",
    "model.hidden_dim=16",
    "model.n_layers=1",
    "training.total_steps=96",
    "training.eval_every=32",
    "training.device=cpu",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=30)


def _module(dataset: Path, *sets: str) -> Any:
    from inr_tune.data.store import open_dataset
    from inr_tune.training.module import INRModule

    cfg = load_config(None, [*TINY, f"data.path={dataset}", *sets])
    w = open_dataset(dataset).window("F", cfg.data.n_frames)
    return INRModule(cfg, w.values, w.positions, 1.0)


def test_periodic_evaluation_scores_all_held_out_frames(dataset: Path) -> None:
    """holdout_r2 of a periodic evaluation is over exactly the held-out frames (all of
    them, also those the ≤ max_frames sample misses), the frames a finished node is
    scored on; final_r2 stays on the sample."""
    from inr_tune.training.callbacks import MetricsEvaluator

    module = _module(dataset)
    held = module.holdout_idx
    assert held.tolist() == [5, 15, 25, 35]
    row = MetricsEvaluator(10, max_frames=4).quick_eval(module)  # sample: 0, 13, 26, 39
    assert row["holdout_r2"] == pytest.approx(
        M.final_r2(module.predict(held), module.target(held)), rel=1e-6
    )
    sample = module.holdout_idx.new_tensor([0, 13, 26, 39])
    assert row["final_r2"] == pytest.approx(
        M.final_r2(module.predict(sample), module.target(sample)), rel=1e-6
    )
    none = MetricsEvaluator(10).quick_eval(_module(dataset, "data.holdout=0"))
    assert none["holdout_r2"] is None and np.isfinite(none["final_r2"])


def test_early_stopped_node_is_scored_on_the_held_out_frames() -> None:
    last = {
        "final_r2": 0.91,
        "holdout_r2": 0.87,
        "score": 0.87,
        "loss": 0.02,
        "step": 320,
        "total_params": 600,
        "compression_ratio": 16.0,
    }
    status, metrics, error = result_to_outcome(last, error=False)
    assert status == "early_stopped" and error is None
    assert metrics["holdout_r2"] == 0.87 and metrics["partial"] is True
    assert metrics["steps_done"] == 320 and metrics["compression_ratio"] == 16.0
    assert "same held-out frames" in metrics["partial_reason"]
    tree = Tree()
    node = tree.add(None, {}, {}, "baseline", "h", 1)
    tree.complete(node.id, status, metrics)
    assert node.r2 == 0.87  # the held-out R², like every finished node


def test_early_stopped_without_held_out_frames_is_marked_partial() -> None:
    status, metrics, _ = result_to_outcome({"final_r2": 0.9, "step": 64}, error=False)
    assert status == "early_stopped" and metrics["partial"] is True
    assert metrics["holdout_r2"] is None
    assert "no frames out" in metrics["partial_reason"] and "64" in metrics["partial_reason"]
    # a NaN held-out R² is not rescued by a finite sample R²
    status, _, error = result_to_outcome(
        {"final_r2": 0.5, "holdout_r2": float("nan"), "step": 64}, error=False
    )
    assert status == "failed" and "finite" in error


def test_trainable_reports_held_out_r2_and_leaves_the_end_to_the_final_report(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intermediate reports carry holdout_r2 (the score ASHA's early-stopped nodes keep),
    the size, and never the run's last step; the final report carries everything."""
    from ray import tune

    from inr_tune.runner.trainable import train_node
    from inr_tune.runner import trainable

    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(tune, "report", lambda values, **kw: reports.append(values))
    monkeypatch.setattr(trainable, "_placement", lambda: (None, None))  # no Ray started
    cfg = load_config(None, [*TINY, f"data.path={dataset}"])
    train_node(
        {"cfg": cfg.to_dict(), "out_dir": str(tmp_path), "dataset": str(dataset), "node_id": 1}
    )
    *rows, final = reports
    assert [r["step"] for r in rows] == [32, 64]  # not 96: the final report's
    for r in rows:
        assert np.isfinite(r["holdout_r2"]) and r["score"] == r["holdout_r2"]
        assert r["compression_ratio"] == pytest.approx(40 * 30 * 4 / r["total_params"])
    metrics = json.loads(final["metrics_json"])
    assert metrics["status"] == "ok", metrics.get("error")
    assert final["step"] == 96 and final["holdout_r2"] == metrics["holdout_r2"]
    assert final["score"] == metrics["holdout_r2"] and metrics["holdout_frames"] == 4
    status, node_metrics, _ = result_to_outcome(rows[-1], error=False)  # if stopped there
    assert status == "early_stopped" and node_metrics["holdout_r2"] == rows[-1]["holdout_r2"]
