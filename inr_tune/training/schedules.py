"""Learning-rate schedules as pure functions of the step (wrapped in ``LambdaLR``)."""

from __future__ import annotations

import math
from functools import partial

import torch

__all__ = ["SCHEDULES", "lr_factor", "make_scheduler", "relay_scheduler", "scaled_warmup"]

SCHEDULES = ("constant", "cosine", "warmup_cosine")


def lr_factor(
    step: int, *, schedule: str, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.01
) -> float:
    """Multiplier of the base lr at ``step`` (0-based), as in nanoGPT's ``get_lr``.

    constant: 1. cosine: 1 → ``min_ratio`` over ``total_steps``. warmup_cosine: linear
    warmup over ``warmup_steps`` (0 = 2 % of the steps), then cosine to ``min_ratio``.
    """
    if schedule == "constant":
        return 1.0
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} unknown; choose one of {', '.join(SCHEDULES)}")
    warmup = 0
    if schedule == "warmup_cosine":
        warmup = warmup_steps or max(1, round(0.02 * total_steps))
        if step < warmup:
            return (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    min_ratio: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
    fn = partial(
        lr_factor,
        schedule=schedule,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        min_ratio=min_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def scaled_warmup(warmup_steps: int, total_steps: int, new_total: int) -> int:
    """An explicit warmup re-laid over ``new_total`` steps keeps its share of the run
    (0, "2 % of the steps", stays 0: it follows the new length by itself)."""
    if not warmup_steps:
        return 0
    return max(1, round(warmup_steps * new_total / max(1, total_steps)))


def relay_scheduler(
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    *,
    schedule: str,
    total_steps: int,
    new_total: int,
    warmup_steps: int = 0,
    min_ratio: float = 0.01,
) -> None:
    """Re-lay a ``make_scheduler`` schedule over ``new_total`` steps, from the step it is at.

    Used when a time cap shortens a run: the schedule (warmup included, see
    ``scaled_warmup``) then ends, fully decayed, at ``new_total``. The optimizer's lr is set
    at once, so the very next optimizer step already follows the new schedule.
    """
    fn = partial(
        lr_factor,
        schedule=schedule,
        total_steps=new_total,
        warmup_steps=scaled_warmup(warmup_steps, total_steps, new_total),
        min_ratio=min_ratio,
    )
    scheduler.lr_lambdas = [fn] * len(scheduler.lr_lambdas)
    step = scheduler.last_epoch
    lrs = [base * fn(step) for base in scheduler.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports (logged as train/lr)
