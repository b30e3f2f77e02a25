"""Trials a scheduler (ASHA) stops early: what they report and how their node is scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inr_tune import metrics as M
from inr_tune.config_files import load_config
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
    from inr_tune.training.evaluation import quick_eval

    module = _module(dataset)
    held = module.holdout_idx
    assert held.tolist() == [5, 15, 25, 35]
    row = quick_eval(module, max_frames=4)  # sample: 0, 13, 26, 39
    assert row["holdout_r2"] == pytest.approx(
        M.final_r2(module.predict(held), module.target(held)), rel=1e-6
    )
    sample = module.holdout_idx.new_tensor([0, 13, 26, 39])
    assert row["final_r2"] == pytest.approx(
        M.final_r2(module.predict(sample), module.target(sample)), rel=1e-6
    )
    none = quick_eval(_module(dataset, "data.holdout=0"))
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

    from inr_tune.runner import trainable
    from inr_tune.runner.trainable import train_node

    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(tune, "report", lambda values, **kw: reports.append(values))
    monkeypatch.setattr(trainable, "_placement", lambda: (None, None))  # no Ray started
    monkeypatch.setattr(trainable, "PROGRESS_EVERY_S", 1e6)  # evaluations' rows only
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


def _trainable_rows(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """What ``train_node`` reports for TINY (96 steps, 16 a call, evaluations at 32 and
    64), with a light progress row after every call between evaluations."""
    from ray import tune

    from inr_tune.runner import trainable

    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(tune, "report", lambda values, **kw: reports.append(values))
    monkeypatch.setattr(trainable, "_placement", lambda: (None, None))
    monkeypatch.setattr(trainable, "PROGRESS_EVERY_S", 1e-9)
    cfg = load_config(None, [*TINY, f"data.path={dataset}"])
    trainable.train_node(
        {"cfg": cfg.to_dict(), "out_dir": str(tmp_path), "dataset": str(dataset), "node_id": 1}
    )
    return reports


def test_progress_rows_carry_what_a_live_display_needs(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    *rows, final = _trainable_rows(dataset, tmp_path, monkeypatch)
    assert [r["steps_done"] for r in rows] == [16, 32, 48, 64, 80]
    assert [r["step"] for r in rows] == [0, 32, 32, 64, 64]  # the latest evaluation's
    for r in rows:
        assert {"score", "final_r2", "loss", "elapsed_s", "eta_s", "compression_ratio"} <= set(r)
        assert r["total_steps"] == 96 and r["elapsed_s"] > 0
        rate = r["steps_done"] / r["elapsed_s"]
        assert r["eta_s"] == pytest.approx((96 - r["steps_done"]) / rate, rel=1e-6)
    assert np.isnan(rows[0]["score"]) and np.isnan(rows[0]["final_r2"])  # none evaluated yet
    assert rows[2]["score"] == rows[1]["score"] and rows[4]["score"] == rows[3]["score"]
    assert "holdout_r2" in rows[1] and "holdout_r2" not in rows[2]  # light rows are lean
    assert [r["elapsed_s"] for r in rows] == sorted(r["elapsed_s"] for r in rows)
    assert final["steps_done"] == final["step"] == final["total_steps"] == 96
    assert final["eta_s"] == 0.0 and final["elapsed_s"] > rows[-1]["elapsed_s"]
    # with a report, a snapshot at the first evaluation (a stop later keeps its panel)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("field_panel")] == [32, 96]


def test_light_rows_do_not_change_ashas_decisions(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASHA keyed on (step, score): a light row repeats the last evaluation's pair, so a
    trial's rung records are the same with or without them (and a row before the first
    evaluation, step 0, reaches no rung)."""
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler

    *rows, _ = _trainable_rows(dataset, tmp_path, monkeypatch)

    def rungs(feed: list[dict[str, Any]]) -> list[tuple[int, dict[str, float]]]:
        asha = ASHAScheduler(
            time_attr="step",
            metric="score",
            mode="max",
            max_t=960,
            grace_period=32,
            reduction_factor=2,
        )  # as runner/tuner.py sets it: rungs at 32, 64, 128, …
        first, other = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
        for trial in (first, other):
            asha.on_trial_add(None, trial)
        # a rival that reached every rung first with a higher score: this trial is cut
        assert asha.on_trial_result(None, first, {"step": 64, "score": 2.0}) == "CONTINUE"
        assert asha.on_trial_result(None, first, {"step": 32, "score": 2.0}) == "CONTINUE"
        decisions = [asha.on_trial_result(None, other, r) for r in feed]
        bracket = asha._trial_info["b"]
        return decisions, [(m, dict(rec)) for m, rec in bracket._rungs]

    evals = [r for r in rows if r["step"] == r["steps_done"]]
    with_light, only_evals = rungs(rows), rungs(evals)
    assert with_light[1] == only_evals[1]
    assert with_light[0] == ["CONTINUE", "STOP", "CONTINUE", "STOP", "CONTINUE"]


