"""``TimeBudget``: fit a trial inside ``training.max_minutes`` by shortening its schedule."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

if TYPE_CHECKING:
    from inr_tune.training.callbacks import PeriodicEval

__all__ = ["TimeBudget"]


class TimeBudget(Callback):
    """Fit the run inside ``training.max_minutes`` by shortening its schedule, not cutting it.

    After a warm-up the callback measures the optimisation loop's seconds per optimizer
    step and the cost of one periodic evaluation; when the planned steps cannot finish
    before ``(1 - margin)`` of the cap, it shortens the run (``INRModule.shorten``: the
    loop ends there and the lr schedule, warmup included, is re-laid to decay fully by the
    new end). Later checks (at 25 %, 50 %, 75 % of the cap) shorten again if the machine
    slowed down past half the margin; a run is never lengthened. Lightning's ``Timer`` at
    the full cap stays as the hard backstop; a run it still cuts is ``budget_cut``.

    Warm-up: the first Lightning call is not measured (it pays one-off costs: lazy
    CUDA/cuBLAS init, allocator growth, first use of the foreach kernels); the measurement
    runs over the next calls until 3 % of the cap has passed and at least 3 calls
    (``steps_per_call`` optimizer steps each) were measured. 3 % averages out per-step
    jitter (a 3-minute cap gives 5 s, thousands of small-network steps) while the schedule
    re-laid at that point has moved by a few % of its progress at most.

    Margin 10 % of the cap: the step rate of trials sharing a device varies by several %
    as neighbours start and end; the margin also covers the last call's granularity and
    logging. The final evaluation runs after the loop ends, outside the cap
    (``training.max_minutes`` is the optimisation loop's budget), so it needs no share.
    """

    def __init__(
        self,
        max_minutes: float,
        evaluator: PeriodicEval | None = None,
        warmup_fraction: float = 0.03,
        min_calls: int = 3,
        margin: float = 0.1,
        checks: tuple[float, ...] = (0.25, 0.5, 0.75),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        self.budget_s = 60.0 * float(max_minutes)
        self.evaluator = evaluator
        self.warmup_fraction = warmup_fraction
        self.min_calls = min_calls
        self.margin = margin
        self.checks = checks
        self.clock = clock
        self.plans: list[dict[str, float]] = []  # one row per shortening (for metrics.json)
        self.seconds_per_step: float | None = None
        self._t0 = 0.0
        self._mark: tuple[float, int, float] | None = None  # (time, step, eval seconds)
        self._own_eval_s = 0.0  # the evaluation timed here (not an optimisation step)
        self._last: tuple[float, int, float] | None = None
        self._calls = 0
        self._next_check = 0
        self._eval_cost: float | None = None

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self.clock()
        self._mark = self._last = None
        self._own_eval_s, self._eval_cost = 0.0, None
        self._calls = 0
        self._next_check = 0
        self.plans = []

    def _eval_seconds(self) -> float:
        """Seconds spent outside optimizer steps: evaluations and snapshots."""
        ev = self.evaluator
        spent = ev.eval_seconds + ev.snapshot_seconds if ev is not None else 0.0
        return self._own_eval_s + spent

    def _evaluation_cost(self, module: Any) -> float:
        """Seconds of one periodic evaluation: the mean of those run so far, else one timed
        now (its time is spent inside the cap, like any evaluation)."""
        ev = self.evaluator
        if ev is None:
            return 0.0
        if ev.n_evals:
            return ev.eval_seconds / ev.n_evals
        if self._eval_cost is None:
            t0 = self.clock()
            ev.quick_eval(module)
            self._eval_cost = self.clock() - t0
            self._own_eval_s += self._eval_cost
        return self._eval_cost

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.diverged or trainer.should_stop:
            return
        now = self.clock()
        point = (now, pl_module.step, self._eval_seconds())
        if self._mark is None:  # the first call is not measured (one-off costs)
            self._mark = self._last = point
            return
        self._calls += 1
        elapsed = now - self._t0
        if elapsed >= self.budget_s:  # past the cap: the Timer stops the loop
            return
        if self._next_check == 0:  # warm-up
            if elapsed < self.warmup_fraction * self.budget_s or self._calls < self.min_calls:
                return
        elif (
            self._next_check > len(self.checks)
            or elapsed < self.checks[self._next_check - 1] * self.budget_s
        ):
            return
        first = self._next_check == 0
        self._next_check += 1

        def per_step(a: tuple[float, int, float]) -> float | None:
            steps = pl_module.step - a[1]
            return (now - a[0] - (point[2] - a[2])) / steps if steps > 0 else None

        rates = [r for r in (per_step(self._mark), per_step(self._last)) if r is not None]
        self._last = point
        if not rates:
            return
        # the slower of the whole measurement and the latest stretch: the current load
        # predicts the remaining time better than the average, and erring slow is cheap
        sec = max(rates)
        self.seconds_per_step = sec
        eval_every = self.evaluator.eval_every if self.evaluator is not None else 0
        eval_cost = self._evaluation_cost(pl_module) if eval_every else 0.0
        elapsed = self.clock() - self._t0  # a timed evaluation counts too
        sec_total = sec + (eval_cost / eval_every if eval_every else 0.0)
        ev = self.evaluator
        if ev is not None and ev.snapshot is not None:  # snapshots take ≤ their share
            sec_total /= 1.0 - ev.snapshot_share
        left = pl_module.planned_steps - pl_module.step
        finish = elapsed + left * sec_total
        allowed = 1.0 - self.margin if first else 1.0 - self.margin / 2
        if finish <= allowed * self.budget_s:
            return
        fit = int(((1.0 - self.margin) * self.budget_s - elapsed) / sec_total)
        new = max(pl_module.step + 1, pl_module.step + fit)
        if new >= pl_module.planned_steps:
            return
        pl_module.shorten(new)
        self.plans.append(
            {
                "at_step": pl_module.step,
                "at_seconds": round(elapsed, 3),
                "seconds_per_step": sec,
                "eval_seconds": eval_cost,
                "steps_planned": new,
            }
        )
