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
- **SSIM** follows ``skimage.metrics.structural_similarity`` with its defaults: a uniform
  7 × 7 window, K1 = 0.01, K2 = 0.03, sample covariance (× NP/(NP − 1)), and the mean of
  the SSIM map over the positions whose window lies inside the image (skimage crops
  (win − 1)/2 at every border, so its padding mode never matters). The kinograph is
  taken in float64. It equals skimage's value on float64 images (tested to 1e-9) but runs
  chunked, in threads, and in bounded memory. Where T or N is below 7 the window side
  along that axis shrinks to the largest odd number ≤ that side (skimage would refuse the
  image); with a 1 × 1 window (T ≤ 2 and N ≤ 2) no covariance can be estimated and SSIM
  reduces to its luminance term.
- **kinograph_SSIM differs from DESIGN.md** ("SSIM of K_gt vs K_pred, data_range =
  max(K_gt) − min(K_gt)") in three ways (issue 11 §4):

  1. *Point order.* The kinograph's columns are the points along a Hilbert curve of their
     positions at the window's first frame (``spatial_order``), not their index: SSIM's
     7 × 7 windows compare local structure, and an index has no spatial meaning (MPM
     particles are uniform at random within each disc). On the default MPM window this
     brings the median distance between neighbouring columns from 0.078 to 0.0078 (one
     grid cell). Without positions (``positions=None``) the index order is kept.
  2. *Robust range.* With n values in the ground-truth kinograph, lo and hi are its order
     statistics of ranks ⌊0.001·(n − 1)⌋ and ⌈0.999·(n − 1)⌉ (``SSIM_PERCENTILES``, numpy
     ``lower``/``higher``), and data_range = hi − lo sets C1 = (K1·range)², C2 =
     (K2·range)². Max − min is set by a few extreme values (MPM C: 671 against 198 for
     0.1–99.9 %; Jp: 1172 against 419) and a range that wide makes C1, C2 large enough to
     hide errors of the bulk. Rounded outwards so lo, hi are actual values and a
     kinograph of ≤ 1000 values keeps its min–max range. When lo = hi (≥ 99.8 % of the
     values equal) the min and max are used instead.
  3. *Clipping.* Both kinographs are clipped to [lo, hi] before SSIM. SSIM's constants
     assume values within data_range; left unclipped, each extreme value would set the
     variance of the ~49 windows around it and decide their score alone, bringing the
     outliers back in through the window statistics. The extremes stay measured by R²,
     ``psnr`` and ``max_abs_error``; a prediction outside [lo, hi] where the ground truth
     is inside is still penalised (by at least the distance to the limit).

  A constant kinograph (min = max) keeps the rule above; skimage's SSIM of the ordered,
  clipped kinographs with data_range hi − lo is what ``kinograph_ssim`` returns (tested).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

import numpy as np

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

SSIM_WIN = 7  # skimage's default window side (uniform window)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Percentiles (in %) of the ground-truth kinograph that bound the SSIM range; the order
#: statistics are rounded outwards (numpy's ``lower`` / ``higher``).
SSIM_PERCENTILES = (0.1, 99.9)
HILBERT_BITS = 16  # cells per axis 2¹⁶: ties only between points closer than 1.5e-5 of the box

_CHUNK_VALUES = 1 << 20  # values per chunk (8 MiB as float64) for the statistics pass
_SSIM_CHUNK_VALUES = 1 << 17  # output pixels per SSIM chunk: the temporaries stay in cache
_SSIM_RANGE_VALUES = 1 << 24  # values per component the SSIM percentiles are taken over

_R = TypeVar("_R")


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


def _frames_per_chunk(shape: tuple[int, ...], values: int) -> int:
    per_frame = max(1, math.prod(shape[1:]))
    return max(1, values // per_frame)


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _map_chunks(fn: Callable[[int, int], _R], n: int, step: int) -> list[_R]:
    """``fn(start, stop)`` over ``[0, n)`` in steps; threads when there are several chunks.

    numpy releases the GIL inside its loops, so the chunks run in parallel.
    """
    bounds = [(a, min(a + step, n)) for a in range(0, n, step)]
    workers = min(_workers(), len(bounds))
    if workers <= 1:
        return [fn(a, b) for a, b in bounds]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda ab: fn(*ab), bounds))


# ------------------------------------------------------------------ one statistics pass


