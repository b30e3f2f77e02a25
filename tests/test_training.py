"""One trial end to end: results on disk, TensorBoard events, divergence, budget, checkpoint."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inr_tune.config_files import load_config
from inr_tune.training.fit import run_trial
from inr_tune.training.result import TrialResult
from inr_tune.training.schedules import lr_factor
from tests.helpers import write_synthetic_mpm

TINY = [
    "data.n_frames=24",
    "model.hidden_dim=32",
    "model.n_layers=2",
    "model.omega=10",
    "training.lr=2e-3",
    "training.total_steps=320",
    "training.eval_every=100",
    "training.log_every=16",
    "training.device=cpu",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=60)


@pytest.fixture(scope="module")
def trial(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrialResult]:
    out = tmp_path_factory.mktemp("trial")
    cfg = load_config(None, [*TINY, f"data.path={dataset}", "model.t_period=2.0"])
    return out, run_trial(cfg, out)


def test_trial_writes_results(trial: tuple[Path, TrialResult]) -> None:
    out, m = trial
    assert m["status"] == "ok" and m["error"] is None
    for name in ("metrics.json", "field.png", "checkpoint.ckpt", "config.yaml"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    for key in (
        "final_mse",
        "final_r2",
        "r2_components",
        "pearson_r2",
        "slope",
        "kinograph_R2",
        "kinograph_SSIM",
        "total_params",
        "compression_ratio",
        "training_time",
        "wall_time",
        "holdout_r2",
        "train_r2",
        "psnr",
        "max_abs_error",
        "bits_per_value",
    ):
        assert key in saved, key
    assert saved["holdout_frames"] == 2  # frames 5 and 15 of 24 (data.holdout=10)
    assert saved["bits_per_value"] == pytest.approx(32 / saved["compression_ratio"])
    assert len(saved["max_abs_error"]) == 4 and saved["psnr"] > 0
    assert saved["final_r2"] > 0.5, saved["final_r2"]
    assert saved["steps_done"] == 320 and not saved["budget_cut"]
    assert saved["compression_ratio"] == pytest.approx(24 * 60 * 4 / saved["total_params"])
    assert 0 < saved["training_time"] < saved["wall_time"]
    # the rest of the wall time, by phase (no report: no snapshots)
    overhead = saved["overhead_s"]
    assert {"data", "imports", "build", "fit_setup", "evaluations", "final_evaluation"} <= set(
        overhead
    )
    assert {"plot", "checkpoint", "finish", "other"} <= set(overhead) and overhead["snapshots"] == 0
    assert sum(overhead.values()) == pytest.approx(
        saved["wall_time"] - saved["training_time"], abs=0.05
    )
    # quick evaluations at the first steps past 100, 200 and 300 (16 steps a call), then
    # the final evaluation's row at the end, from the metrics above
    history = saved["history"]
    assert [row["step"] for row in history] == [112, 208, 304, 320]
    assert history[-1]["final_r2"] == saved["final_r2"]
    assert history[-1]["holdout_r2"] == saved["holdout_r2"]
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "field.png")
    assert img.shape[0] > 400 and img.shape[1] > 800


def test_tensorboard_events_read_back(trial: tuple[Path, TrialResult]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = trial
    tags: dict[str, list[str]] = {"scalars": [], "images": []}
    plugins: set[str] = set()
    for events in (out / "tb").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for k in tags:
            tags[k] += acc.Tags()[k]
        with contextlib.suppress(KeyError):  # files without an hparams summary
            plugins |= set(acc.PluginTagToContent("hparams"))
        if "train/loss" in acc.Tags()["scalars"]:
            losses = [e.value for e in acc.Scalars("train/loss")]
            assert len(losses) >= 10 and losses[-1] < losses[0]
    assert {"train/loss", "train/lr", "eval/final_r2", "eval/kinograph_R2", "hp/final_r2"} <= set(
        tags["scalars"]
    )
    assert "field_panel" in tags["images"]
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= plugins
    acc = EventAccumulator(str(out / "tb"), size_guidance={"images": 0})
    acc.Reload()
    # the end's panel only: without a report nothing stops the trial, so no snapshots
    assert [e.step for e in acc.Images("field_panel")] == [320]
    assert _hparams(out / "tb")["status"] == "ok"


def _hparams(tb: Path) -> dict[str, object]:
    """The hyper-parameters of the HParams session of the TensorBoard run ``tb``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    acc = EventAccumulator(str(tb))
    acc.Reload()
    start = HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}


