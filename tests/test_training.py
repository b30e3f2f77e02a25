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

from inr_tune.config import load_config
from inr_tune.training.fit import run_trial
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
def trial(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("trial")
    cfg = load_config(None, [*TINY, f"data.path={dataset}", "model.t_period=2.0"])
    return out, run_trial(cfg, out)


def test_trial_writes_results(trial: tuple[Path, dict]) -> None:
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
    assert len(saved["history"]) == 3  # evaluations at 100, 200, 300 steps
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "field.png")
    assert img.shape[0] > 400 and img.shape[1] > 800


def test_tensorboard_events_read_back(trial: tuple[Path, dict]) -> None:
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


def test_checkpoint_restores_prediction_with_periods(
    trial: tuple[Path, dict], dataset: Path
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


def test_wall_clock_budget_cuts_and_still_evaluates(dataset: Path, tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            *TINY,
            f"data.path={dataset}",
            "training.total_steps=10000000",
            "training.max_minutes=0.03",
        ],
    )
    threads = torch.get_num_threads()
    m = run_trial(cfg, tmp_path, num_threads=threads + 1)
    assert torch.get_num_threads() == threads  # the caller's setting is given back
    assert m["status"] == "ok" and m["budget_cut"] is True
    assert 0 < m["steps_done"] < 10000000 and np.isfinite(m["final_r2"])
    assert m["training_time"] < 30


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
