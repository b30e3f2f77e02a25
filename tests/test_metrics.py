"""Metrics: hand-computed values, agreement with torchmetrics and skimage, edge cases."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from inr_tune import metrics
from inr_tune.metrics import (
    FLYVIS_CLASSES,
    MPM_CLASSES,
    PSNR_CAP,
    compression_ratio,
    count_values,
    data_ranks,
    effective_ranks,
    evaluate,
    final_mse,
    final_r2,
    kinograph_r2,
    kinograph_ssim,
    max_abs_error,
    pearson_r2,
    psnr,
    quality_class,
    r2_components,
    slope,
)

# A [T=2, N=3, C=1] pair worked by hand below.
GT = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])[:, :, None]
PRED = np.array([[1.0, 2.0, 4.0], [4.0, 6.0, 6.0]])[:, :, None]


def smooth_pair(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 gt with structure in t and n, pred = a noisy, slightly biased copy."""
    rng = np.random.default_rng(seed)
    t_count, n_count, c_count = shape
    t = np.linspace(0, 1, t_count)[:, None, None]
    x = rng.uniform(0, 1, (1, n_count, 1))
    c = np.arange(c_count)[None, None, :]
    gt = np.sin(5 * t + 3 * x + c) + 2.0 * c + 0.2 * rng.standard_normal(shape)
    pred = 1.02 * gt + 0.05 + 0.1 * rng.standard_normal(shape)
    return pred.astype(np.float32), gt.astype(np.float32)


def brute_ssim(x: np.ndarray, y: np.ndarray, wt: int, wn: int, data_range: float) -> float:
    """SSIM written out window by window (sample covariance, valid positions only)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ddof = 1 if wt * wn > 1 else 0
    values = []
    for i in range(x.shape[0] - wt + 1):
        for j in range(x.shape[1] - wn + 1):
            px, py = x[i : i + wt, j : j + wn].ravel(), y[i : i + wt, j : j + wn].ravel()
            ux, uy = px.mean(), py.mean()
            vx, vy = px.var(ddof=ddof), py.var(ddof=ddof)
            vxy = ((px - ux) * (py - uy)).sum() / (px.size - ddof)
            values.append(
                (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


def ssim_inputs(k_gt: np.ndarray, k_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The kinographs as kinograph_SSIM compares them: clipped to the ground truth's 0.1 %
    and 99.9 % order statistics (rounded outwards), and the data_range between those."""
    k_gt, k_pred = np.asarray(k_gt, dtype=np.float64), np.asarray(k_pred, dtype=np.float64)
    lo = np.percentile(k_gt, 0.1, method="lower")
    hi = np.percentile(k_gt, 99.9, method="higher")
    return np.clip(k_gt, lo, hi), np.clip(k_pred, lo, hi), float(hi - lo)


# ----------------------------------------------------------------- hand-computed values


def test_hand_computed_values() -> None:
    # Errors pred − gt = [0, 0, 1, 0, 1, 0]: SSE = 2 over 6 values.
    assert final_mse(PRED, GT) == pytest.approx(2 / 6)
    # gt mean 3.5, SST = 6.25 + 2.25 + 0.25 + 0.25 + 2.25 + 6.25 = 17.5; R² = 1 − 2/17.5.
    assert r2_components(PRED, GT) == pytest.approx([1 - 2 / 17.5])
    assert final_r2(PRED, GT) == pytest.approx(0.8857142857142857)
    # pred mean 23/6; Sxy = 99 − 6·3.5·23/6 = 18.5; Syy = 109 − 529/6 = 125/6; Sxx = 17.5.
    assert pearson_r2(PRED, GT) == pytest.approx(18.5**2 / (17.5 * 125 / 6))  # 0.938742857
    assert slope(PRED, GT) == pytest.approx(18.5 / 17.5)  # 1.057142857
    # Frame 0: gt [1, 2, 3], SST 2, SSE 1 → 0.5; frame 1: gt [4, 5, 6], SST 2, SSE 1 → 0.5.
    assert kinograph_r2(PRED, GT) == pytest.approx(0.5)


