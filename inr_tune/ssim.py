"""kinograph_SSIM's machinery: the points' Hilbert order, the robust range, chunked SSIM.
``metrics.kinograph_ssim`` and ``metrics.evaluate`` are the public entry points.

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

import math
import threading

import numpy as np

from inr_tune._chunks import map_chunks as _map_chunks

__all__ = ["HILBERT_BITS", "SSIM_PERCENTILES", "spatial_order"]

SSIM_WIN = 7  # skimage's default window side (uniform window)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Percentiles (in %) of the ground-truth kinograph that bound the SSIM range; the order
#: statistics are rounded outwards (numpy's ``lower`` / ``higher``).
SSIM_PERCENTILES = (0.1, 99.9)
HILBERT_BITS = 16  # cells per axis 2¹⁶: ties only between points closer than 1.5e-5 of the box

_SSIM_CHUNK_VALUES = 1 << 17  # output pixels per SSIM chunk: the temporaries stay in cache
_SSIM_RANGE_VALUES = 1 << 24  # values per component the SSIM percentiles are taken over


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
