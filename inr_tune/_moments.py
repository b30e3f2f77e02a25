"""The one chunked statistics pass behind ``metrics`` (everything but SSIM and ranks).

``_summarise(pred, gt)`` reads both ``[T, N, C]`` arrays once, chunk by chunk over frames in
threads, and keeps per frame and component the moments every R²-type metric is merged
from; ``_frames_r2`` (R²) and ``_frames_scores`` (R², MSE, kinograph R²) merge them again
for a subset of frames (held-out, sampled) without a second pass. Inputs are validated by
``metrics._checked`` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inr_tune._chunks import CHUNK_VALUES as _CHUNK_VALUES
from inr_tune._chunks import frames_per_chunk as _frames_per_chunk
from inr_tune._chunks import map_chunks as _map_chunks


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
    # [5, T, C] per frame: gt mean (shifted), centred gt moment, SSE, gt min, gt max
    frames: np.ndarray
    n_points: int


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

    return _Summary(
        mse=float(sse.sum() / gt.size),
        r2_components=[float(v) for v in _r2(sse, m2g, constant)],
        pearson_r2=float(pearson),
        slope=float(lsq_slope),
        kinograph_r2=_kinograph(sse_t, m2g_t, gmin_t, gmax_t),
        data_range=gmax - gmin,
        equal=equal,
        sse=sse,
        max_abs=maxabs_t.max(axis=0),
        frames=np.stack([mg, m2g_t, sse_t, gmin_t, gmax_t]),
        n_points=n_points,
    )


def _frames_r2(s: _Summary, frames: np.ndarray) -> float:
    """``final_r2`` of the frames ``frames`` (a boolean mask over T) alone, merged from the
    per-frame moments of the one pass (Chan et al.), no second pass over the arrays."""
    mg, m2g_t, sse_t, gmin_t, gmax_t = s.frames[:, frames]
    d = mg - mg.mean(axis=0)
    m2g = m2g_t.sum(axis=0) + s.n_points * np.einsum("tc,tc->c", d, d)
    constant = gmin_t.min(axis=0) == gmax_t.max(axis=0)
    return float(np.mean(_r2(sse_t.sum(axis=0), m2g, constant)))


def _kinograph(
    sse_t: np.ndarray, m2g_t: np.ndarray, gmin_t: np.ndarray, gmax_t: np.ndarray
) -> float:
    """Kinograph R² from per-frame ``[T, C]`` moments: per frame across points, frames
    with a constant gt skipped; a component with none: 1.0 if it is exact, else 0.0."""
    frame_r2 = 1.0 - sse_t / np.where(m2g_t > 0, m2g_t, 1.0)
    usable = gmin_t < gmax_t
    equal = sse_t.sum(axis=0) == 0.0
    kino = np.empty(sse_t.shape[1])
    for c in range(sse_t.shape[1]):
        kino[c] = frame_r2[usable[:, c], c].mean() if usable[:, c].any() else float(equal[c])
    return float(kino.mean())


def _frames_scores(s: _Summary, frames: np.ndarray) -> tuple[float, float, float]:
    """``final_r2``, ``final_mse`` and ``kinograph_r2`` of the frames ``frames`` (a boolean
    mask over T) alone, from the per-frame moments of the one pass."""
    _, m2g_t, sse_t, gmin_t, gmax_t = s.frames[:, frames]
    mse = float(sse_t.sum() / (sse_t.size * s.n_points))
    return _frames_r2(s, frames), mse, _kinograph(sse_t, m2g_t, gmin_t, gmax_t)