def test_trial_result_is_serialised_once(trial: tuple[Path, TrialResult]) -> None:
    """metrics.json is the result's one JSON layout, and reads back to the same result."""
    out, m = trial
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == m.to_dict() and TrialResult.from_dict(saved).to_dict() == saved
    assert TrialResult.from_json(m.to_json()) == TrialResult.from_dict(saved)
    assert m.status == saved["status"] == "ok" and m["final_r2"] == saved["final_r2"]
    assert m.score == saved["holdout_r2"] and "history" not in m.to_dict(history=False)
    flat = TrialResult("failed", "boom", {"final_r2": float("nan")}).to_dict()
    assert flat["final_r2"] is None and json.dumps(flat, allow_nan=False)
    with pytest.raises(ValueError, match="status 'done' unknown"):
        TrialResult("done")


def test_checkpoint_restores_prediction_with_periods(
    trial: tuple[Path, TrialResult], dataset: Path
) -> None:
    """A model trained with t_period=2 evaluates to the same MSE after reloading: one encoding."""
    from inr_tune import metrics as M
    from inr_tune.data.store import open_dataset
    from inr_tune.training.module import INRModule

    out, m = trial
    ckpt = torch.load(out / "checkpoint.ckpt", map_location="cpu", weights_only=False)
    cfg = load_config(out / "config.yaml")
    assert cfg.model.t_period == 2.0
    w = open_dataset(dataset).window("F", cfg.data.n_frames)
    module = INRModule(cfg, w.values, w.positions, 1.0)
    module.load_state_dict(ckpt["state_dict"])
    pred = module.predict()
    assert M.final_mse(pred, w.values) == pytest.approx(m["final_mse"], rel=1e-5)
    assert M.final_r2(pred, w.values) == pytest.approx(m["final_r2"], rel=1e-6)


def test_diverging_config_is_recorded_not_raised(dataset: Path, tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            "training.optimizer=sgd",
            "training.lr=1.0",
            "training.grad_clip=null",
            "model.hidden_dim=256",
            "training.schedule=constant",
        ],
    )
    m = run_trial(cfg, tmp_path)
    assert m["status"] == "diverged"
    assert ("loss became" in m["error"]) or ("loss exploded" in m["error"]) or ("NaN" in m["error"])
    assert m["steps_done"] < 320
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"
    assert _hparams(tmp_path / "tb")["status"] == "diverged"
    assert not (tmp_path / "field.png").exists()  # no panel of a result it does not show


def test_loss_that_ends_far_above_its_start_is_diverged(dataset: Path, tmp_path: Path) -> None:
    """Issue 11: siren_txy at lr 1.0 (the space's largest) drives the standardised loss
    from ≈ 1 to hundreds with finite values; it used to end as ``ok`` with R² ≪ 0."""
    cfg = load_config(
        None, [*TINY, f"data.path={dataset}", "training.lr=1.0", "training.total_steps=48"]
    )
    m = run_trial(cfg, tmp_path)
    assert m["status"] == "diverged", m
    assert m["error"].startswith("loss ended at") and "× its start" in m["error"], m["error"]
    assert m["steps_done"] == 48  # ran to its end: only the end check catches it
    assert json.loads((tmp_path / "metrics.json").read_text())["error"] == m["error"]


