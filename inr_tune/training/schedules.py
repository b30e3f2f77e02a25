"""Learning-rate schedules as pure functions of the step (wrapped in ``LambdaLR``)."""

from __future__ import annotations

import math
from functools import partial

import torch

__all__ = ["SCHEDULES", "lr_factor", "make_scheduler"]

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