@dataclass(frozen=True)
class _Summary:
    """Everything except SSIM and ranks, from one chunked pass over both arrays."""

    mse: float
    r2_components: list[float]
    pearson_r2: float
    slope: float
    kinograph_r2: float
    data_range: np.ndarray  # [C] max − min of gt per component
    equal: np.ndarray  # [C] bool: pred == gt exactly on that component
    sse: np.ndarray  # [C] sum of squared errors per component
    max_abs: np.ndarray  # [C] largest |pred − gt| per component


def _r2(sse: np.ndarray, sst: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """1 − SSE/SST; where the target is constant: 1.0 if SSE = 0 else 0.0."""
    out = np.where(sse == 0.0, 1.0, 0.0)
    ok = ~constant
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return out


def _float64_tcn(block: np.ndarray) -> np.ndarray:
    """A ``[t, n, c]`` block as a contiguous float64 ``[t, c, n]`` array."""
    out = np.empty((block.shape[0], block.shape[2], block.shape[1]), dtype=np.float64)
    out[...] = block.transpose(0, 2, 1)
    return out


def _summarise(pred: np.ndarray, gt: np.ndarray) -> _Summary:
    n_frames, n_points, n_comp = gt.shape
    # Per frame and component: means, centred second moments, SSE, min and max of gt.
    stats = np.empty((9, n_frames, n_comp), dtype=np.float64)

    # Values are shifted by each array's first value per component before the float64
    # sums: better conditioned, and a constant component gives exactly zero moments.
    ref_g = gt[0, 0].astype(np.float64)
    ref_p = pred[0, 0].astype(np.float64)

    def frame_stats(a: int, b: int) -> None:
        # [t, c, n] float64 copies: numpy reduces a contiguous last axis much faster.
        g = _float64_tcn(gt[a:b])
        p = _float64_tcn(pred[a:b])
        diff = p - g
        s = stats[:, a:b]
        s[5] = np.einsum("tcn,tcn->tc", diff, diff)
        s[8] = np.abs(diff).max(axis=2)
        del diff
        s[6] = g.min(axis=2)
        s[7] = g.max(axis=2)
        g -= ref_g[:, None]
        p -= ref_p[:, None]
        s[0] = mg = g.mean(axis=2)
        s[1] = mp = p.mean(axis=2)
        g -= mg[:, :, None]
        p -= mp[:, :, None]
        s[2] = np.einsum("tcn,tcn->tc", g, g)
        s[3] = np.einsum("tcn,tcn->tc", p, p)
        s[4] = np.einsum("tcn,tcn->tc", g, p)

    _map_chunks(frame_stats, n_frames, _frames_per_chunk(gt.shape, _CHUNK_VALUES))
    mg, mp, m2g_t, m2p_t, cgp_t, sse_t, gmin_t, gmax_t, maxabs_t = stats

    # Per component over all (t, n): merge the frames' centred moments (Chan et al.).
    n = n_frames * n_points
    mu_g, mu_p = mg.mean(axis=0), mp.mean(axis=0)
    dg, dp = mg - mu_g, mp - mu_p
    m2g = m2g_t.sum(axis=0) + n_points * np.einsum("tc,tc->c", dg, dg)
    m2p = m2p_t.sum(axis=0) + n_points * np.einsum("tc,tc->c", dp, dp)
    cgp = cgp_t.sum(axis=0) + n_points * np.einsum("tc,tc->c", dg, dp)
    sse = sse_t.sum(axis=0)
    gmin, gmax = gmin_t.min(axis=0), gmax_t.max(axis=0)
    constant = gmin == gmax
    equal = sse == 0.0

    # Flattened over components as well (pearson_r2 and slope).
    mean_g, mean_p = mu_g + ref_g, mu_p + ref_p
    pg, pp = mean_g - mean_g.mean(), mean_p - mean_p.mean()
    var_g = m2g.sum() + n * float(pg @ pg)
    var_p = m2p.sum() + n * float(pp @ pp)
    cov = cgp.sum() + n * float(pg @ pp)
    # A constant array has exactly zero moments here; do not trust a rounding residue
    # in the spread of component means when all components hold the same constant.
    if not m2g.any() and np.ptp(mean_g) == 0:
        var_g = 0.0
    if not m2p.any() and np.ptp(mean_p) == 0:
        var_p = 0.0
    fallback = 1.0 if bool(equal.all()) else 0.0
    pearson = cov * cov / (var_g * var_p) if var_g > 0 and var_p > 0 else fallback
    lsq_slope = cov / var_g if var_g > 0 else fallback

    # Kinograph R²: per frame across points, frames with a constant gt skipped.
    frame_r2 = 1.0 - sse_t / np.where(m2g_t > 0, m2g_t, 1.0)
    usable = gmin_t < gmax_t
    kino = np.empty(n_comp)
    for c in range(n_comp):
        kino[c] = frame_r2[usable[:, c], c].mean() if usable[:, c].any() else float(equal[c])

    return _Summary(
        mse=float(sse.sum() / gt.size),
        r2_components=[float(v) for v in _r2(sse, m2g, constant)],
        pearson_r2=float(pearson),
        slope=float(lsq_slope),
        kinograph_r2=float(kino.mean()),
        data_range=gmax - gmin,
        equal=equal,
        sse=sse,
        max_abs=maxabs_t.max(axis=0),
    )


# -------------------------------------------------------------------- spatial order


def _hilbert_index(ix: np.ndarray, iy: np.ndarray, bits: int) -> np.ndarray:
    """Distance along the Hilbert curve of the cells (ix, iy) of a 2^bits × 2^bits grid.

    The classic ``xy2d`` bit loop (as on Wikipedia's "Hilbert curve" page), vectorised
    over points: one pass per bit, most significant first; int64 (bits ≤ 31).
    """
    x = np.asarray(ix, dtype=np.int64).copy()
    y = np.asarray(iy, dtype=np.int64).copy()
    d = np.zeros_like(x)
    full = (1 << bits) - 1
    s = 1 << (bits - 1)
    while s:
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        # rotate the quadrant so the sub-curve starts and ends where the parent expects
        flip = rx & ~ry
        x[flip] = full - x[flip]
        y[flip] = full - y[flip]
        swap = ~ry
        x[swap], y[swap] = y[swap], x[swap]
        s >>= 1
    return d


def spatial_order(positions: np.ndarray) -> np.ndarray:
    """Point indices sorted along a Hilbert curve of their positions: a permutation of N.

    ``positions`` is ``[N, 2]`` (static points, e.g. the fly-eye lattice) or ``[T, N, 2]``
    (moving points, e.g. MPM particles: the order is taken at frame 0, the window's first
    frame, and kept for the whole window). Both axes are scaled by the larger side of the
    bounding box (aspect kept) onto a 2^16 × 2^16 grid; points in one cell, or all points
    when they coincide, keep their index order. A Hilbert curve rather than a Morton
    (Z-order) curve: consecutive cells are always neighbours, so consecutive points are
    close (Morton jumps across the box at every power-of-two boundary).
    """
    pos = np.asarray(positions)
    if pos.ndim == 3:
        pos = pos[0]
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] == 0:
        raise ValueError(
            f"positions must be [N, 2] or [T, N, 2] with N ≥ 1, got shape {np.shape(positions)}"
        )
    if not (np.issubdtype(pos.dtype, np.floating) or np.issubdtype(pos.dtype, np.integer)):
        raise ValueError(f"positions must hold real numbers, got dtype {pos.dtype}")
    pos = pos.astype(np.float64)
    if not np.isfinite(pos).all():
        raise ValueError("positions must be finite, found NaN or inf at the first frame")
    lo = pos.min(axis=0)
    extent = float((pos.max(axis=0) - lo).max())
    if extent == 0.0:
        return np.arange(pos.shape[0])
    cells = 1 << HILBERT_BITS
    q = np.minimum(((pos - lo) / extent * cells).astype(np.int64), cells - 1)
    return np.argsort(_hilbert_index(q[:, 0], q[:, 1], HILBERT_BITS), kind="stable")


