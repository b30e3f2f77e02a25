"""Lightning callbacks of a trial: progress bar, divergence guard, periodic evaluation.

The time cap is ``budget.TimeBudget``; the final evaluation, field panel, checkpoint and
HParams row are written by ``fit.run_trial`` from one ``evaluation.evaluate`` record.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from inr_tune.training.evaluation import quick_eval
from inr_tune.training.result import score_of

__all__ = ["DivergenceGuard", "PeriodicEval", "StepProgress", "loss_divergence"]


class StepProgress(Callback):
    """A tqdm bar over optimizer steps (not Lightning batches): step, loss, steps/s, ETA."""

    def __init__(self, total_steps: int, desc: str = "train") -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be ≥ 1, got {total_steps}")
        self.total_steps = total_steps
        self.desc = desc
        self._bar: Any = None

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.total_steps,
            desc=self.desc,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._bar is None or not pl_module.losses:
            return
        planned = getattr(pl_module, "planned_steps", self.total_steps)
        if planned != self._bar.total:  # a time cap shortened the run
            self._bar.total = planned
        self._bar.update(pl_module.step - self._bar.n)
        self._bar.set_postfix(loss=f"{pl_module.losses[-1][1]:.3e}", refresh=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()


def loss_divergence(
    start: float | None,
    losses: list[tuple[int, float]],
    factor: float = 10.0,
    tail: int = 5,
    floor: float = 0.1,
) -> str | None:
    """Why a finished run's loss counts as diverged (None when it does not).

    ``start`` is the loss of the untrained network (first optimizer step, before any
    update); the end is the median of the last ``tail`` logged losses (each already a mean
    over one Lightning call's optimizer steps), so one spike in the last call does not
    decide. Diverged when end > ``factor`` × max(start, ``floor``).

    Why 10× and the floor 0.1: targets are standardised, so the untrained network starts
    near 1 (predicting ≈ 0, the mean) and any fit that learns something ends well below
    its start; with the mse loss an end 10× above the start is ≈ R² −9 on the trained
    data, far past the noise of a healthy run (which ends below its start, not above). The
    floor keeps a
    network that happens to start near the data (start ≪ 1) from being called diverged
    for ending at a still-good loss: the end must also exceed 1, i.e. be worse than
    predicting the mean.
    """
    if start is None or not losses or not math.isfinite(start):
        return None
    end = float(np.median([loss for _, loss in losses[-tail:]]))
    if not math.isfinite(end):
        return f"loss ended at {end}"
    if end > factor * max(start, floor):
        times = f"{end / start:.0f}×" if start > 0 else "far above"
        return f"loss ended at {end:.3g}, {times} its start {start:.3g}"
    return None


class DivergenceGuard(Callback):
    """Stop a trial whose loss is NaN/inf or grows ``factor``× above its start; at the end,
    call a run whose loss ended ``end_factor``× above its start diverged (``loss_divergence``).

    The start is the untrained network's loss (the module's ``start_loss``, first optimizer
    step before any update; the first logged loss when missing): at a huge lr the first
    logged loss, a mean over the first call's steps, is already far above the start.
    """

    def __init__(self, factor: float = 1.0e3, end_factor: float = 10.0) -> None:
        if not factor > 1 or not end_factor > 1:
            raise ValueError(f"factor and end_factor must be > 1, got {factor}, {end_factor}")
        self.factor = factor
        self.end_factor = end_factor

    @staticmethod
    def _start(pl_module: Any) -> float:
        start = getattr(pl_module, "start_loss", None)
        return pl_module.losses[0][1] if start is None else start

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not pl_module.losses:
            return
        step, loss = pl_module.losses[-1]
        first = max(self._start(pl_module), 1e-3)
        if not math.isfinite(loss):
            pl_module.diverged = f"loss became {loss} at step {step}"
        elif loss > self.factor * first:
            pl_module.diverged = f"loss exploded to {loss:.3g} at step {step} (> {self.factor:g}× the first loss {first:.3g})"
        if pl_module.diverged:
            trainer.should_stop = True

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if pl_module.diverged or not pl_module.losses:
            return
        why = loss_divergence(self._start(pl_module), pl_module.losses, self.end_factor)
        if why:
            pl_module.diverged = f"{why} (after {pl_module.step} steps)"


class PeriodicEval(Callback):
    """Every ``eval_every`` optimizer steps: quick metrics (``evaluation.quick_eval`` on
    ≤ ``max_frames`` frames, ``holdout_r2`` on all held-out frames) into ``history`` and
    TensorBoard (``eval/*``); at some of them a snapshot (``snapshot(module)``: the full
    evaluation and the field panel, so a trial stopped later leaves them); then, before
    the run's end only, a row to ``report``. Between evaluations, a light progress row
    every ``progress_every_s`` seconds (None: none).

    Every row: ``step`` (the step of the latest evaluation, 0 before the first: the step
    ``score`` belongs to), ``score`` (its R², ``result.score_of``; NaN before the first),
    ``final_r2`` (its sample R²; NaN before), ``loss`` (of the latest call),
    ``steps_done``, ``total_steps`` (planned: fewer when a time cap shortened the run),
    ``elapsed_s`` (since training started), ``eta_s`` (steps left at the rate so far,
    evaluations included). An evaluation's row also has ``holdout_r2``, ``final_mse``
    and ``kinograph_R2``; there ``step == steps_done``. A light row thus repeats the
    (step, score) pair of the last evaluation: a scheduler keyed on them (ASHA) sees no
    new measurement in it.

    The run's end is not evaluated here: the trial's final evaluation (all frames) follows
    at once, and ``run_trial`` appends its row to ``history`` (a quick evaluation of the
    same weights first would only cost time). Nor is a row reported there (the end is the
    final report's): a scheduler never stops a trial that has in fact finished, also when
    a time cap shortened it.
    Snapshots: at the first evaluation, then while all snapshots together stay under
    ``snapshot_share`` of the time since training started. ``training_time`` counts the
    optimisation loop only (evaluations and snapshots excluded).
    """

    #: the metrics of an evaluation's row (``evaluation.quick_eval``'s keys)
    ROW_KEYS = ("final_r2", "holdout_r2", "final_mse", "kinograph_R2")

    def __init__(
        self,
        eval_every: int,
        max_frames: int = 64,
        report: Callable[[dict[str, Any]], None] | None = None,
        snapshot: Callable[[Any], None] | None = None,
        snapshot_share: float = 0.05,
        progress_every_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if eval_every < 1 or max_frames < 1:
            raise ValueError(
                f"eval_every and max_frames must be ≥ 1, got {eval_every}, {max_frames}"
            )
        if progress_every_s is not None and not progress_every_s > 0:
            raise ValueError(f"progress_every_s must be > 0 or None, got {progress_every_s}")
        self.eval_every = eval_every
        self.max_frames = max_frames
        self.report = report
        self.snapshot = snapshot
        self.snapshot_share = snapshot_share
        self.progress_every_s = progress_every_s
        self.clock = clock
        self.history: list[dict[str, Any]] = []
        self.eval_seconds = 0.0  # time spent in periodic evaluations
        self.snapshot_seconds = 0.0  # … and in snapshots
        self.n_evals = 0
        self.n_snapshots = 0
        self.training_time = 0.0
        self.loop_seconds = 0.0  # the whole loop: training_time + evaluations + snapshots
        self._next = eval_every
        self._t0 = 0.0
        self._last_report = 0.0

    def quick_eval(self, module: Any) -> dict[str, float | None]:
        return quick_eval(module, self.max_frames)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self._last_report = self.clock()

    def progress(self, module: Any) -> dict[str, Any]:
        """``steps_done``, ``total_steps``, ``elapsed_s``, ``eta_s`` and the latest
        evaluation's ``step``, ``score``, ``final_r2``, with the latest ``loss``."""
        elapsed = self.clock() - self._t0
        done, total = int(module.step), int(module.planned_steps)
        last = self.history[-1] if self.history else {}
        return {
            "step": last.get("step", 0),
            "score": score_of(last),
            "final_r2": last.get("final_r2", float("nan")),
            "loss": module.losses[-1][1] if module.losses else None,
            "steps_done": done,
            "total_steps": total,
            "elapsed_s": elapsed,
            "eta_s": (total - done) * elapsed / done if done > 0 else None,
        }

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.diverged:
            return
        if self._next <= pl_module.step < pl_module.planned_steps:
            self._evaluate(trainer, pl_module)
        elif (
            self.report is not None
            and self.progress_every_s is not None
            and self.clock() - self._last_report >= self.progress_every_s
            and pl_module.step < pl_module.planned_steps
        ):
            self._send(self.progress(pl_module))

    def _evaluate(self, trainer: L.Trainer, module: Any) -> None:
        self._next = (module.step // self.eval_every + 1) * self.eval_every
        t0 = self.clock()
        values = self.quick_eval(module)
        self.eval_seconds += self.clock() - t0
        self.n_evals += 1
        row = {"step": module.step, "loss": module.losses[-1][1], **values}
        self.history.append(row)
        if trainer.logger is not None:
            scalars = {f"eval/{k}": v for k, v in values.items() if v is not None}
            trainer.logger.log_metrics(scalars, step=module.step)
        if self.snapshot is not None and self._snapshot_due(values):
            t0 = self.clock()
            self.snapshot(module)
            self.snapshot_seconds += self.clock() - t0
            self.n_snapshots += 1
        if self.report is not None:
            self._send({**self.progress(module), **row})

    def _snapshot_due(self, values: dict[str, Any]) -> bool:
        if not np.isfinite(values.get("final_r2", float("nan"))):
            return False
        if self.n_snapshots == 0:
            return True
        return self.snapshot_seconds <= self.snapshot_share * (self.clock() - self._t0)

    def _send(self, row: dict[str, Any]) -> None:
        assert self.report is not None
        self.report(row)
        self._last_report = self.clock()

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        elapsed = self.clock() - self._t0
        self.loop_seconds = elapsed
        self.training_time = elapsed - self.eval_seconds - self.snapshot_seconds
