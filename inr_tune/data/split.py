"""Which frames of a window are held out (never trained on) and which are trained on.

Rule (``data.holdout`` = ``every``): frame ``k`` of a window of ``n_frames`` is held out
when ``k % every == every // 2`` — with ``every = 10`` the frames 5, 15, 25, … — except
the window's last frame, which is always trained on, so every held-out frame lies strictly
between two trained frames and can be interpolated, never extrapolated. ``every = 0``
holds nothing out. Training, evaluation and the classical baselines use these functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["holdout_frames", "train_frames"]


def _check(n_frames: int, every: int) -> None:
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)):
        raise ValueError(f"holdout every={every!r} must be an integer: 0 (none) or ≥ 2")
    if every < 0 or every == 1:
        raise ValueError(
            f"holdout every={every} is not allowed: use 0 (no held-out frames) or ≥ 2 "
            "(every=1 would hold out every frame)"
        )
    if n_frames < 0:
        raise ValueError(f"n_frames must be ≥ 0, got {n_frames}")


def holdout_frames(n_frames: int, every: int) -> np.ndarray:
    """Indices (int64, increasing) of the held-out frames of a window of ``n_frames``."""
    _check(n_frames, every)
    if every == 0:
        return np.zeros(0, dtype=np.int64)
    k = np.arange(every // 2, n_frames, every, dtype=np.int64)
    return k[k < n_frames - 1]


def train_frames(n_frames: int, every: int) -> np.ndarray:
    """Indices (int64, increasing) of the frames trained on: all the others."""
    mask = np.ones(n_frames, dtype=bool)
    mask[holdout_frames(n_frames, every)] = False
    return np.flatnonzero(mask).astype(np.int64)