def _point_order(positions: np.ndarray | None, n_points: int) -> np.ndarray | None:
    """``spatial_order(positions)`` checked against N; None (index order) without positions."""
    if positions is None:
        return None
    order = spatial_order(positions)
    if order.size != n_points:
        raise ValueError(
            f"positions must hold the N = {n_points} points of pred and gt, "
            f"got shape {np.shape(positions)}"
        )
    return order


# ----------------------------------------------------------------------------- SSIM


def _ssim_window(n_frames: int, n_points: int) -> tuple[int, int]:
    """skimage's 7-wide window, shrunk to the largest odd side that fits where needed."""

    def side(n: int) -> int:
        return min(SSIM_WIN, n if n % 2 else n - 1)

    return side(n_frames), side(n_points)


class _SsimWork:
    """Reused float64 buffers for SSIM chunks of up to ``rows`` output rows.

    Fresh arrays of this size cost page faults on every chunk; reusing them halves the time.
    """

    def __init__(self, rows: int, n_points: int, wt: int, wn: int) -> None:
        cols = n_points - wn + 1
        self.x = np.empty((rows + wt - 1, n_points))
        self.y = np.empty_like(self.x)
        self.sq = np.empty_like(self.x)
        self.tmp = np.empty_like(self.x)
        self.rowsum = np.empty((rows, n_points))
        self.maps = np.empty((5, rows, cols))