def test_loss_divergence_rule() -> None:
    from inr_tune.training.callbacks import loss_divergence

    def run(*losses: float) -> list[tuple[int, float]]:
        return [(16 * (i + 1), v) for i, v in enumerate(losses)]

    assert loss_divergence(1.0, run(0.5, 0.1, 0.01, 0.01, 0.01)) is None  # a fit
    assert loss_divergence(1.0, run(1.0, 2.0, 5.0, 8.0, 9.0)) is None  # bad, not 10×
    why = loss_divergence(1.0, run(5.0, 200.0, 900.0, 1200.0, 1170.0, 1165.0, 1180.0))
    assert why == "loss ended at 1.17e+03, 1170× its start 1"
    # one spike in the last calls does not decide: the median of the last five does
    assert loss_divergence(1.0, run(0.5, 0.01, 0.01, 500.0, 0.01, 0.01)) is None
    # a start near zero: the end must still be worse than predicting the mean (> 1)
    assert loss_divergence(1e-3, run(0.1, 0.5, 0.5)) is None
    assert loss_divergence(1e-3, run(0.1, 5.0, 5.0)) == "loss ended at 5, 5000× its start 0.001"
    assert loss_divergence(None, run(1.0)) is None


def test_training_r2_far_below_zero_is_diverged(dataset: Path) -> None:
    """A final R² < −1 on the trained frames (worse than predicting the mean by more than
    the data's variance) is a divergence even when the loss did not climb 10×."""
    from inr_tune.data.store import open_dataset
    from inr_tune.training.evaluation import evaluate
    from inr_tune.training.module import INRModule

    cfg = load_config(None, [*TINY, f"data.path={dataset}"])
    w = open_dataset(dataset).window("F", 24)
    module = INRModule(cfg, w.values, w.positions, 1.0)
    spread = w.values.std(axis=(0, 1))
    module.predict = lambda: w.values + 2.0 * spread  # type: ignore[method-assign]
    record = evaluate(module)
    assert record.diverged.startswith("R² on the trained frames ended at -")
    assert float(record.diverged.split()[7]) == pytest.approx(-3.0, abs=0.1)  # 1 − 2²
    assert record.metrics == {} and record.prediction is None
    module.predict = lambda: w.values + 0.5 * spread  # type: ignore[method-assign]
    record = evaluate(module)
    assert record.diverged is None and record.metrics["train_r2"] == pytest.approx(0.75, abs=0.03)
    assert record.prediction is not None and record.step == module.step


def test_no_cap_keeps_the_configured_schedule(trial: tuple[Path, TrialResult]) -> None:
    _, m = trial
    assert m["total_steps"] == m["steps_planned"] == m["steps_done"] == 320
    assert m["schedule_shortened"] is False and m["budget_cut"] is False
    assert m["budget_plans"] == []
    # the last optimizer step ran at the end of the cosine over the configured 320 steps
    assert m["final_lr"] == pytest.approx(2e-3 * lr_factor(319, schedule="cosine", total_steps=320))


def test_a_cap_the_schedule_fits_in_changes_nothing(
    trial: tuple[Path, TrialResult], dataset: Path, tmp_path: Path
) -> None:
    cfg = load_config(
        None, [*TINY, f"data.path={dataset}", "model.t_period=2.0", "training.max_minutes=5"]
    )
    m = run_trial(cfg, tmp_path)
    assert m["steps_planned"] == m["steps_done"] == 320 and m["budget_plans"] == []
    assert m["schedule_shortened"] is False and m["budget_cut"] is False
    assert m["final_r2"] == pytest.approx(trial[1]["final_r2"], rel=1e-6)  # same training