def test_hand_computed_ssim_small_window() -> None:
    # T = 2 < 7: the window is 1 × 3 (one window per frame), sample covariance ×3/2.
    # data_range = 6 − 1 = 5: C1 = (0.01·5)² = 0.0025, C2 = (0.03·5)² = 0.0225.
    c1, c2 = 0.0025, 0.0225
    # Frame 0: x [1, 2, 3], y [1, 2, 4]: ux 2, uy 7/3, vx 1, vy 7/3, vxy 3/2.
    s0 = (2 * 2 * 7 / 3 + c1) * (2 * 1.5 + c2) / ((4 + 49 / 9 + c1) * (1 + 7 / 3 + c2))
    # Frame 1: x [4, 5, 6], y [4, 6, 6]: ux 5, uy 16/3, vx 1, vy 4/3, vxy 1.
    s1 = (2 * 5 * 16 / 3 + c1) * (2 * 1 + c2) / ((25 + 256 / 9 + c1) * (1 + 4 / 3 + c2))
    assert s0 == pytest.approx(0.8900772, abs=1e-7)
    assert s1 == pytest.approx(0.8567225, abs=1e-7)
    assert kinograph_ssim(PRED, GT) == pytest.approx((s0 + s1) / 2, rel=1e-12)  # 0.8733998


def test_evaluate_keys_and_values() -> None:
    out = evaluate(PRED, GT)
    assert list(out) == [
        "final_mse",
        "final_r2",
        "r2_components",
        "pearson_r2",
        "slope",
        "kinograph_R2",
        "kinograph_SSIM",
        "psnr",
        "max_abs_error",
    ]
    assert out["final_mse"] == pytest.approx(1 / 3)
    # range 6 − 1 = 5, RMSE √(1/3): 20·log10(5·√3) = 18.751 dB; largest error 1
    assert out["psnr"] == pytest.approx(20 * math.log10(5 * math.sqrt(3)))
    assert out["max_abs_error"] == [1.0]
    assert out["final_r2"] == pytest.approx(31 / 35)
    assert out["kinograph_R2"] == pytest.approx(0.5)
    assert out["kinograph_SSIM"] == pytest.approx(kinograph_ssim(PRED, GT), rel=1e-12)
    with_ranks = evaluate(PRED, GT, ranks=True)
    assert with_ranks["rank_90"] == data_ranks(GT)["rank_90"]
    assert with_ranks["rank_99"] == data_ranks(GT)["rank_99"]
    assert all(
        isinstance(v, float) for k, v in out.items() if k not in ("r2_components", "max_abs_error")
    )


def test_psnr_and_max_error_per_component() -> None:
    rng = np.random.default_rng(3)
    gt = rng.random((12, 40, 2))
    gt[..., 1] *= 1e-4  # a small-scale component (like S): PSNR is relative to its range
    err = rng.standard_normal(gt.shape) * np.array([1e-2, 1e-6])
    pred = gt + err
    rmse = np.sqrt((err**2).mean(axis=(0, 1)))
    rng_c = gt.max(axis=(0, 1)) - gt.min(axis=(0, 1))
    assert psnr(pred, gt) == pytest.approx(np.mean(20 * np.log10(rng_c / rmse)), rel=1e-9)
    assert max_abs_error(pred, gt) == pytest.approx(np.abs(err).max(axis=(0, 1)).tolist())
    const = np.stack([gt[..., 0], np.full(gt.shape[:2], 2.0)], axis=-1)  # constant component
    assert psnr(const + 0.01, const) == pytest.approx(20 * np.log10(rng_c[0] / 0.01), rel=1e-6)
    assert psnr(gt, gt) == PSNR_CAP


def test_perfect_prediction() -> None:
    _, gt = smooth_pair((20, 15, 3))
    out = evaluate(gt.copy(), gt)
    assert out["final_mse"] == 0.0
    assert out["r2_components"] == [1.0, 1.0, 1.0]
    for key in ("final_r2", "pearson_r2", "slope", "kinograph_R2", "kinograph_SSIM"):
        assert out[key] == pytest.approx(1.0, abs=1e-12), key