def _box_into(a: np.ndarray, rowsum: np.ndarray, out: np.ndarray, wt: int, wn: int) -> None:
    """``out`` = sums over every wt × wn window lying inside ``a`` (the valid positions)."""
    rows, cols = out.shape
    np.copyto(rowsum, a[:rows])
    for k in range(1, wt):
        np.add(rowsum, a[k : k + rows], out=rowsum)
    np.copyto(out, rowsum[:, :cols])
    for k in range(1, wn):
        np.add(out, rowsum[:, k : k + cols], out=out)


def _ssim_sum(
    x: np.ndarray, y: np.ndarray, wt: int, wn: int, c1: float, c2: float, work: _SsimWork
) -> float:
    """Sum of skimage's SSIM map over the valid positions of float64 images x, y.

    ``x``, ``y`` and the scratch arrays are views into ``work`` sized for this chunk.
    """
    rows_in = x.shape[0]
    rows = rows_in - wt + 1
    npix = wt * wn
    cov_norm = npix / (npix - 1) if npix > 1 else 1.0
    maps = work.maps[:, :rows]
    ux, uy, sq, vxy, a1 = maps
    rowsum, xx, yy = work.rowsum[:rows], work.sq[:rows_in], work.tmp[:rows_in]
    _box_into(x, rowsum, ux, wt, wn)
    _box_into(y, rowsum, uy, wt, wn)
    # Only vx + vy enters SSIM, so x² and y² share one box sum.
    np.multiply(x, x, out=xx)
    np.multiply(y, y, out=yy)
    xx += yy
    _box_into(xx, rowsum, sq, wt, wn)
    np.multiply(x, y, out=xx)
    _box_into(xx, rowsum, vxy, wt, wn)
    maps[:4] *= 1.0 / npix  # window means of x, y, x² + y², x·y
    np.multiply(ux, uy, out=a1)
    vxy -= a1
    vxy *= 2.0 * cov_norm
    vxy += c2  # A2 = 2·cov(x, y) + C2
    ux *= ux
    uy *= uy
    ux += uy  # ux² + uy²
    sq -= ux
    sq *= cov_norm
    sq += c2  # B2 = var(x) + var(y) + C2
    ux += c1  # B1 = ux² + uy² + C1
    a1 *= 2.0
    a1 += c1  # A1 = 2·ux·uy + C1
    a1 *= vxy
    ux *= sq
    a1 /= ux
    return float(a1.sum(dtype=np.float64))