def test_time_cap_shortens_the_schedule_instead_of_cutting_it(
    dataset: Path, tmp_path: Path
) -> None:
    """A cap the configured 10⁷ steps cannot fit: the step rate is measured, the run is
    shortened to fit, and the cosine is re-laid to end (fully decayed) at the new end."""
    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            "training.total_steps=10000000",
            "training.max_minutes=0.05",
        ],
    )
    threads = torch.get_num_threads()
    # one thread: two OpenMP threads on two busy shared cores stall each other for whole
    # time slices (calls of 16 steps swing from 0.04 s to 1 s), which no plan can follow
    m = run_trial(cfg, tmp_path, num_threads=1)
    assert torch.get_num_threads() == threads  # the caller's setting is given back
    assert m["status"] == "ok" and np.isfinite(m["final_r2"]), m["error"]
    assert m["schedule_shortened"] is True and m["budget_cut"] is False, m["budget_plans"]
    assert 0 < m["steps_done"] == m["steps_planned"] < m["total_steps"] == 10000000
    assert m["budget_plans"] and m["budget_plans"][-1]["steps_planned"] == m["steps_planned"]
    n = m["steps_planned"]
    assert m["final_lr"] == pytest.approx(2e-3 * lr_factor(n - 1, schedule="cosine", total_steps=n))
    assert m["final_lr"] < 2e-3 * 0.011  # the floor (min_lr_ratio 0.01) reached
    assert m["training_time"] < 3.0  # inside the 3 s cap


