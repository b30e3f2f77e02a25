"""Classical compressors beside each INR trial: fidelity against compression ratio.

For a field window ``values`` float32 ``[T, N, C]`` each baseline compresses only the
training frames (``inr_tune.data.split``), reconstructs the held-out frames by linear
interpolation in time, and counts its ratio like an INR's: T·N·C values of the whole
window over the stored float32-equivalent values (stored bytes / 4).

- **pca**: truncated SVD of the ``[T_train, N·C]`` matrix after subtracting the column
  means and scaling component c by 1/√SST_c, so the truncation optimises the mean over
  components of R². Stored: k·(T_train + N·C) + N·C + C values. Ranks 1–16, then every
  2nd to 32, every 4th to 64, while the ratio is ≥ 2 and until R² reaches 1 − 1e-7 (or
  1 − 1e-8 on the training frames alone); all from one eigendecomposition of the smaller
  Gram matrix, scored by updating the residual rank block by rank block. Held-out frames:
  the time coefficients interpolated linearly (``np.interp`` per rank).
- **zfp** (zfpy): fixed accuracy (tolerance 3e-1 … 1e-5 × the component's range) and
  fixed rate (1, 2, 4, 8, 16 bits per value).
- **sz3** (pysz): relative error bounds 1e-1 … 1e-5 (relative to the component's range).

Layout for zfp and sz3: one 2-D array per component with the points sorted by their
time-mean (the permutation, 2 bytes per point and component, is counted). The MPM
particles are stored in random order within each disc; sorted, neighbouring columns hold
similar series. On the default F, C, S and Jp windows at 400 frames, at the same tolerance
and with equal or better R², this raised the ratio 1.3–2× for zfp and 1.6–5× for sz3
(before counting the permutation); one permutation shared by the components gained less
(their spatial structure differs). zfp gets ``[T_train, N]``: its 4×4 blocks did as well
as or better than ``[N, T_train]`` (±5 %), and a 3-D fold ``[T_train, N/4, 4]`` helped Jp
and F but cost C and S. sz3 gets ``[N, T_train]`` (up to 25 % higher ratio than
``[T_train, N]`` at bounds 1e-1 … 1e-2). Where the permutation is more than a quarter of
the stored bytes (very high ratios only), the unsorted layout is scored too, as the
setting with `` unsorted``, and kept unless a sorted point beats it in ratio and R².

Scores per point, in raw units and by ``inr_tune.metrics``' conventions (constant ground
truth: R² = 1 if the error is exactly zero, else 0): ``r2`` over all frames, ``holdout_r2``
over the held-out ones, ``psnr`` = mean over components of 20·log10(range_c / RMSE_c)
(components of zero range skipped), ``max_abs_error`` = max over components and values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from inr_tune.baselines_io import (
    BaselinePoint,
    Baselines,
    format_table,
    load_or_compute,
    nines,
    write_csv,
)
from inr_tune.data.split import holdout_frames, train_frames

__all__ = [
    "METHODS",
    "BaselinePoint",
    "Baselines",
    "baseline_metrics",
    "compute_baselines",
    "format_table",
    "load_or_compute",
    "nines",
    "write_csv",
]

METHODS = ("pca", "zfp", "sz3")
PCA_MAX_RANK = 64
PCA_MIN_RATIO = 2.0
PCA_TOP_R2 = 1.0 - 1e-7
PCA_TOP_TRAIN_R2 = 1.0 - 1e-8
ZFP_ACCURACY = (3e-1, 1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 1e-5)
ZFP_RATES = (1, 2, 4, 8, 16)
SZ3_REL = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5)
UNSORTED_SHARE = 0.25  # also score the unsorted layout when the permutation is > this share

_INSTALL = {"zfp": "pip install zfpy==1.0.1", "sz3": "pip install pysz"}


def _pca_ranks(limit: int) -> list[int]:
    ranks = [*range(1, 17), *range(18, 33, 2), *range(36, PCA_MAX_RANK + 1, 4)]
    return [k for k in ranks if k <= limit]


class _Truth:
    """The window, its split and the per-component statistics every score needs."""

    def __init__(self, values: np.ndarray, holdout_every: int) -> None:
        v = np.asarray(values)
        if v.ndim != 3 or v.size == 0:
            raise ValueError(f"values must be a non-empty 3-D array [T, N, C], got {v.shape}")
        if not np.issubdtype(v.dtype, np.floating) or not np.isfinite(v).all():
            raise ValueError("values must be finite floating-point numbers")
        self.gt = v.astype(np.float32, copy=False)
        self.shape = self.gt.shape
        t, n, c = self.shape
        self.hold = holdout_frames(t, holdout_every)
        self.train = train_frames(t, holdout_every)
        self.gt64 = self.gt.astype(np.float64)
        self.sst, self.range = _sst_range(self.gt64)
        h = self.gt64[self.hold]
        self.sst_hold, self.range_hold = _sst_range(h) if len(h) else (None, None)
        tr = self.gt[self.train]
        self.train_range = tr.max(axis=(0, 1)).astype(np.float64) - tr.min(axis=(0, 1))
        # per component: points sorted by their time-mean over the training frames
        self.order = np.argsort(tr.mean(axis=0, dtype=np.float64), axis=0, kind="stable").T
        self.perm_bytes = c * n * (2 if n <= 1 << 16 else 4)
        self.n_values = t * n * c

    def fill(self, rec_train: np.ndarray) -> np.ndarray:
        """Full ``[T, N, C]`` prediction: held-out frames interpolated linearly in time."""
        pred = np.empty(self.shape, dtype=np.float32)
        pred[self.train] = rec_train
        if len(self.hold):
            hi = np.searchsorted(self.train, self.hold)  # held-out frames are interior
            a, b = self.train[hi - 1], self.train[hi]
            w = ((self.hold - a) / (b - a)).astype(np.float32)[:, None, None]
            pred[self.hold] = (1 - w) * pred[a] + w * pred[b]
        return pred

    def point(
        self,
        method: str,
        setting: str,
        stored_bytes: int,
        seconds: float,
        sse: np.ndarray,
        sse_hold: np.ndarray | None,
        max_err: np.ndarray,
    ) -> BaselinePoint:
        holdout = None
        if self.sst_hold is not None and sse_hold is not None:
            holdout = float(np.mean(_r2(sse_hold, self.sst_hold, self.range_hold)))
        t, n, _ = self.shape
        rmse = np.sqrt(sse / (t * n))
        ok = self.range > 0
        with np.errstate(divide="ignore"):
            db = 20 * np.log10(self.range[ok] / rmse[ok])
        return BaselinePoint(
            method=method,
            setting=setting,
            ratio=self.n_values / (stored_bytes / 4),
            r2=float(np.mean(_r2(sse, self.sst, self.range))),
            holdout_r2=holdout,
            psnr=float(np.mean(db)) if ok.any() else math.nan,
            max_abs_error=float(np.max(max_err)),
            stored_bytes=int(stored_bytes),
            seconds=float(seconds),
        )

    def score(
        self, method: str, setting: str, stored_bytes: int, t0: float, rec_train: np.ndarray
    ) -> BaselinePoint:
        d = self.fill(rec_train).astype(np.float64)
        d -= self.gt64
        sse = np.einsum("tnc,tnc->c", d, d)
        dh = d[self.hold]
        sse_hold = np.einsum("tnc,tnc->c", dh, dh)
        max_err = np.abs(d).max(axis=(0, 1))
        return self.point(
            method, setting, stored_bytes, time.perf_counter() - t0, sse, sse_hold, max_err
        )


def _sst_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component of float64 ``x`` [t, n, c]: sum of squares about the mean, max − min."""
    sst = ((x - x.mean(axis=(0, 1))) ** 2).sum(axis=(0, 1))
    return sst, x.max(axis=(0, 1)) - x.min(axis=(0, 1))