def _ssim_limits(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component: the SSIM clipping limits (lo, hi) of the ground-truth kinograph.

    lo, hi = the ``SSIM_PERCENTILES`` order statistics rounded outwards (ranks
    ⌊p·(n − 1)⌋ and ⌈q·(n − 1)⌉, numpy's ``lower`` / ``higher``): two actual values, and a
    kinograph of ≤ 1000 values keeps its min and max. Where they coincide (≥ 99.8 % of the
    values equal) the limits fall back to the min and max, so only a constant kinograph
    has lo = hi. Above ``_SSIM_RANGE_VALUES`` values per component the percentiles are
    taken over every k-th frame (a deterministic subsample; the fallback stays exact).
    """
    n_frames, n_points, n_comp = gt.shape
    step = max(1, math.ceil(n_frames * n_points / _SSIM_RANGE_VALUES))
    lo, hi = np.empty(n_comp), np.empty(n_comp)
    for c in range(n_comp):
        v = gt[::step, :, c].flatten()  # a copy in gt's dtype, partitioned in place
        top = v.size - 1
        k_lo = math.floor(SSIM_PERCENTILES[0] / 100 * top)
        k_hi = math.ceil(SSIM_PERCENTILES[1] / 100 * top)
        v.partition([k_lo, k_hi])
        lo[c], hi[c] = float(v[k_lo]), float(v[k_hi])
        if lo[c] == hi[c]:
            lo[c], hi[c] = float(gt[:, :, c].min()), float(gt[:, :, c].max())
    return lo, hi


def _ssim_components(
    pred: np.ndarray,
    gt: np.ndarray,
    limits: tuple[np.ndarray, np.ndarray],
    order: np.ndarray | None,
) -> list[float]:
    """SSIM of the kinographs gt[:, order, c] vs pred[:, order, c], both clipped to
    ``limits`` (lo, hi per component), data_range hi − lo, per component (module docstring).
    """
    n_frames, n_points, n_comp = gt.shape
    wt, wn = _ssim_window(n_frames, n_points)
    out_rows, out_cols = n_frames - wt + 1, n_points - wn + 1
    step = min(out_rows, max(1, _SSIM_CHUNK_VALUES // out_cols))
    works: dict[int, _SsimWork] = {}  # one set of buffers per thread, freed on return
    points = slice(None) if order is None else order

    def work() -> _SsimWork:
        key = threading.get_ident()
        if key not in works:
            works[key] = _SsimWork(step, n_points, wt, wn)
        return works[key]

    scores = []
    for c in range(n_comp):
        lo, hi = float(limits[0][c]), float(limits[1][c])
        rng = hi - lo
        if rng == 0.0:  # constant kinograph: the same rule as R² with SST = 0
            scores.append(1.0 if np.array_equal(pred[:, :, c], gt[:, :, c]) else 0.0)
            continue
        c1, c2 = (SSIM_K1 * rng) ** 2, (SSIM_K2 * rng) ** 2

        def chunk(
            a: int,
            b: int,
            c: int = c,
            lo: float = lo,
            hi: float = hi,
            c1: float = c1,
            c2: float = c2,
        ) -> float:
            w = work()
            x, y = w.x[: b - a + wt - 1], w.y[: b - a + wt - 1]
            np.copyto(x, gt[a : b + wt - 1, points, c], casting="unsafe")
            np.copyto(y, pred[a : b + wt - 1, points, c], casting="unsafe")
            np.clip(x, lo, hi, out=x)
            np.clip(y, lo, hi, out=y)
            return _ssim_sum(x, y, wt, wn, c1, c2, w)

        total = math.fsum(_map_chunks(chunk, out_rows, step))
        scores.append(total / (out_rows * out_cols))
    return scores


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


def _grams(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices of ``x`` [m, p], uncentred and with the column means removed.

    Each is x·xᵀ or xᵀ·x, whichever is smaller, in float64, accumulated over chunks of
    about ``_CHUNK_VALUES`` values (columns when m ≤ p, rows otherwise), so no float64
    copy of ``x`` is made. The centred one is summed from centred chunks, exact however
    large the means; the uncentred one adds the means' terms back to it (positive energy,
    no cancellation): X = X_c + 1·μᵀ gives X·Xᵀ = X_c·X_cᵀ + v·1ᵀ + 1·vᵀ + |μ|²·1·1ᵀ with
    v = X_c·μ, and Xᵀ·X = X_cᵀ·X_c + m·μ·μᵀ.
    """
    rows, cols = x.shape
    if rows <= cols:  # a chunk holds whole columns: its column means are exact
        gram_c = np.zeros((rows, rows))
        v = np.zeros(rows)
        mu2 = 0.0
        step = max(1, _CHUNK_VALUES // max(1, rows))
        for a in range(0, cols, step):
            block = np.array(x[:, a : a + step], dtype=np.float64)
            mu = block.mean(axis=0)
            block -= mu
            gram_c += block @ block.T
            v += block @ mu
            mu2 += float(mu @ mu)
        return gram_c + v[:, None] + v[None, :] + mu2, gram_c
    step = max(1, _CHUNK_VALUES // max(1, cols))
    mu = np.zeros(cols)
    for a in range(0, rows, step):
        mu += np.asarray(x[a : a + step]).sum(axis=0, dtype=np.float64)
    mu /= rows
    gram_c = np.zeros((cols, cols))
    for a in range(0, rows, step):
        block = np.asarray(x[a : a + step], dtype=np.float64) - mu
        gram_c += block.T @ block
    return gram_c + rows * np.outer(mu, mu), gram_c


def _ranks_of(gram: np.ndarray, fractions: Sequence[float], top: int | None) -> list[int]:
    """Smallest k whose top-k eigenvalues of ``gram`` (the σ²) hold ≥ each fraction."""
    energy = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    if top is not None:
        energy = energy[:top]
    total = energy.sum()
    if total <= 0:
        return [0 for _ in fractions]
    cum = np.cumsum(energy) / total
    return [int(np.searchsorted(cum, f - 1e-12) + 1) for f in fractions]


def effective_ranks(
    matrix: np.ndarray,
    fractions: tuple[float, ...] = (0.9, 0.99),
    top: int | None = None,
    *,
    centred: bool = False,
) -> list[int]:
    """Smallest k whose top-k singular values hold ≥ fraction of Σσ².

    ``matrix`` is ``[T, M]``, uncentred unless ``centred`` (each column's mean removed).
    ``top`` restricts Σσ² to the ``top`` largest singular values (the older tools' way
    used ``top=50``); ``None`` uses all of them. The σ² are the eigenvalues of the smaller
    Gram matrix (``_grams``): cheaper than a full SVD.
    """
    gram, gram_c = _grams(np.asarray(matrix))
    return _ranks_of(gram_c if centred else gram, fractions, top)


def data_ranks(values: np.ndarray, *, top: int | None = None) -> dict[str, int]:
    """``rank_90`` and ``rank_99`` of a ``[T, N, C]`` field as the uncentred [T, N·C] matrix."""
    v = np.asarray(values)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"values must be a non-empty 3-D array [T, N, C], got shape {v.shape}")
    r90, r99 = effective_ranks(v.reshape(v.shape[0], -1), (0.9, 0.99), top=top)
    return {"rank_90": r90, "rank_99": r99}


def window_ranks(values: np.ndarray) -> dict[str, int]:
    """``rank_90``, ``rank_99`` (uncentred) and ``centred_rank_90``, ``centred_rank_99``
    (each column's mean removed) of a ``[T, N, C]`` window as the [T, N·C] matrix, over
    the full spectrum, from one pass over the values (``_grams``)."""
    v = np.asarray(values)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"values must be a non-empty 3-D array [T, N, C], got shape {v.shape}")
    gram, gram_c = _grams(v.reshape(v.shape[0], -1))
    r90, r99 = _ranks_of(gram, (0.9, 0.99), None)
    c90, c99 = _ranks_of(gram_c, (0.9, 0.99), None)
    return {"rank_90": r90, "rank_99": r99, "centred_rank_90": c90, "centred_rank_99": c99}


def evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    positions: np.ndarray | None = None,
    ranks: bool = False,
    rank_top: int | None = None,
) -> dict[str, float | list[float]]:
    """All array metrics of DESIGN.md for one training window ``[T, N, C]`` (raw units).

    Keys: final_mse, final_r2, r2_components, pearson_r2, slope, kinograph_R2,
    kinograph_SSIM, psnr, max_abs_error (per component), and rank_90, rank_99 (of gt; ``rank_top`` as in ``effective_ranks``)
    when ``ranks`` is true. ``positions`` (the window's, ``[N, 2]`` or ``[T, N, 2]``) order
    the kinographs' point axis for kinograph_SSIM (``kinograph_ssim``); None: index order.
    """
    pred, gt = _checked(pred, gt)
    order = _point_order(positions, gt.shape[1])
    s = _summarise(pred, gt)
    out: dict[str, float | list[float]] = {
        "final_mse": s.mse,
        "final_r2": float(np.mean(s.r2_components)),
        "r2_components": s.r2_components,
        "pearson_r2": s.pearson_r2,
        "slope": s.slope,
        "kinograph_R2": s.kinograph_r2,
        "kinograph_SSIM": float(np.mean(_ssim_components(pred, gt, _ssim_limits(gt), order))),
        "psnr": _psnr(s, gt.shape[0] * gt.shape[1]),
        "max_abs_error": [float(v) for v in s.max_abs],
    }
    if ranks:
        out.update(data_ranks(gt, top=rank_top))
    return out


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