def test_a_run_still_cut_by_the_clock_is_marked(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine stalls for a whole cap halfway through the shortened run: the Timer
    (the hard backstop) cuts it before its planned end, and the metrics say so."""
    import time

    from inr_tune.training.module import INRModule

    cap_s = 0.03 * 60
    step = INRModule.training_step

    def stalling(self: INRModule, batch: object, batch_idx: int) -> None:
        if self.planned_steps < self.cfg.training.total_steps and self.step >= (
            self.planned_steps // 2
        ):
            time.sleep(cap_s)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(INRModule, "training_step", stalling)
    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            "training.total_steps=10000000",
            "training.max_minutes=0.03",
        ],
    )
    m = run_trial(cfg, tmp_path, num_threads=1)  # see the test above
    assert m["status"] == "ok" and np.isfinite(m["final_r2"])
    assert m["schedule_shortened"] is True and m["budget_cut"] is True, {
        k: m[k] for k in ("steps_done", "steps_planned", "budget_plans", "training_time")
    }
    assert m["steps_done"] < m["steps_planned"] < m["total_steps"]


class _Stub:
    """What TimeBudget reads of a module, with ``shorten`` recorded."""

    def __init__(self, planned: int) -> None:
        self.step, self.planned_steps, self.diverged = 0, planned, None

    def shorten(self, steps: int) -> None:
        self.planned_steps = min(self.planned_steps, steps)


def test_time_budget_plans_from_the_measured_rate() -> None:
    """A fake clock: 10 ms a step, 100 steps a call, then twice as slow from 50 % of a
    60 s cap. The first plan fits 90 % of the cap; the 75 % check shortens again; the
    run ends inside the cap and its end is never moved later."""
    from types import SimpleNamespace

    from inr_tune.training.budget import TimeBudget

    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])
    module, trainer = _Stub(10**6), SimpleNamespace(should_stop=False)
    budget.on_train_start(trainer, module)  # type: ignore[arg-type]
    ends = []
    while module.step < module.planned_steps:
        n = min(100, module.planned_steps - module.step)
        now[0] += n * (0.01 if now[0] < 30 else 0.02)
        module.step += n
        budget.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
        ends.append(module.planned_steps)
    first = budget.plans[0]
    assert first["seconds_per_step"] == pytest.approx(0.01)
    # 54 s (90 % of 60) at 10 ms a step, from where the warm-up ended
    assert first["steps_planned"] == pytest.approx(5400, abs=2)
    assert len(budget.plans) == 2 and budget.plans[1]["seconds_per_step"] == pytest.approx(0.02)
    assert ends == sorted(ends, reverse=True)  # only ever shortened
    assert 50 < now[0] <= 0.9 * 60 + 0.5


def test_relay_scheduler_ends_the_schedule_at_the_new_length() -> None:
    from inr_tune.training.schedules import make_scheduler, relay_scheduler, scaled_warmup

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    kw = {"schedule": "warmup_cosine", "warmup_steps": 100, "min_ratio": 0.05}
    sched = make_scheduler(opt, total_steps=1000, **kw)
    for _ in range(10):
        opt.step()
        sched.step()
    relay_scheduler(sched, total_steps=1000, new_total=200, **kw)
    assert scaled_warmup(100, 1000, 200) == 20 and scaled_warmup(0, 1000, 200) == 0
    # applied at once: step 10 of a 20-step warmup
    assert opt.param_groups[0]["lr"] == pytest.approx(11 / 20)
    lrs = []
    for _ in range(190):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[-1] == pytest.approx(lr_factor(199, total_steps=200, **{**kw, "warmup_steps": 20}))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # fully decayed at the new end
    assert sched.get_last_lr()[0] == pytest.approx(0.05)


def test_schedules() -> None:
    assert lr_factor(0, schedule="constant", total_steps=10) == 1.0
    assert lr_factor(0, schedule="cosine", total_steps=100) == pytest.approx(1.0)
    assert lr_factor(100, schedule="cosine", total_steps=100, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(50, schedule="cosine", total_steps=100, min_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(
        0, schedule="warmup_cosine", total_steps=100, warmup_steps=10
    ) == pytest.approx(0.1)
    assert lr_factor(
        9, schedule="warmup_cosine", total_steps=100, warmup_steps=10
    ) == pytest.approx(1.0)


@pytest.mark.parametrize("inr_type", ["siren_t", "siren_id", "ngp"])
def test_other_variants_train_through_the_module(
    inr_type: str, dataset: Path, tmp_path: Path
) -> None:
    extra = (
        ["model.ngp_log2_hashmap_size=12", "model.ngp_levels=8", "training.lr=1e-2"]
        if inr_type == "ngp"
        else []
    )
    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            f"model.inr_type={inr_type}",
            "model.id_embedding_dim=8",
            *extra,
        ],
    )
    m = run_trial(cfg, tmp_path)
    assert m["status"] == "ok", m["error"]
    assert m["history"][-1]["loss"] < 0.3, m["history"]


@pytest.mark.parametrize("basis", ["siren", "table"])
def test_factorized_trains_and_its_checkpoint_decodes_alone(
    basis: str, dataset: Path, tmp_path: Path
) -> None:
    """Both bases train through the module; the checkpoint alone (no dataset positions:
    the reference positions are a buffer of the model) reproduces the final MSE."""
    from inr_tune import metrics as M
    from inr_tune.data.store import open_dataset
    from inr_tune.models import FieldSpec, Standardizer, build_model, count_params, predict_window

    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            "model.inr_type=factorized",
            f"model.basis={basis}",
            "model.rank=6",
            "model.basis_hidden_dim=32",
            "model.basis_layers=1",
        ],
    )
    m = run_trial(cfg, tmp_path)
    assert m["status"] == "ok", m["error"]
    assert m["history"][-1]["loss"] < 0.3, m["history"]
    spec = FieldSpec(24, 60, 4)
    assert m["total_params"] == count_params(cfg.model, spec)
    state = torch.load(tmp_path / "checkpoint.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    model = build_model(cfg.model, spec)  # no reference positions given
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    std = Standardizer(state["standardizer.mean"], state["standardizer.std"])
    pred = std.denormalize(predict_window(model)).numpy()
    w = open_dataset(dataset).window("F", 24)
    assert M.final_mse(pred, w.values) == pytest.approx(m["final_mse"], rel=1e-5)


def _train_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inr_tune.train", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_bad_input_exit_2(tmp_path: Path, dataset: Path) -> None:
    r = _train_cli("--set", "training.lr=fast", "--out", str(tmp_path / "o"))
    assert (
        r.returncode == 2
        and r.stderr.strip() == "error: training.lr: expected float, got 'fast' (str)"
    )
    r = _train_cli("--data", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _train_cli(
        "--data", str(dataset), "--set", "data.field=stress", "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2 and "valid fields: F, C, S, Jp" in r.stderr
    r = _train_cli(
        "--data", str(dataset), "--set", "data.n_frames=400", "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2 and "longer than the data" in r.stderr


def test_cli_trains_and_summarises(tmp_path: Path, dataset: Path) -> None:
    r = _train_cli(
        "--data",
        str(dataset),
        *[a for s in TINY for a in ("--set", s)],
        "--set",
        "training.total_steps=64",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert (
        "F siren_txy 32×2: R²=" in r.stdout
        and "wrote" in r.stdout
        and "tensorboard --logdir" in r.stdout
    )


def test_held_out_frames_are_never_trained_on(dataset: Path) -> None:
    from inr_tune.data.store import open_dataset
    from inr_tune.training.module import INRModule

    cfg = load_config(None, [*TINY, f"data.path={dataset}", "data.holdout=4"])
    w = open_dataset(dataset).window("F", 24, "center")
    module = INRModule(cfg, w.values, w.positions, 1.0)
    module.on_train_start()
    seen = torch.cat([module.sample()[0] for _ in range(400)]).unique().tolist()
    assert seen == [k for k in range(24) if k % 4 != 2]  # held out: 2, 6, 10, 14, 18, 22
    none = load_config(None, [*TINY, f"data.path={dataset}", "data.holdout=0"])
    module = INRModule(none, w.values, w.positions, 1.0)
    module.on_train_start()
    assert len(torch.cat([module.sample()[0] for _ in range(400)]).unique()) == 24
    with pytest.raises(Exception, match=r"data\.holdout=1 would hold out every frame"):
        load_config(None, ["data.holdout=1"])


def test_analysis_entry_says_the_schedule_was_shortened() -> None:
    from inr_tune.metrics import MPM_CLASSES
    from inr_tune.reports.analysis import _entry
    from inr_tune.search.tree import Tree

    tree = Tree()
    base = {"status": "ok", "final_r2": 0.99, "total_steps": 15000, "steps_planned": 9000}
    for extra in (
        {"schedule_shortened": True, "steps_done": 9000, "budget_cut": False},
        {"schedule_shortened": True, "steps_done": 8700, "budget_cut": True},
        {"schedule_shortened": False, "steps_done": 15000, "budget_cut": False},
    ):
        node = tree.add(None, {}, {}, "baseline", "h", 1)
        tree.complete(node.id, "ok", {**base, **extra})
    lines = [
        [line for line in _entry(tree, i, MPM_CLASSES, None) if line.startswith("Budget:")]
        for i in (1, 2, 3)
    ]
    assert lines[0] == [
        "Budget: schedule shortened to 9000 of 15000 steps to fit training.max_minutes"
    ]
    assert lines[1] == [
        "Budget: schedule shortened to 9000 of 15000 steps to fit training.max_minutes; "
        "cut by training.max_minutes after 8700 steps"
    ]
    assert lines[2] == []


def test_the_end_is_evaluated_once(dataset: Path, tmp_path: Path) -> None:
    """A run whose last step lands on an evaluation step (320 = 2 × 160) gets no quick
    evaluation there: the final evaluation of the same weights follows, and its row ends
    the history (once, at step 320)."""
    cfg = load_config(
        None,
        [*TINY, f"data.path={dataset}", "training.eval_every=160", "training.steps_per_call=16"],
    )
    m = run_trial(cfg, tmp_path)
    steps = [row["step"] for row in m["history"]]
    assert steps == [160, 320]
    assert m["history"][-1]["final_r2"] == m["final_r2"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = []
    for events in (tmp_path / "tb").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if "eval/final_r2" in acc.Tags()["scalars"]:
            logged += [e.step for e in acc.Scalars("eval/final_r2")]
    assert sorted(logged) == [160, 320]  # one evaluation at the end, not two