def _r2(sse: np.ndarray, sst: np.ndarray, value_range: np.ndarray) -> np.ndarray:
    """1 − SSE/SST per component; a constant target (max = min) scores 1 if SSE = 0 else 0."""
    out = np.where(sse == 0.0, 1.0, 0.0)
    ok = value_range > 0
    out[ok] = 1.0 - sse[ok] / sst[ok]
    return out


# ------------------------------------------------------------------------------ pca


def _pca(truth: _Truth) -> Iterator[BaselinePoint]:
    t0 = time.perf_counter()
    _, n, c = truth.shape
    x = truth.gt64[truth.train]  # [T_train, N, C]
    t_train = len(x)
    sst_train, range_train = _sst_range(x)
    scale = 1.0 / np.sqrt(np.where(sst_train > 0, sst_train, 1.0))  # [C]
    col_mean = x.mean(axis=0)  # [N, C]
    z = ((x - col_mean) * scale).reshape(t_train, n * c)
    coef, vt = _basis(z, PCA_MAX_RANK)  # coef @ vt: projection onto the top-k subspace
    k_max = coef.shape[1]
    coef_hold = np.empty((len(truth.hold), k_max))
    for j in range(k_max):  # held-out frames: time coefficients interpolated per rank
        coef_hold[:, j] = np.interp(truth.hold, truth.train, coef[:, j])
    res = z  # residuals in scaled units, updated rank block by rank block
    res_hold = ((truth.gt64[truth.hold] - col_mean) * scale).reshape(len(truth.hold), n * c)
    inv = 1.0 / scale

    def sse_max(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(r):
            return np.zeros(c), np.zeros(c)
        sse = np.einsum("tj,tj->j", r, r).reshape(n, c).sum(axis=0) * inv**2
        mx = np.maximum(r.max(axis=0), -r.min(axis=0)).reshape(n, c).max(axis=0) * inv
        return sse, mx

    done = 0
    for k in [0, *_pca_ranks(k_max)]:
        stored_values = k * (t_train + n * c) + n * c + c
        if truth.n_values / stored_values < PCA_MIN_RATIO:
            return
        res -= coef[:, done:k] @ vt[done:k]
        res_hold -= coef_hold[:, done:k] @ vt[done:k]
        done = k
        if k == 0 and k_max > 0:
            continue  # rank 0 (the mean alone) is scored only for constant data
        sse_t, max_t = sse_max(res)
        sse_h, max_h = sse_max(res_hold)
        p = truth.point(
            "pca",
            f"rank={k}",
            4 * stored_values,
            time.perf_counter() - t0,
            sse_t + sse_h,
            sse_h,
            np.maximum(max_t, max_h),
        )
        yield p
        # done when the window is reproduced, or the frames it is fitted on are (then
        # more ranks fit float32 rounding; the held-out error is the interpolation's)
        train_r2 = float(np.mean(_r2(sse_t, sst_train, range_train)))
        if p.r2 >= PCA_TOP_R2 or train_r2 >= PCA_TOP_TRAIN_R2 or k >= k_max:
            return


def _basis(z: np.ndarray, k_cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k factors of ``z`` [m, p] from the eigenvectors of its smaller Gram matrix.

    Returns ``coef`` [m, k] and ``vt`` [k, p] with ``coef[:, :j] @ vt[:j]`` the orthogonal
    projection of ``z`` on its leading j-dimensional subspace (in time or in space). The
    Gram matrix costs min(m, p)²·max(m, p) flops and one small ``eigh``: 20× faster than a
    thin SVD of a 360 × 7200 window, and exact wherever σ_j² is above 1e-13·σ_1²
    (R² up to 1 − 1e-12).
    """
    m, p = z.shape
    gram = z @ z.T if m <= p else z.T @ z
    w, vec = np.linalg.eigh(gram)
    w, vec = w[::-1], vec[:, ::-1]
    k = int(np.count_nonzero(w > max(w[0], 0.0) * 1e-13)) if w[0] > 0 else 0
    vec = np.ascontiguousarray(vec[:, : min(k, k_cap)])
    if m <= p:
        return vec, vec.T @ z
    return z @ vec, np.ascontiguousarray(vec.T)


# ---------------------------------------------------------------------- zfp and sz3

Codec = Callable[[np.ndarray, int], tuple[int, np.ndarray]]  # (array, component) → bytes, rec


def _layouts(
    truth: _Truth, method: str, setting: str, codec: Codec, transpose: bool
) -> Iterator[BaselinePoint]:
    """One setting of a codec on each component's 2-D array, sorted (and maybe unsorted)."""
    train = truth.gt[truth.train]
    for sort in (True, False):
        t0 = time.perf_counter()
        rec = np.empty_like(train)
        stored = truth.perm_bytes if sort else 0
        for c in range(truth.shape[2]):
            cols = truth.order[c] if sort else slice(None)
            a = train[:, cols, c]
            nbytes, back = codec(np.ascontiguousarray(a.T if transpose else a), c)
            stored += nbytes
            rec[:, cols, c] = back.T if transpose else back
        yield truth.score(method, setting + ("" if sort else " unsorted"), stored, t0, rec)
        if truth.perm_bytes <= UNSORTED_SHARE * stored:
            return


def _zfp(truth: _Truth) -> Iterator[BaselinePoint]:
    import zfpy

    def accuracy(tol: float) -> Codec:
        def codec(a: np.ndarray, c: int) -> tuple[int, np.ndarray]:
            stream = zfpy.compress_numpy(a, tolerance=tol * float(truth.train_range[c]))
            return len(stream), zfpy.decompress_numpy(stream)

        return codec

    def rate(bits: int) -> Codec:
        def codec(a: np.ndarray, c: int) -> tuple[int, np.ndarray]:
            stream = zfpy.compress_numpy(a, rate=bits)
            return len(stream), zfpy.decompress_numpy(stream)

        return codec

    for tol in ZFP_ACCURACY:
        yield from _layouts(truth, "zfp", f"accuracy={tol:g}", accuracy(tol), False)
    for bits in ZFP_RATES:
        yield from _layouts(truth, "zfp", f"rate={bits}", rate(bits), False)


def _sz3(truth: _Truth) -> Iterator[BaselinePoint]:
    from pysz import sz, szConfig, szErrorBoundMode

    def rel(bound: float) -> Codec:
        def codec(a: np.ndarray, c: int) -> tuple[int, np.ndarray]:
            cfg = szConfig()
            cfg.errorBoundMode = szErrorBoundMode.REL
            cfg.relErrorBound = bound
            stream, _ = sz.compress(a, cfg)
            back, _ = sz.decompress(stream, np.float32, a.shape)
            return int(stream.nbytes), back

        return codec

    for bound in SZ3_REL:
        yield from _layouts(truth, "sz3", f"rel={bound:g}", rel(bound), True)


_RUNNERS: dict[str, Callable[[_Truth], Iterable[BaselinePoint]]] = {
    "pca": _pca,
    "zfp": _zfp,
    "sz3": _sz3,
}


def _undominated_unsorted(points: list[BaselinePoint]) -> list[BaselinePoint]:
    """Drop the unsorted-layout points that another point beats in ratio and R² both."""

    def beats(q: BaselinePoint, p: BaselinePoint) -> bool:
        hold = q.holdout_r2 is None or p.holdout_r2 is None or q.holdout_r2 >= p.holdout_r2
        return q is not p and q.ratio >= p.ratio and q.r2 >= p.r2 and hold

    return [
        p
        for p in points
        if not p.setting.endswith(" unsorted") or not any(beats(q, p) for q in points)
    ]


def _reason(method: str, err: BaseException) -> str:
    if isinstance(err, ImportError):
        name = getattr(err, "name", None) or str(err)
        return f"{name} is not installed ({_INSTALL.get(method, 'pip install it')})"
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"[:300]


def compute_baselines(
    values: np.ndarray, holdout_every: int = 10, methods: Sequence[str] = METHODS
) -> Baselines:
    """Curves of fidelity against compression ratio of ``methods`` on ``values`` [T, N, C].

    A method whose library is missing or fails on this window is listed in
    ``unavailable`` with a one-line reason; the others still run. ``ValueError`` for bad
    ``values``, ``holdout_every`` (0 or ≥ 2) or an unknown method.
    """
    unknown = [m for m in methods if m not in _RUNNERS]
    if unknown:
        raise ValueError(f"unknown baseline method(s) {unknown}; allowed: {', '.join(METHODS)}")
    truth = _Truth(values, holdout_every)
    points: list[BaselinePoint] = []
    unavailable: dict[str, str] = {}
    for method in dict.fromkeys(methods):
        try:
            points.extend(_undominated_unsorted(list(_RUNNERS[method](truth))))
        except Exception as err:  # a library's failure must not stop the block
            points = [p for p in points if p.method != method]
            unavailable[method] = _reason(method, err)
    t, n, c = truth.shape
    return Baselines(points, unavailable, t, n, c, int(holdout_every))


def baseline_metrics(baselines: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """``baseline_r2`` (the best classical compressor's R² at the trial's own ratio, on
    the same frames the trial is judged on), its method, and ``nines_over_baseline``."""
    if baselines is None:
        return {}
    ratio = metrics.get("compression_ratio")
    held = metrics.get("holdout_r2")
    r2 = held if isinstance(held, (int, float)) else metrics.get("final_r2")
    if not isinstance(ratio, (int, float)) or not isinstance(r2, (int, float)):
        return {}
    best = baselines.best_at(float(ratio), holdout=isinstance(held, (int, float)))
    if best is None:
        return {"baseline_r2": None, "baseline_method": None, "nines_over_baseline": None}
    base_r2, method = best
    return {
        "baseline_r2": base_r2,
        "baseline_method": method,
        "nines_over_baseline": nines(float(r2)) - nines(base_r2),
    }