def test_gain_and_offset_error_is_not_hidden() -> None:
    # The older tools' "R²" (squared Pearson) scores pred = 2·gt + 1 as perfect.
    pred = 2 * GT + 1
    assert pearson_r2(pred, GT) == pytest.approx(1.0)
    assert slope(pred, GT) == pytest.approx(2.0)
    # True R²: SSE = Σ(gt + 1)² = 4 + 9 + 16 + 25 + 36 + 49 = 139; SST = 17.5.
    assert final_r2(pred, GT) == pytest.approx(1 - 139 / 17.5)
    assert final_r2(pred, GT) < 0
    # Kinograph metrics are not slope-corrected either.
    assert kinograph_r2(pred, GT) < 0.5
    _, gt = smooth_pair((30, 20, 2))
    assert kinograph_ssim(2 * gt + 1, gt) < 0.9


# ------------------------------------------------------------- constant ground truth


def test_constant_ground_truth_rule() -> None:
    gt = np.full((4, 5, 2), 3.25, dtype=np.float32)
    assert r2_components(gt.copy(), gt) == [1.0, 1.0]
    pred = gt.copy()
    pred[1, 2, 1] += 1e-3
    assert r2_components(pred, gt) == [1.0, 0.0]
    assert final_r2(pred, gt) == 0.5
    assert kinograph_r2(pred, gt) == 0.5  # every frame skipped: the same rule per component
    assert kinograph_ssim(pred, gt) == 0.5  # data_range 0: the same rule per component
    assert pearson_r2(pred, gt) == 0.0 and slope(pred, gt) == 0.0
    assert pearson_r2(gt.copy(), gt) == 1.0 and slope(gt.copy(), gt) == 1.0


def test_constant_ground_truth_with_tiny_values_is_not_tolerance_based() -> None:
    # torchmetrics treats SSE, SST < 1e-4 as zero; stress values are ~4e-4, so no tolerance.
    rng = np.random.default_rng(3)
    gt = (4e-4 * rng.standard_normal((10, 8, 1))).astype(np.float64)
    pred = gt + 4e-5 * rng.standard_normal(gt.shape)
    sse, sst = ((pred - gt) ** 2).sum(), ((gt - gt.mean()) ** 2).sum()
    assert sst < 1e-4
    assert final_r2(pred, gt) == pytest.approx(1 - sse / sst, rel=1e-10)


def test_kinograph_r2_skips_constant_frames() -> None:
    gt = np.array([[2.0, 2.0, 2.0], [4.0, 5.0, 6.0]])[:, :, None]
    pred = np.array([[0.0, 0.0, 0.0], [4.0, 6.0, 6.0]])[:, :, None]
    assert kinograph_r2(pred, gt) == pytest.approx(0.5)  # frame 0 (SST = 0) skipped


# ------------------------------------------------------------- agreement with libraries


@pytest.mark.parametrize("shape", [(40, 30, 4), (9, 7, 1), (64, 50, 2)])
def test_final_r2_matches_torchmetrics(shape: tuple[int, int, int]) -> None:
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    pred, gt = smooth_pair(shape, seed=1)
    score = torchmetrics.R2Score(multioutput="uniform_average")
    score.update(
        torch.from_numpy(pred.reshape(-1, shape[2]).astype(np.float64)),
        torch.from_numpy(gt.reshape(-1, shape[2]).astype(np.float64)),
    )
    assert final_r2(pred, gt) == pytest.approx(score.compute().item(), rel=1e-10, abs=1e-12)
    raw = torchmetrics.R2Score(multioutput="raw_values")
    raw.update(
        torch.from_numpy(pred.reshape(-1, shape[2]).astype(np.float64)),
        torch.from_numpy(gt.reshape(-1, shape[2]).astype(np.float64)),
    )
    expected = np.atleast_1d(raw.compute().numpy())
    np.testing.assert_allclose(r2_components(pred, gt), expected, rtol=1e-10)


@pytest.mark.parametrize("shape", [(40, 30, 4), (9, 7, 1)])
def test_pearson_r2_and_slope_match_references(shape: tuple[int, int, int]) -> None:
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    pred, gt = smooth_pair(shape, seed=2)
    corr = torchmetrics.PearsonCorrCoef().set_dtype(torch.float64)
    corr.update(
        torch.from_numpy(pred.ravel().astype(np.float64)),
        torch.from_numpy(gt.ravel().astype(np.float64)),
    )
    assert pearson_r2(pred, gt) == pytest.approx(corr.compute().item() ** 2, rel=1e-10)
    fitted = np.polyfit(gt.ravel().astype(np.float64), pred.ravel().astype(np.float64), 1)[0]
    assert slope(pred, gt) == pytest.approx(fitted, rel=1e-10)


