"""Run one trial: load the window, build the module and trainer, fit, evaluate, write results.

``run_trial`` is the core of both ``python -m inr_tune.train`` and the Ray trainable. It
raises ``InrTuneError`` for bad configs or data (before any training) and otherwise always
returns a ``TrialResult`` whose ``status`` is ``ok``, ``diverged`` or ``failed`` (with
``error``), after writing ``metrics.json``, ``field.png``, ``checkpoint.ckpt``, the
config and TensorBoard events (scalars, field panels, the HParams row) to ``out_dir``.
The flow: ``build_trainer`` + callbacks (``PeriodicEval`` snapshots and reports) →
``trainer.fit`` → ``evaluation.evaluate`` once → panel, checkpoint, ``TrialResult``,
HParams row, each written from that record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune.config import Config
from inr_tune.config_files import save_config
from inr_tune.data.store import Window
from inr_tune.training.device import estimate_memory, resolve_device, version_stamp
from inr_tune.training.result import TrialResult
from inr_tune.training.window_cache import load_window

__all__ = [
    "build_trainer",
    "estimate_memory",
    "load_window",
    "quiet_lightning",
    "resolve_device",
    "run_trial",
    "step_loader",
    "version_stamp",
]

#: fly-eye positions have |x| ≤ 8: scale into the unit disc (DESIGN.md "Models").
POSITION_SCALE = {"mpm": 1.0, "flyvis": 1.0 / 8.0}


class Phases:
    """Wall seconds of a trial's phases outside the optimisation loop (``overhead_s`` of
    ``metrics.json``): ``with phases("name"): ...`` adds that block's time to ``name``."""

    def __init__(self, start: dict[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = dict(start or {})

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)


def quiet_lightning() -> None:
    """Lightning's info logs and the warnings that do not apply to a trial, off."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*Starting from v1.9.0, `tensorboardX`.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*is deprecated.*")


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


def _fit(trainer: Any, module: Any, loader: Any) -> tuple[str, str | None]:
    """Run the loop: ("ok", None), or ("failed", reason) for an error inside it. A
    ``BaseException`` that is no ``Exception`` (Ray's stop, Ctrl-C) passes through."""
    import torch

    try:
        trainer.fit(module, loader)
    except torch.OutOfMemoryError as err:
        return "failed", f"out of memory: {str(err).splitlines()[0]}"
    except Exception as err:
        return "failed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return "ok", None


def _callbacks(cfg: Config, evaluator: Any, progress: bool) -> tuple[list[Any], Any, Any]:
    """The trial's callbacks (divergence guard, periodic evaluation, the optional progress
    bar and time cap), with the cap's ``TimeBudget`` and ``Timer`` (None without one)."""
    from lightning.pytorch.callbacks import Timer

    from inr_tune.training.budget import TimeBudget
    from inr_tune.training.callbacks import DivergenceGuard, StepProgress

    t = cfg.training
    callbacks: list[Any] = [DivergenceGuard(), evaluator]
    if progress:
        desc = f"{cfg.data.field} {cfg.model.inr_type}"
        callbacks.insert(0, StepProgress(t.total_steps, desc=desc))
    budget = timer = None
    if t.max_minutes:  # shorten the schedule to fit the cap; the Timer is the hard backstop
        budget = TimeBudget(t.max_minutes, evaluator)
        timer = Timer(duration=dt.timedelta(minutes=t.max_minutes), interval="step")
        callbacks += [budget, timer]
    return callbacks, budget, timer


def _panel_text(cfg: Config, window: Window) -> dict[str, Any]:
    m = cfg.model
    return {
        "field": cfg.data.field,
        "variant": m.inr_type,
        "model": f"{m.hidden_dim}×{m.n_layers}, ω {m.omega:g}",
        "lr": f"{cfg.training.lr:.3g}",
        "components": window.components,
    }


def _final_evaluation(
    trainer: Any, module: Any, device: str, out: Path, info: dict[str, Any], phases: Phases
) -> dict[str, Any]:
    """The one final ``evaluate``; from its record the field panel, the eval scalars and
    the checkpoint. The metrics, or {} when the evaluation calls the fit diverged (then
    ``module.diverged`` says why)."""
    import torch

    from inr_tune.training.board import write_field_panel
    from inr_tune.training.evaluation import evaluate

    with phases("final_evaluation"):
        module.to(torch.device(device))  # Lightning's teardown moved it to the CPU
        final = evaluate(module)
        module.diverged = final.diverged
    if final.prediction is None:
        return {}
    writer = trainer.logger.experiment
    with phases("plot"):
        write_field_panel(out / "field.png", module, final, info, writer)
    keys = ("final_r2", "final_mse", "kinograph_R2", "kinograph_SSIM")
    trainer.logger.log_metrics({f"eval/{k}": final.metrics[k] for k in keys}, step=final.step)
    with phases("checkpoint"):
        tmp = out / ".checkpoint.ckpt.tmp"
        trainer.save_checkpoint(tmp, weights_only=False)
        tmp.replace(out / "checkpoint.ckpt")
    return final.metrics


def _result(
    cfg: Config, window: Window, module: Any, evaluator: Any, budget: Any, timer: Any, **facts: Any
) -> TrialResult:
    """The ``TrialResult`` of a finished loop (``facts``: status, error, metrics, …)."""
    import torch

    t, device = cfg.training, facts["device"]
    n_values = int(np.prod(window.values.shape))
    seconds = evaluator.training_time
    return TrialResult(
        total_params=module.total_params,
        compression_ratio=n_values / module.total_params,
        bits_per_value=32.0 * module.total_params / n_values,
        holdout=cfg.data.holdout,
        training_time=seconds,
        steps_per_second=module.step / seconds if seconds > 0 else None,
        steps_done=module.step,
        total_steps=t.total_steps,
        steps_planned=module.planned_steps,
        schedule_shortened=module.planned_steps < t.total_steps,
        budget_cut=bool(
            timer is not None and facts["status"] == "ok" and module.step < module.planned_steps
        ),
        final_lr=module.last_lr,
        budget_plans=budget.plans if budget is not None else [],
        field=cfg.data.field,
        inr_type=cfg.model.inr_type,
        n_frames=window.n_frames,
        n_points=window.n_points,
        window_start=window.start,
        expected_memory_gb=estimate_memory(
            cfg, window.n_frames, window.n_points, len(window.components)
        )
        / 2**30,
        # the caching allocator's peak (the CUDA context, ~0.5 GiB, comes on top)
        peak_memory_gb=torch.cuda.max_memory_reserved() / 2**30 if device == "cuda" else None,
        version=version_stamp(),
        history=evaluator.history,
        **facts,
    )


def run_trial(
    cfg: Config,
    out_dir: str | os.PathLike[str],
    *,
    dataset_path: str | os.PathLike[str] | None = None,
    content_hash: str | None = None,
    progress: bool = False,
    report: Callable[[dict[str, Any]], None] | None = None,
    progress_every_s: float | None = None,
    num_threads: int | None = None,
    extra_hparams: dict[str, Any] | None = None,
    tb_name: str = "tb",
    snapshots: bool = True,
    started: float | None = None,
    phases: dict[str, float] | None = None,
) -> TrialResult:
    """Train ``cfg`` once; write results to ``out_dir`` and return its ``TrialResult``.

    ``report(row)`` gets the rows of ``callbacks.PeriodicEval`` (each evaluation before
    the run's end, a light row every ``progress_every_s`` seconds), with the model's
    ``total_params`` and ``compression_ratio``; TensorBoard is flushed and the latest
    snapshot (field panel) written before each, so a trial stopped there (Ray raises
    ``SystemExit`` in ``report``, which passes through) leaves them on disk. Without
    ``report``, or with ``snapshots`` false (nothing can stop the trial from outside: no
    scheduler), no snapshots (their time stays in the loop).

    ``wall_time`` counts from ``started`` (a ``time.perf_counter()`` value: when the
    caller began the trial, e.g. the Ray trainable before its dataset check) or from this
    call; ``phases`` are seconds the caller already spent (``{"dataset_check": …}``).
    ``overhead_s`` in ``metrics.json`` splits the time that is not ``training_time``.
    """
    wall0 = time.perf_counter() if started is None else started
    clock = Phases(phases)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with clock("data"):
        window, data_path = load_window(cfg, dataset_path)
    with clock("imports"):  # torch and Lightning: seconds in a fresh (Ray worker) process
        device = resolve_device(cfg.training.device)
        save_config(cfg, out / "config.yaml")

        import lightning as L
        import torch
        from lightning.pytorch.loggers import TensorBoardLogger

        from inr_tune.training.board import hparams_of, write_field_panel, write_hparams
        from inr_tune.training.callbacks import PeriodicEval
        from inr_tune.training.evaluation import evaluate
        from inr_tune.training.module import INRModule

        quiet_lightning()
        threads_before = torch.get_num_threads()
    try:
        with clock("build"):  # the module (window on the device, standardiser), logger, trainer
            if num_threads:
                torch.set_num_threads(num_threads)
            if device == "cuda":  # peak_memory_gb: what this trial held, beside expected_memory_gb
                torch.cuda.empty_cache()  # an earlier trial's cached blocks in this process
                torch.cuda.reset_peak_memory_stats()
            L.seed_everything(cfg.training.seed, workers=False, verbose=False)
            module = INRModule(cfg, window.values, window.positions, POSITION_SCALE[window.kind])
            logger = TensorBoardLogger(
                save_dir=str(out), name=tb_name, version="", default_hp_metric=False
            )
            ratio = float(np.prod(window.values.shape)) / module.total_params
            size = {"total_params": module.total_params, "compression_ratio": ratio}
            info = _panel_text(cfg, window)

            def snapshot(m: INRModule) -> None:  # the latest panel, kept if the trial is stopped
                write_field_panel(out / "field.png", m, evaluate(m), info, logger.experiment)

            def send(row: dict[str, Any]) -> None:
                logger.experiment.flush()  # on disk before a stop can end this process
                assert report is not None
                report({**row, **size})

            t = cfg.training
            evaluator = PeriodicEval(
                t.eval_every,
                report=send if report is not None else None,
                snapshot=snapshot if report is not None and snapshots else None,
                progress_every_s=progress_every_s,
            )
            callbacks, budget, timer = _callbacks(cfg, evaluator, progress)
            trainer = build_trainer(device, logger, callbacks)
            loader = step_loader(t.total_steps, t.steps_per_call)
        fit0 = time.perf_counter()
        status, error = _fit(trainer, module, loader)
        # Lightning's own setup and teardown around the loop (the logger's writer, moving
        # the module, …); the loop's evaluations and snapshots are counted apart
        clock.add("fit_setup", time.perf_counter() - fit0 - evaluator.loop_seconds)
        clock.add("evaluations", evaluator.eval_seconds)
        clock.add("snapshots", evaluator.snapshot_seconds)
        metrics: dict[str, Any] = {}
        if status == "ok" and not module.diverged:
            metrics = _final_evaluation(trainer, module, device, out, info, clock)
        if metrics:  # the end's row of the history (PeriodicEval leaves the end to this)
            evaluator.history.append(
                {
                    "step": module.step,
                    "loss": module.losses[-1][1] if module.losses else None,
                    **{k: metrics.get(k) for k in PeriodicEval.ROW_KEYS},
                }
            )
        if status == "ok" and module.diverged:
            status, error = "diverged", module.diverged
        if status != "ok":  # an earlier snapshot's panel would not show this result
            (out / "field.png").unlink(missing_ok=True)
        with clock("finish"):
            result = _result(
                cfg,
                window,
                module,
                evaluator,
                budget,
                timer,
                status=status,
                error=error,
                metrics=metrics,
                dataset=str(data_path),
                content_hash=content_hash,
                device=device,
            )
            hparams = hparams_of(cfg, extra_hparams)
            write_hparams(logger.experiment, hparams, status, result.to_dict(False), module.step)
            logger.finalize("success" if status == "ok" else "failed")
        # metrics.json last, so its wall time and overhead cover everything before it
        result.wall_time = time.perf_counter() - wall0
        result.overhead_s = _overhead(clock.seconds, result)
        result.write(out / "metrics.json")
        return result
    finally:  # the caller's thread count, when called in a notebook or a test
        torch.set_num_threads(threads_before)


def _overhead(seconds: dict[str, float], result: TrialResult) -> dict[str, float]:
    """``overhead_s``: the phases' seconds rounded, and ``other`` — the wall time neither
    ``training_time`` nor a phase accounts for (the loop's logging and callbacks outside
    the measured evaluations, Lightning's per-call bookkeeping are in ``training_time``)."""
    wall, train = result.wall_time or 0.0, result.training_time or 0.0
    out = {k: round(v, 3) for k, v in seconds.items()}
    out["other"] = round(max(0.0, wall - train - sum(seconds.values())), 3)
    return out
