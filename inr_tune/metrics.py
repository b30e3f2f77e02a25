"""Metrics on arrays (pure functions; no Ray, Lightning or torch). Definitions: DESIGN.md.

Every metric takes ``pred`` and ``gt`` of shape ``[T, N, C]`` (frames, points, components)
in raw units and validates them (3-D, same shape, real numbers, finite; ``ValueError``
otherwise). Sums are accumulated in float64 chunk by chunk over frames, so a
64000 × 1736 × 1 float32 pair never gets a whole-array float64 copy.

Definitional choices (also tested in ``tests/test_metrics.py``):

- **Constant ground truth.** Where SST = 0 (the ground truth is constant over the values
  an R² is taken over), R² is 1.0 if the prediction equals it exactly (SSE = 0) and 0.0
  otherwise. torchmetrics applies the same rule, but with an absolute tolerance of 1e-4 on
  SSE and SST, which depends on units (the MPM stress field is ~4e-4): here "zero" means
  exactly zero (the ground truth's min equals its max). The same rule gives
  ``pearson_r2`` and ``slope`` when the flattened ground truth or prediction is constant,
  ``kinograph_R2`` for a component whose every frame is constant over points, and
  ``kinograph_SSIM`` for a component whose kinograph is constant (data_range = 0).
- **kinograph_SSIM**: its definition, and the three ways it differs from DESIGN.md
  (Hilbert point order, robust range, clipping), is in ``inr_tune.ssim``'s docstring.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from inr_tune._chunks import CHUNK_VALUES as _CHUNK_VALUES
from inr_tune._chunks import frames_per_chunk as _frames_per_chunk
from inr_tune._moments import _frames_r2, _frames_scores, _summarise, _Summary
from inr_tune.spectrum import data_ranks, effective_ranks, window_ranks
from inr_tune.ssim import (
    _point_order,
    _ssim_components,
    _ssim_limits,
    spatial_order,
)

__all__ = [
    "FLYVIS_CLASSES",
    "MPM_CLASSES",
    "PSNR_CAP",
    "compression_ratio",
    "count_values",
    "data_ranks",
    "effective_ranks",
    "evaluate",
    "final_mse",
    "final_r2",
    "kinograph_r2",
    "kinograph_ssim",
    "max_abs_error",
    "pearson_r2",
    "psnr",
    "quality_class",
    "quick_scores",
    "r2_components",
    "slope",
    "spatial_order",
    "window_ranks",
]

# Quality classes, best first: a class holds R² ≥ its threshold, except the best class,
# which needs R² > its threshold (the experiments' wording: "excellent > 0.995",
# "good 0.99–0.995", "moderate 0.90–0.99", "poor < 0.90"). Below the last one: "poor".
MPM_CLASSES: Mapping[str, float] = MappingProxyType(
    {"excellent": 0.995, "good": 0.99, "moderate": 0.90}
)
FLYVIS_CLASSES: Mapping[str, float] = MappingProxyType(
    {"excellent": 0.95, "good": 0.8, "moderate": 0.5}
)
POOR = "poor"

PSNR_CAP = 200.0  # dB: float32 round-off of a field is ~140 dB below its range


# ---------------------------------------------------------------------------- validation


def _checked(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as ndarrays after the shape, dtype and finiteness checks."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    for name, a in (("pred", pred), ("gt", gt)):
        if a.ndim != 3:
            raise ValueError(f"{name} must be a 3-D array [T, N, C], got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers (float or int), got dtype {a.dtype}")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred and gt must have the same shape [T, N, C], got {pred.shape} and {gt.shape}"
        )
    if pred.size == 0:
        raise ValueError(f"pred and gt must be non-empty, got shape {pred.shape}")
    step = _frames_per_chunk(gt.shape, _CHUNK_VALUES)
    for name, a in (("pred", pred), ("gt", gt)):
        if np.issubdtype(a.dtype, np.integer):
            continue
        for start in range(0, a.shape[0], step):
            block = a[start : start + step]
            if not np.isfinite(block).all():
                bad = start + int(np.argmin(np.isfinite(block).all(axis=(1, 2))))
                raise ValueError(
                    f"{name} must be finite, found NaN or inf at frame {bad}; "
                    "drop or repair such frames before computing metrics"
                )
    return pred, gt


# ------------------------------------------------------------------------ public API


def final_mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean of (pred − gt)² over all frames, points and components (raw units)."""
    return _summarise(*_checked(pred, gt)).mse