@pytest.mark.parametrize("shape", [(40, 30, 3), (7, 7, 1), (9, 50, 1), (80, 12, 2)])
def test_kinograph_ssim_matches_skimage(shape: tuple[int, int, int]) -> None:
    from skimage.metrics import structural_similarity

    pred, gt = smooth_pair(shape, seed=4)
    expected = []
    for c in range(shape[2]):
        k_gt, k_pred, data_range = ssim_inputs(gt[:, :, c], pred[:, :, c])
        expected.append(structural_similarity(k_gt, k_pred, data_range=data_range))
    assert kinograph_ssim(pred, gt) == pytest.approx(np.mean(expected), abs=1e-9)
    assert evaluate(pred, gt)["kinograph_SSIM"] == pytest.approx(np.mean(expected), abs=1e-9)


def test_kinograph_ssim_small_windows() -> None:
    from skimage.metrics import structural_similarity

    # ≤ 1000 values: the clipping limits are gt's min and max (pred is clipped to them).
    # T = N = 5: skimage refuses its default window; ours shrinks to 5 × 5.
    pred, gt = smooth_pair((5, 5, 1), seed=5)
    k_gt, k_pred, data_range = ssim_inputs(gt[:, :, 0], pred[:, :, 0])
    assert data_range == float(gt.max()) - float(gt.min())
    expected = structural_similarity(k_gt, k_pred, data_range=data_range, win_size=5)
    assert kinograph_ssim(pred, gt) == pytest.approx(expected, abs=1e-9)
    # T = 4, N = 20: a 3 × 7 window.
    pred, gt = smooth_pair((4, 20, 1), seed=6)
    k_gt, k_pred, data_range = ssim_inputs(gt[:, :, 0], pred[:, :, 0])
    expected = brute_ssim(k_gt, k_pred, 3, 7, data_range)
    assert kinograph_ssim(pred, gt) == pytest.approx(expected, abs=1e-9)
    # T = N = 2: a 1 × 1 window, only the luminance term is left.
    pred, gt = smooth_pair((2, 2, 1), seed=7)
    k_gt, k_pred, data_range = ssim_inputs(gt[:, :, 0], pred[:, :, 0])
    expected = brute_ssim(k_gt, k_pred, 1, 1, data_range)
    assert kinograph_ssim(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_chunked_and_threaded_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    pred, gt = smooth_pair((61, 23, 3), seed=8)
    from inr_tune import _chunks, spectrum, ssim

    def chunking(workers: int, values: int, ssim_values: int) -> None:
        monkeypatch.setattr(_chunks, "workers", lambda: workers)
        monkeypatch.setattr(metrics, "_CHUNK_VALUES", values)
        monkeypatch.setattr(spectrum, "_CHUNK_VALUES", values)
        monkeypatch.setattr(ssim, "_SSIM_CHUNK_VALUES", ssim_values)

    chunking(1, 10**9, 10**9)
    whole = evaluate(pred, gt, ranks=True)
    chunking(2, 23 * 3 * 4, 17 * 5)  # 4 frames per chunk, 5 SSIM output rows per chunk
    chunked = evaluate(pred, gt, ranks=True)
    assert chunked.keys() == whole.keys()
    for key, value in whole.items():
        np.testing.assert_allclose(chunked[key], value, rtol=1e-12, atol=1e-14, err_msg=key)


def test_large_offset_is_accurate() -> None:
    # Jp-like data: mean ~16, small spread; float64 sums after a shift keep R² exact.
    rng = np.random.default_rng(9)
    gt = (16.0 + 1e-3 * rng.standard_normal((50, 40, 1))).astype(np.float32)
    pred = (gt + 1e-4 * rng.standard_normal(gt.shape)).astype(np.float32)
    g, p = gt.astype(np.float64), pred.astype(np.float64)
    expected = 1 - ((p - g) ** 2).sum() / ((g - g.mean()) ** 2).sum()
    assert final_r2(pred, gt) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- ranks


def test_ranks_of_a_diagonal_matrix() -> None:
    # σ = 3, 2, 1: σ² = 9, 4, 1 of 14 → cumulative 0.643, 0.929, 1.0.
    gt = np.diag([3.0, 2.0, 1.0])[:, :, None]
    assert data_ranks(gt) == {"rank_90": 2, "rank_99": 3}
    # The older tools' top=50 idea with top=2: 9, 4 of 13 → 0.692, 1.0.
    assert data_ranks(gt, top=2) == {"rank_90": 2, "rank_99": 2}


@pytest.mark.parametrize("shape", [(300, 20, 2), (20, 100, 3)])
def test_ranks_of_a_known_rank_matrix(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(10)
    t_count, n_count, c_count = shape
    scales = np.array([10.0, 3.0, 1.0])
    field = (rng.standard_normal((t_count, 3)) * scales) @ rng.standard_normal(
        (3, n_count * c_count)
    )
    gt = field.reshape(shape)
    r90, r99 = data_ranks(gt).values()
    assert 1 <= r90 <= r99 <= 3
    assert effective_ranks(field, (0.999999,)) == [3]
    # Same as the singular values taken directly.
    sigma2 = np.linalg.svd(field, compute_uv=False) ** 2
    cum = np.cumsum(sigma2) / sigma2.sum()
    assert [r90, r99] == [int(np.argmax(cum >= f) + 1) for f in (0.9, 0.99)]


def test_ranks_of_zeros() -> None:
    assert data_ranks(np.zeros((4, 3, 1))) == {"rank_90": 0, "rank_99": 0}


# ------------------------------------------------------------------ sizes and ratios


def test_count_values_and_compression_ratio() -> None:
    assert count_values((400, 9000, 4)) == 14_400_000
    assert compression_ratio(count_values((400, 9000, 4)), 265_220) == pytest.approx(
        54.295, abs=1e-3
    )
    with pytest.raises(ValueError, match="positive"):
        compression_ratio(100, 0)
    with pytest.raises(ValueError, match="shape"):
        count_values((4, 0, 1))


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((3, 4)), np.zeros((3, 4)), r"3-D array \[T, N, C\], got shape \(3, 4\)"),
        (np.zeros((3, 4, 1)), np.zeros((3, 4, 2)), "same shape"),
        (np.zeros((0, 4, 1)), np.zeros((0, 4, 1)), "non-empty"),
        (np.zeros((3, 4, 1), dtype=complex), np.zeros((3, 4, 1)), "real numbers"),
        (np.zeros((3, 4, 1), dtype=bool), np.zeros((3, 4, 1)), "real numbers"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(
    pred: np.ndarray, gt: np.ndarray, message: str
) -> None:
    for fn in (final_mse, final_r2, pearson_r2, kinograph_ssim, evaluate):
        with pytest.raises(ValueError, match=message) as info:
            fn(pred, gt)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    gt = np.ones((6, 4, 2), dtype=np.float32)
    pred = gt.copy()
    pred[4, 1, 1] = bad
    with pytest.raises(ValueError, match=r"pred must be finite.*frame 4"):
        evaluate(pred, gt)
    with pytest.raises(ValueError, match=r"gt must be finite.*frame 4"):
        final_r2(gt, pred)


def test_integer_inputs_are_accepted() -> None:
    assert final_mse(PRED.astype(np.int64), GT.astype(np.int32)) == pytest.approx(1 / 3)


# ---------------------------------------------------------------------- quality classes


@pytest.mark.parametrize(
    ("r2", "expected"),
    [
        (0.9999, "excellent"),
        (0.99500001, "excellent"),
        (0.995, "good"),
        (0.99, "good"),
        (0.98999, "moderate"),
        (0.90, "moderate"),
        (0.89999, "poor"),
        (-3.0, "poor"),
        (float("nan"), "poor"),
    ],
)
def test_mpm_quality_classes(r2: float, expected: str) -> None:
    assert quality_class(r2, MPM_CLASSES) == expected


@pytest.mark.parametrize(
    ("r2", "expected"),
    [(0.96, "excellent"), (0.95, "good"), (0.8, "good"), (0.5, "moderate"), (0.49, "poor")],
)
def test_flyvis_quality_classes(r2: float, expected: str) -> None:
    assert quality_class(r2, FLYVIS_CLASSES) == expected


def test_quality_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="decrease"):
        quality_class(0.9, {"good": 0.8, "excellent": 0.95})
    with pytest.raises(ValueError, match="at least one"):
        quality_class(0.9, {})
    with pytest.raises(TypeError):
        MPM_CLASSES["excellent"] = 0.5  # type: ignore[index]


def test_metrics_import_no_torch_ray_or_lightning() -> None:
    code = (
        "import sys, inr_tune.metrics; "
        "bad = [m for m in ('torch', 'ray', 'lightning', 'pytorch_lightning') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_holdout_r2_matches_final_r2_of_the_frame_subsets() -> None:
    """``evaluate(..., holdout=idx)`` merges the per-frame moments of its one pass: the
    same numbers as ``final_r2`` on the held-out and the other frames' own arrays,
    including frames whose mean drifts (the between-frame spread is part of SST), a
    constant component and no held-out frames."""
    rng = np.random.default_rng(3)
    t, n = 40, 30
    drift = np.linspace(0, 5, t)[:, None, None]
    gt = np.concatenate(
        [rng.normal(size=(t, n, 2)) + drift, np.full((t, n, 1), 2.5)], axis=2
    ).astype(np.float32)
    pred = (gt + rng.normal(scale=0.3, size=gt.shape)).astype(np.float32)
    pred[..., 2] = gt[..., 2]  # the constant component predicted exactly
    held = np.array([3, 17, 29, 38])
    out = evaluate(pred, gt, holdout=held)
    mask = np.zeros(t, dtype=bool)
    mask[held] = True
    assert out["holdout_r2"] == pytest.approx(final_r2(pred[mask], gt[mask]), rel=1e-10)
    assert out["train_r2"] == pytest.approx(final_r2(pred[~mask], gt[~mask]), rel=1e-10)
    assert out["holdout_frames"] == 4
    assert out["holdout_r2"] != pytest.approx(out["train_r2"], rel=1e-6)
    none = evaluate(pred, gt, holdout=np.array([], dtype=np.int64))
    assert none["holdout_r2"] is None and none["holdout_frames"] == 0
    assert none["train_r2"] == pytest.approx(final_r2(pred, gt), rel=1e-12)
    assert "holdout_r2" not in evaluate(pred, gt)


def test_quick_scores_match_the_metrics_of_each_frame_subset() -> None:
    """``quick_scores`` (the periodic evaluation, one pass) gives the numbers ``final_r2``,
    ``final_mse`` and ``kinograph_r2`` give on the sampled frames' own arrays, and
    ``final_r2`` of the held-out frames', with drifting frame means, a constant component
    and frames where one component is constant (skipped by the kinograph)."""
    rng = np.random.default_rng(5)
    t, n = 36, 25
    drift = np.linspace(0, 3, t)[:, None, None]
    gt = np.concatenate(
        [rng.normal(size=(t, n, 2)) + drift, np.full((t, n, 1), -1.0)], axis=2
    ).astype(np.float32)
    gt[6, :, 0] = 0.5  # one sampled frame where component 0 is constant
    pred = (gt + rng.normal(scale=0.2, size=gt.shape)).astype(np.float32)
    pred[..., 2] = gt[..., 2]
    sample = np.zeros(t, dtype=bool)
    sample[::3] = True
    held = np.zeros(t, dtype=bool)
    held[[4, 5, 19, 33]] = True
    got = metrics.quick_scores(pred, gt, sample, held)
    ps, gs = pred[sample], gt[sample]
    assert got["final_r2"] == pytest.approx(final_r2(ps, gs), rel=1e-10)
    assert got["final_mse"] == pytest.approx(metrics.final_mse(ps, gs), rel=1e-10)
    assert got["kinograph_R2"] == pytest.approx(metrics.kinograph_r2(ps, gs), rel=1e-10)
    assert got["holdout_r2"] == pytest.approx(final_r2(pred[held], gt[held]), rel=1e-10)
    assert metrics.quick_scores(pred, gt, sample, np.zeros(t, dtype=bool))["holdout_r2"] is None
