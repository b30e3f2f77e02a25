"""Run one trial: load the window, build the module and trainer, fit, evaluate, write results.

``run_trial`` is the core of both ``python -m inr_tune.train`` and the Ray trainable. It
raises ``InrTuneError`` for bad configs or data (before any training) and otherwise always
returns a metrics dict whose ``status`` is ``ok``, ``diverged`` or ``failed`` (with
``error``), after writing ``metrics.json``, ``field.png``, ``checkpoint.ckpt``, the
config and TensorBoard events to ``out_dir``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune import __version__
from inr_tune.config import Config, save_config
from inr_tune.data.store import Window, open_dataset
from inr_tune.errors import ConfigError
from inr_tune.fileio import jsonable, write_durable

__all__ = ["estimate_memory", "load_window", "resolve_device", "run_trial", "version_stamp"]

#: fly-eye positions have |x| ≤ 8: scale into the unit disc (DESIGN.md "Models").
POSITION_SCALE = {"mpm": 1.0, "flyvis": 1.0 / 8.0}


def version_stamp() -> str:
    """Package version, plus the git commit when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device=cuda but no CUDA GPU is available; use auto or cpu")
    return name


def estimate_memory(cfg: Config, n_frames: int, n_points: int, n_components: int) -> int:
    """Expected peak device memory of one trial, in bytes (an upper-side estimate).

    Parameters, gradients and two Adam moments (4 × params × 4 bytes); activations of one
    step (each hidden layer keeps its pre-activation and sine output for backward, twice
    for the gradient, per sample point); the window and positions on the device; plus a
    fixed 300 MiB for the CUDA context and allocator slack.
    """
    from inr_tune.models.size import count_params
    from inr_tune.models.variants import FieldSpec

    m, t = cfg.model, cfg.training
    width = m.hidden_dim
    outputs = n_components * (n_points if m.inr_type == "siren_t" else 1)
    params = count_params(m, FieldSpec(n_frames, n_points, n_components))
    samples = t.batch_size * (1 if m.inr_type == "siren_t" else (t.points_per_step or n_points))
    activations = samples * width * (m.n_layers + 1) * 4 * 4 + samples * outputs * 4 * 3
    data = n_frames * n_points * (n_components + 2) * 4
    return int(16 * params + activations + data + 300 * 2**20)


def load_window(
    cfg: Config, dataset_path: str | os.PathLike[str] | None = None
) -> tuple[Window, Path]:
    """The training window of ``cfg.data`` (default dataset when no path is given)."""
    path = dataset_path or cfg.data.path
    if path is None:
        from inr_tune.data.defaults import ensure_default_dataset

        path = ensure_default_dataset("mpm")
    ds = open_dataset(path)
    return ds.window(cfg.data.field, cfg.data.n_frames, cfg.data.offset), Path(path)


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*Starting from v1.9.0, `tensorboardX`.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    write_durable(path, json.dumps(jsonable(payload), indent=2, allow_nan=False))


def hparams_of(cfg: Config) -> dict[str, Any]:
    """Flat hyper-parameters for TensorBoard's HParams view."""
    flat: dict[str, Any] = {"data.field": cfg.data.field, "data.n_frames": cfg.data.n_frames}
    for section in ("model", "training"):
        for k, v in getattr(cfg, section).__dict__.items():
            flat[f"{section}.{k}"] = "null" if v is None else v
    return flat


def build_trainer(device: str, logger: Any = False, callbacks: list[Any] | None = None) -> Any:
    """The Lightning Trainer of a trial: one device, one epoch over ``step_loader``, no
    validation, checkpointing, progress bar or summary of Lightning's own (the callbacks
    do these). ``benchmarks/trainer_overhead.py`` times the same Trainer."""
    import lightning as L

    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        logger=logger,
        callbacks=callbacks or [],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,  # our own logging runs every training.log_every optimizer steps
    )


def step_loader(total_steps: int, steps_per_call: int) -> Any:
    """One item per Lightning step; each runs ``steps_per_call`` optimizer steps."""
    import torch

    n_calls = math.ceil(total_steps / steps_per_call)
    return torch.utils.data.DataLoader(range(n_calls), batch_size=None)