def r2_components(pred: np.ndarray, gt: np.ndarray) -> list[float]:
    """R²_c = 1 − SSE_c / SST_c per component over all (t, n); SST about the component mean."""
    return _summarise(*_checked(pred, gt)).r2_components


def final_r2(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over components of R²_c: the true coefficient of determination, not r²."""
    return float(np.mean(r2_components(pred, gt)))


def pearson_r2(pred: np.ndarray, gt: np.ndarray) -> float:
    """Squared Pearson correlation of pred and gt, flattened (the older tools' "R²").

    Blind to gain and offset: pred = 2·gt + 1 scores 1.0. Kept for comparison only.
    """
    return _summarise(*_checked(pred, gt)).pearson_r2


def slope(pred: np.ndarray, gt: np.ndarray) -> float:
    """Least-squares slope b of pred ≈ a + b·gt, flattened (the older tools' ``slope``)."""
    return _summarise(*_checked(pred, gt)).slope


def kinograph_r2(pred: np.ndarray, gt: np.ndarray) -> float:
    """Per component: R² across points at each frame (SST about that frame's mean), mean
    over frames whose gt is not constant, then mean over components. No slope correction.
    """
    return _summarise(*_checked(pred, gt)).kinograph_r2


def kinograph_ssim(
    pred: np.ndarray, gt: np.ndarray, *, positions: np.ndarray | None = None
) -> float:
    """SSIM of the [T, N] kinographs of gt vs pred per component, mean over components.

    The point axis is in ``spatial_order(positions)`` (``[N, 2]``, or ``[T, N, 2]`` read
    at its first frame); without positions it stays in index order (data without
    positions; a window's positions belong to the data, not the model, so siren_t and
    siren_id trials get them too). Both kinographs are clipped to the 0.1 % / 99.9 %
    order statistics of the ground truth's, which also set data_range; window and
    constants as skimage's defaults (module docstring).
    """
    pred, gt = _checked(pred, gt)
    order = _point_order(positions, gt.shape[1])
    return float(np.mean(_ssim_components(pred, gt, _ssim_limits(gt), order)))


def _psnr(s: _Summary, n_per_component: int) -> float:
    """Mean over components of 20·log10(range_c / RMSE_c); constant components are skipped,
    an exact component counts as ``PSNR_CAP`` (so one exact component cannot make it inf)."""
    values = []
    for rng, sse in zip(s.data_range, s.sse, strict=True):
        if rng <= 0:
            continue
        rmse = math.sqrt(sse / n_per_component)
        values.append(PSNR_CAP if rmse == 0 else min(PSNR_CAP, 20.0 * math.log10(rng / rmse)))
    return float(np.mean(values)) if values else PSNR_CAP


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over components of 20·log10(range_c / RMSE_c), range_c = max − min of gt (dB).

    Components whose ground truth is constant are left out; capped at ``PSNR_CAP`` dB.
    """
    pred, gt = _checked(pred, gt)
    return _psnr(_summarise(pred, gt), gt.shape[0] * gt.shape[1])


def max_abs_error(pred: np.ndarray, gt: np.ndarray) -> list[float]:
    """Largest |pred − gt| per component (raw units)."""
    return [float(v) for v in _summarise(*_checked(pred, gt)).max_abs]


def count_values(shape: Sequence[int]) -> int:
    """Number of values in an array of ``shape`` (T·N·C for a ``[T, N, C]`` field)."""
    dims = [int(d) for d in shape]
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"shape must be non-empty with positive sizes, got {tuple(shape)}")
    return math.prod(dims)


def compression_ratio(n_values: int, total_params: int) -> float:
    """Values represented per network parameter: (T·N·C) / total_params."""
    if n_values <= 0:
        raise ValueError(f"n_values must be positive, got {n_values}")
    if total_params <= 0:
        raise ValueError(f"total_params must be positive, got {total_params}")
    return n_values / total_params


def evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    positions: np.ndarray | None = None,
    ranks: bool = False,
    rank_top: int | None = None,
    ssim_limits: tuple[np.ndarray, np.ndarray] | None = None,
    holdout: np.ndarray | None = None,
) -> dict[str, float | int | list[float] | None]:
    """All array metrics of DESIGN.md for one training window ``[T, N, C]`` (raw units).

    Keys: final_mse, final_r2, r2_components, pearson_r2, slope, kinograph_R2,
    kinograph_SSIM, psnr, max_abs_error (per component), and rank_90, rank_99 (of gt; ``rank_top`` as in ``effective_ranks``)
    when ``ranks`` is true. ``positions`` (the window's, ``[N, 2]`` or ``[T, N, 2]``) order
    the kinographs' point axis for kinograph_SSIM (``kinograph_ssim``); None: index order.
    ``ssim_limits``: ``ssim._ssim_limits(gt)`` when the caller already has them (a trial
    evaluates the same ground truth at every snapshot and at its end); None: computed here.
    ``holdout`` (frame indices into T): also ``holdout_r2`` (``final_r2`` of those frames;
    None when there are none), ``train_r2`` (of the others; of all when none are held out)
    and ``holdout_frames``, from the same pass.
    """
    pred, gt = _checked(pred, gt)
    limits = _ssim_limits(gt) if ssim_limits is None else ssim_limits
    order = _point_order(positions, gt.shape[1])
    s = _summarise(pred, gt)
    out: dict[str, float | int | list[float] | None] = {
        "final_mse": s.mse,
        "final_r2": float(np.mean(s.r2_components)),
        "r2_components": s.r2_components,
        "pearson_r2": s.pearson_r2,
        "slope": s.slope,
        "kinograph_R2": s.kinograph_r2,
        "kinograph_SSIM": float(np.mean(_ssim_components(pred, gt, limits, order))),
        "psnr": _psnr(s, gt.shape[0] * gt.shape[1]),
        "max_abs_error": [float(v) for v in s.max_abs],
    }
    if holdout is not None:
        held = np.zeros(gt.shape[0], dtype=bool)
        held[np.asarray(holdout, dtype=np.int64)] = True
        n_held = int(held.sum())
        out["holdout_r2"] = _frames_r2(s, held) if n_held else None
        out["train_r2"] = _frames_r2(s, ~held) if n_held < len(held) else None
        out["holdout_frames"] = n_held
    if ranks:
        out.update(data_ranks(gt, top=rank_top))
    return out


def quick_scores(
    pred: np.ndarray, gt: np.ndarray, sample: np.ndarray, holdout: np.ndarray
) -> dict[str, float | None]:
    """The periodic evaluation's metrics from one pass over ``[T, N, C]``: ``final_r2``,
    ``final_mse`` and ``kinograph_R2`` of the frames ``sample`` (a boolean mask over T),
    ``holdout_r2`` of the frames ``holdout`` (a mask; None when it selects none). Each
    equals the metric of the same name computed on that subset of frames alone."""
    s = _summarise(*_checked(pred, gt))
    r2, mse, kino = _frames_scores(s, np.asarray(sample, dtype=bool))
    held = np.asarray(holdout, dtype=bool)
    return {
        "final_r2": r2,
        "holdout_r2": _frames_r2(s, held) if held.any() else None,
        "final_mse": mse,
        "kinograph_R2": kino,
    }


def quality_class(r2: float, thresholds: Mapping[str, float]) -> str:
    """Name of the class ``r2`` falls in; ``thresholds`` maps names to lower bounds, best first.

    The best class needs ``r2 >`` its bound, every other class ``r2 ≥`` its bound, and
    anything below the last bound (or NaN) is ``"poor"``: with ``MPM_CLASSES``, 0.995 is
    "good", 0.99 is "good", 0.90 is "moderate", 0.8999 is "poor".
    """
    bounds = list(thresholds.values())
    if not bounds:
        raise ValueError("thresholds must name at least one class, e.g. MPM_CLASSES")
    if any(later >= earlier for earlier, later in itertools.pairwise(bounds)):
        raise ValueError(f"thresholds must decrease from the best class, got {dict(thresholds)}")
    for i, (name, bound) in enumerate(thresholds.items()):
        if (r2 > bound) if i == 0 else (r2 >= bound):
            return name
    return POOR