def _hparams_status(tb_dir: Path) -> str | None:
    """The ``status`` hyper-parameter of the HParams session in the TensorBoard run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams").get("_hparams_/session_start_info")
    if content is None:
        return None
    start = HParamsPluginData.FromString(content).session_start_info
    return start.hparams["status"].string_value


class _Sequence:
    """A stand-in for the block session: hands out ``nodes`` one at a time."""

    def __init__(self, nodes: list[Any]) -> None:
        self.nodes, self.done, self.running = list(nodes), {}, False

    def next_trial(self) -> Any:
        from inr_tune.search.session import FINISHED

        if self.running:
            return None
        if not self.nodes:
            return FINISHED
        self.running = True
        return self.nodes.pop(0)

    def complete(self, node_id: int, status: str, metrics: dict, error: str | None) -> Any:
        self.running = False
        self.done[node_id] = (status, metrics, error)
        return None


@pytest.mark.slow
def test_asha_stopped_trial_is_written_like_any_other(dataset: Path, tmp_path: Path) -> None:
    """Real Ray + ASHA, two trials in turn: the first (a fit) runs to its end; the second
    (lr 1e-7: learns nothing) is stopped at the first rung. Both trial directories have
    metrics.json and an HParams row with their status; the stopped one keeps the field
    panel of its evaluation."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from inr_tune.runner.searcher import UCBTreeSearcher
    from inr_tune.runner.trainable import train_node

    tree = Tree()
    nodes = []
    for lr in ("2e-3", "1e-7"):  # nodes 1 and 2
        cfg = load_config(None, [*TINY, f"data.path={dataset}", f"training.lr={lr}"])
        nodes.append(tree.add(None, cfg.to_dict(), {}, "baseline", "h", 1))
    session = _Sequence(nodes)

    def trial_config(node: Any) -> dict[str, Any]:
        return {
            "node_id": node.id,
            "block": 1,
            "cfg": node.config,
            "out_dir": str(tmp_path / f"iter_{node.id:03d}"),
            "dataset": str(dataset),
            "threads": 1,
            "tb_name": f"b1_iter_{node.id:03d}",
        }

    searcher = UCBTreeSearcher(session, trial_config)  # type: ignore[arg-type]
    asha = ASHAScheduler(
        time_attr="step", metric="score", mode="max", max_t=960, grace_period=32, reduction_factor=2
    )
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tune.Tuner(
            tune.with_resources(train_node, {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=asha, num_samples=-1, max_concurrent_trials=1
            ),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert {k: v[0] for k, v in session.done.items()} == {1: "ok", 2: "early_stopped"}
    for node_id, status in ((1, "ok"), (2, "early_stopped")):
        trial = tmp_path / f"iter_{node_id:03d}"
        saved = json.loads((trial / "metrics.json").read_text())
        assert saved["status"] == status and (trial / "field.png").is_file()
        assert _hparams_status(trial / f"b1_iter_{node_id:03d}") == status
    stopped = json.loads((tmp_path / "iter_002" / "metrics.json").read_text())
    assert stopped["steps_done"] == 32 and stopped["partial"] is True
    assert stopped["holdout_r2"] == session.done[2][1]["holdout_r2"]


def test_trial_results_read_back_and_unfinished_trials_get_their_files(tmp_path: Path) -> None:
    """The final report's metrics_json is a TrialResult's layout (junk is a failed node,
    not a crash of the driver); a trial that could not write its files (stopped by ASHA,
    died) gets metrics.json and its HParams row from the driver."""
    from inr_tune.runner.trainable import record_unfinished_trial
    from inr_tune.training.result import TrialResult

    result = TrialResult("diverged", "loss became nan", {"final_r2": 0.1}, steps_done=7)
    status, metrics, error = result_to_outcome({"metrics_json": result.to_json()}, False)
    assert (status, error) == ("diverged", "loss became nan") and metrics == result.to_dict()
    for junk in ('{"status": "done"}', "not json"):
        status, _, error = result_to_outcome({"metrics_json": junk}, False)
        assert status == "failed" and "could not be read" in error
    row = {"step": 32, "final_r2": 0.8, "holdout_r2": 0.7, "score": 0.7, "steps_done": 32}
    status, metrics, error = result_to_outcome(row, error=False)
    cfg = load_config(None, TINY)
    config = {
        "cfg": cfg.to_dict(),
        "node_id": 3,
        "out_dir": str(tmp_path),
        "tb_name": "b1_iter_003",
    }
    record_unfinished_trial(config, status, metrics, error)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "early_stopped" and saved["steps_done"] == 32
    assert saved["holdout_r2"] == 0.7 and saved["partial"] is True
    assert _hparams_status(tmp_path / "b1_iter_003") == "early_stopped"


def test_periodic_eval_snapshots_within_their_share_and_rows_on_time() -> None:
    """A fake clock: calls of 16 steps take 1 s, a snapshot 2 s. Snapshots: at the first
    evaluation, then only while all of them stay ≤ 5 % of the time so far; light rows
    every 5 s between evaluations; nothing reported at the run's end."""
    from types import SimpleNamespace

    from inr_tune.training.callbacks import PeriodicEval

    now = [0.0]
    rows: list[dict[str, Any]] = []
    snaps: list[int] = []

    def snapshot(module: Any) -> None:
        snaps.append(module.step)
        now[0] += 2.0

    class Fixed(PeriodicEval):
        def quick_eval(self, module: Any) -> dict[str, float | None]:
            return {"final_r2": 0.5, "holdout_r2": 0.4}

    ev = Fixed(
        160, report=rows.append, snapshot=snapshot, progress_every_s=5.0, clock=lambda: now[0]
    )
    module = SimpleNamespace(step=0, planned_steps=1600, diverged=None, losses=[])
    trainer = SimpleNamespace(logger=None)
    ev.on_train_start(trainer, module)  # type: ignore[arg-type]
    while module.step < module.planned_steps:
        now[0] += 1.0
        module.step += 16
        module.losses.append((module.step, 0.1))
        ev.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    assert [r["step"] for r in rows if r["steps_done"] == r["step"]] == list(range(160, 1600, 160))
    assert snaps[0] == 160 and len(snaps) < 10
    for i, s in enumerate(snaps[1:], start=1):  # each later one within the 5 % share
        assert 2.0 * i <= 0.05 * (s / 16 + 2.0 * i)
    light = [r for r in rows if r["steps_done"] != r["step"]]
    assert light and all(r["score"] == 0.4 or r["step"] == 0 for r in light)
    assert max(r["steps_done"] for r in rows) < 1600  # the end is the final report's
    ev.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert ev.training_time == pytest.approx(100.0)  # 100 calls; snapshots excluded


def test_without_snapshots_a_trial_reports_the_same_rows_and_draws_one_panel(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``snapshots: false`` (no scheduler can stop the trial): the same evaluation rows,
    no full evaluation or panel before the end, the same final metrics; wall_time counts
    from the trainable's start and overhead_s splits what is not training."""
    from ray import tune
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from inr_tune.runner import trainable

    monkeypatch.setattr(trainable, "_placement", lambda: (None, None))
    monkeypatch.setattr(trainable, "PROGRESS_EVERY_S", 1e6)  # evaluations' rows only
    cfg = load_config(None, [*TINY, f"data.path={dataset}"])
    finals = {}
    for snapshots in (True, False):
        reports: list[dict[str, Any]] = []
        monkeypatch.setattr(tune, "report", lambda values, r=reports, **kw: r.append(values))
        out = tmp_path / str(snapshots)
        trainable.train_node(
            {
                "cfg": cfg.to_dict(),
                "out_dir": str(out),
                "dataset": str(dataset),
                "node_id": 1,
                "snapshots": snapshots,
            }
        )
        *rows, final = reports
        assert [r["step"] for r in rows] == [32, 64]
        acc = EventAccumulator(str(out / "tb"), size_guidance={"images": 0})
        acc.Reload()
        panels = [e.step for e in acc.Images("field_panel")]
        assert panels == ([32, 96] if snapshots else [96])
        metrics = json.loads(final["metrics_json"])
        overhead = metrics["overhead_s"]
        assert {"dataset_check", "data", "imports", "build", "final_evaluation", "plot"} <= set(
            overhead
        )
        assert (overhead.get("snapshots", 0) > 0) == snapshots
        rest = metrics["wall_time"] - metrics["training_time"]
        assert sum(overhead.values()) == pytest.approx(rest, abs=0.05)
        finals[snapshots] = {k: metrics[k] for k in ("final_r2", "holdout_r2", "kinograph_SSIM")}
    assert finals[True] == finals[False]  # snapshots change no result


def test_dataset_check_reuses_an_unchanged_datasets_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainable's content-hash check reads a dataset once per machine: later trials
    reuse the hash while every file is unchanged; a rewritten file is hashed again."""
    from inr_tune.data.store import open_dataset
    from inr_tune.errors import DataError
    from inr_tune.runner.trainable import ensure_dataset

    monkeypatch.setenv("INR_TUNE_DATA", str(tmp_path / "cache" / "datasets"))
    path = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=12, n_points=10)
    digest = open_dataset(path).content_hash()
    calls = []
    plain = type(open_dataset(path)).content_hash
    monkeypatch.setattr(
        type(open_dataset(path)), "content_hash", lambda self: calls.append(1) or plain(self)
    )
    for _ in range(3):
        assert ensure_dataset(str(path), digest, "mpm") == str(path)
    assert len(calls) == 1  # hashed by the first check only
    write_synthetic_mpm(path, n_frames=12, n_points=10, seed=1)  # other data, same path
    with pytest.raises(DataError, match="differs from the driver's"):
        ensure_dataset(str(path), digest, "mpm")