def run_trial(
    cfg: Config,
    out_dir: str | os.PathLike[str],
    *,
    dataset_path: str | os.PathLike[str] | None = None,
    content_hash: str | None = None,
    progress: bool = False,
    report: Callable[[dict[str, Any]], None] | None = None,
    num_threads: int | None = None,
    extra_hparams: dict[str, Any] | None = None,
    tb_name: str = "tb",
) -> dict[str, Any]:
    """Train ``cfg`` once; write results to ``out_dir`` and return the metrics dict."""
    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    window, data_path = load_window(cfg, dataset_path)
    device = resolve_device(cfg.training.device)
    save_config(cfg, out / "config.yaml")

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Timer
    from lightning.pytorch.loggers import TensorBoardLogger

    from inr_tune.training.callbacks import (
        DivergenceGuard,
        FieldPanel,
        FinalCheckpoint,
        MetricsEvaluator,
        StepProgress,
        TimeBudget,
    )
    from inr_tune.training.module import INRModule

    _quiet_lightning()
    threads_before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    if device == "cuda":  # peak_memory_gb: what this trial held, beside expected_memory_gb
        torch.cuda.empty_cache()  # an earlier trial's cached blocks in this process
        torch.cuda.reset_peak_memory_stats()
    try:
        L.seed_everything(cfg.training.seed, workers=False, verbose=False)
        module = INRModule(cfg, window.values, window.positions, POSITION_SCALE[window.kind])
        t = cfg.training
        logger = TensorBoardLogger(
            save_dir=str(out), name=tb_name, version="", default_hp_metric=False
        )

        def intermediate(row: dict[str, Any]) -> None:
            # Rows before the run's end only (the end is the final report's): a scheduler
            # such as ASHA never stops a trial that has in fact finished, also when a time
            # cap shortened it below total_steps. The size travels with each row, so a
            # trial stopped early still has its compression ratio.
            if report is not None and row.get("step", 0) < module.planned_steps:
                report({**row, "total_params": module.total_params, "compression_ratio": ratio})

        ratio = float(np.prod(window.values.shape)) / module.total_params
        evaluator = MetricsEvaluator(t.eval_every, report=intermediate if report else None)
        info = {
            "field": cfg.data.field,
            "variant": cfg.model.inr_type,
            "model": f"{cfg.model.hidden_dim}×{cfg.model.n_layers}, ω {cfg.model.omega:g}",
            "lr": f"{t.lr:.3g}",
            "components": window.components,
        }
        callbacks: list[Any] = [
            DivergenceGuard(),
            evaluator,
            FieldPanel(out / "field.png", info),
            FinalCheckpoint(out / "checkpoint.ckpt"),
        ]
        if progress:
            callbacks.insert(
                0, StepProgress(t.total_steps, desc=f"{cfg.data.field} {cfg.model.inr_type}")
            )
        timer = budget = None
        if t.max_minutes:
            # shorten the schedule to fit the cap; the Timer is the hard backstop
            budget = TimeBudget(t.max_minutes, evaluator)
            timer = Timer(duration=dt.timedelta(minutes=t.max_minutes), interval="step")
            callbacks += [budget, timer]
        trainer = build_trainer(device, logger, callbacks)
        loader = step_loader(t.total_steps, t.steps_per_call)
        status, error = "ok", None
        try:
            trainer.fit(module, loader)
        except torch.OutOfMemoryError as err:
            status, error = "failed", f"out of memory: {str(err).splitlines()[0]}"
        except Exception as err:
            status, error = (
                "failed",
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            )
        if status == "ok" and module.diverged:
            status, error = "diverged", module.diverged
        final = getattr(module, "final_metrics", {}) if status == "ok" else {}
        n_values = int(np.prod(window.values.shape))
        metrics: dict[str, Any] = {
            "status": status,
            "error": error,
            **final,
            "total_params": module.total_params,
            "compression_ratio": n_values / module.total_params,
            # float32 values stored per window value: 32 bits / ratio
            "bits_per_value": 32.0 * module.total_params / n_values,
            "holdout": cfg.data.holdout,
            "training_time": evaluator.training_time,
            "wall_time": time.perf_counter() - wall0,
            "steps_done": module.step,
            "total_steps": t.total_steps,
            # total_steps, or fewer when training.max_minutes shortened the schedule
            "steps_planned": module.planned_steps,
            "schedule_shortened": module.planned_steps < t.total_steps,
            # still cut by the clock before the end of its (possibly shortened) schedule
            "budget_cut": bool(
                timer is not None and status == "ok" and module.step < module.planned_steps
            ),
            "final_lr": module.last_lr,  # lr of the last optimizer step (the schedule's end)
            "budget_plans": budget.plans if budget is not None else [],
            "steps_per_second": module.step / evaluator.training_time
            if evaluator.training_time > 0
            else None,
            "field": cfg.data.field,
            "inr_type": cfg.model.inr_type,
            "n_frames": window.n_frames,
            "n_points": window.n_points,
            "window_start": window.start,
            "device": device,
            "expected_memory_gb": estimate_memory(
                cfg, window.n_frames, window.n_points, len(window.components)
            )
            / 2**30,
            # the caching allocator's peak (the CUDA context, ~0.5 GiB, comes on top)
            "peak_memory_gb": torch.cuda.max_memory_reserved() / 2**30
            if device == "cuda"
            else None,
            "dataset": str(data_path),
            "content_hash": content_hash,
            "version": version_stamp(),
            "history": evaluator.history,
        }
        write_json(out / "metrics.json", metrics)
        keys = (
            "final_r2",
            "holdout_r2",
            "train_r2",
            "compression_ratio",
            "psnr",
            "final_mse",
            "kinograph_R2",
            "kinograph_SSIM",
            "training_time",
        )
        hp_metrics = {
            f"hp/{k}": float(metrics[k]) for k in keys if isinstance(metrics.get(k), (int, float))
        }
        hp_metrics["hp/ok"] = 1.0 if status == "ok" else 0.0
        logger.log_hyperparams(
            {**hparams_of(cfg), "status": status, **(extra_hparams or {})}, hp_metrics
        )
        logger.finalize("success" if status == "ok" else "failed")
        return metrics
    finally:  # the caller's thread count, when called in a notebook or a test
        torch.set_num_threads(threads_before)
