"""kinograph_SSIM with points in Hilbert order and a robust, clipped range (issue 11 §4)."""

from __future__ import annotations

import numpy as np
import pytest

from inr_tune import ssim
from inr_tune.metrics import evaluate, final_r2, kinograph_ssim, spatial_order


def smooth_field(
    n_frames: int = 100, n_points: int = 2000, spikes: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sinusoids of (x, y, t) on points uniform at random in the unit square (so the index
    has no spatial order), ``spikes`` values of ±50 (outliers), and a smooth error field
    of lower frequency: (positions [N, 2], gt [T, N, 1], error [T, N, 1])."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.0, 1.0, (n_points, 2))
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    x, y = xy[None, :, 0], xy[None, :, 1]
    gt = (
        np.sin(2 * np.pi * (1.5 * x + 0.5 * t))
        + 0.7 * np.cos(2 * np.pi * (2 * y - 0.7 * t) + 1)
        + 0.5 * np.sin(2 * np.pi * (x + 2 * y) + 3 * t)
    )
    if spikes:
        where = rng.choice(gt.size, spikes, replace=False)
        gt.flat[where] += 50.0 * rng.choice([-1.0, 1.0], spikes)
    err = np.sin(2 * np.pi * (0.7 * x - 0.3 * y) + 2 * t + 0.5) + 0.8 * np.cos(
        2 * np.pi * (0.5 * x + 0.9 * y) - 1.5 * t
    )
    return xy, gt[:, :, None], err[:, :, None]


def with_r2(gt: np.ndarray, err: np.ndarray, r2: float) -> np.ndarray:
    """gt + err scaled so that the prediction's R² is exactly ``r2``."""
    sst = float(((gt - gt.mean()) ** 2).sum())
    return gt + err * np.sqrt((1.0 - r2) * sst / float((err**2).sum()))


def old_kinograph_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """The DESIGN.md definition: index order, data_range = max − min, no clipping."""
    from skimage.metrics import structural_similarity

    return float(
        np.mean(
            [
                structural_similarity(
                    gt[:, :, c], pred[:, :, c], data_range=gt[:, :, c].max() - gt[:, :, c].min()
                )
                for c in range(gt.shape[2])
            ]
        )
    )


# ------------------------------------------------------------------------ point order


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_hilbert_index_visits_every_cell_through_neighbours(bits: int) -> None:
    ix, iy = np.indices((1 << bits, 1 << bits)).reshape(2, -1)
    d = ssim._hilbert_index(ix, iy, bits)
    assert np.array_equal(np.sort(d), np.arange(4**bits))  # a bijection onto 0 … 4^b − 1
    path = np.stack([ix, iy])[:, np.argsort(d)]
    assert (np.abs(np.diff(path, axis=1)).sum(axis=0) == 1).all()  # always a 4-neighbour
    assert path[:, 0].tolist() == [0, 0]


def test_spatial_order_walks_a_shuffled_grid_cell_by_cell() -> None:
    rng = np.random.default_rng(0)
    grid = np.indices((16, 16)).reshape(2, -1).T * 0.1 + [3.0, -2.0]  # any offset and scale
    shuffle = rng.permutation(len(grid))
    order = spatial_order(grid[shuffle])
    assert np.array_equal(np.sort(order), np.arange(len(grid)))
    steps = np.abs(np.diff(grid[shuffle][order], axis=0)).sum(axis=1)
    np.testing.assert_allclose(steps, 0.1)


def test_spatial_order_of_moving_points_is_the_first_frames() -> None:
    rng = np.random.default_rng(1)
    first = rng.uniform(0, 1, (300, 2))
    moving = np.stack([first, rng.uniform(0, 1, (300, 2))])  # [T = 2, N, 2]
    assert np.array_equal(spatial_order(moving), spatial_order(first))
    assert np.array_equal(spatial_order(first * 7 - 3), spatial_order(first))
    # coincident points have no order of their own: index order
    assert np.array_equal(spatial_order(np.ones((5, 2))), np.arange(5))


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        (np.zeros((5, 3)), r"\[N, 2\] or \[T, N, 2\]"),
        (np.zeros((0, 2)), r"\[N, 2\] or \[T, N, 2\]"),
        (np.zeros(5), r"\[N, 2\] or \[T, N, 2\]"),
        (np.array([[0.0, 1.0], [np.nan, 0.0]]), "finite"),
        (np.zeros((5, 2), dtype=complex), "real numbers"),
    ],
)
def test_bad_positions_raise(positions: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spatial_order(positions)


def test_positions_must_match_the_points() -> None:
    gt = np.random.default_rng(2).random((8, 10, 1))
    for fn in (kinograph_ssim, evaluate):
        with pytest.raises(ValueError, match="N = 10 points"):
            fn(gt, gt, positions=np.zeros((11, 2)))


# ------------------------------------------------------------------- the definition


def test_ordered_clipped_ssim_matches_skimage() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    xy, gt, _ = smooth_field(n_frames=40, n_points=300, spikes=6, seed=3)
    gt = np.concatenate([gt, 2.0 * gt[:, ::-1] + 1.0], axis=2).astype(np.float32)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    pred[5, 7, 0] = 500.0  # far beyond the clipping limits
    order = spatial_order(xy)
    expected = []
    for c in range(2):
        k_gt = gt[:, order, c].astype(np.float64)
        k_pred = pred[:, order, c].astype(np.float64)
        lo = np.percentile(k_gt, 0.1, method="lower")
        hi = np.percentile(k_gt, 99.9, method="higher")
        assert hi - lo < 0.2 * (k_gt.max() - k_gt.min())  # the spikes are clipped away
        k_gt, k_pred = np.clip(k_gt, lo, hi), np.clip(k_pred, lo, hi)
        expected.append(structural_similarity(k_gt, k_pred, data_range=hi - lo))
    assert kinograph_ssim(pred, gt, positions=xy) == pytest.approx(np.mean(expected), abs=1e-9)
    moving = np.stack([xy, xy[::-1]] * 20)  # [T, N, 2]: read at its first frame
    out = evaluate(pred, gt, positions=moving)
    assert out["kinograph_SSIM"] == pytest.approx(np.mean(expected), abs=1e-9)
    # without positions: index order, the same range and clipping
    assert kinograph_ssim(pred, gt) != pytest.approx(np.mean(expected), abs=1e-6)


def test_values_beyond_the_limits_count_at_the_limit() -> None:
    xy, gt, _ = smooth_field(n_frames=30, n_points=200, spikes=4, seed=4)
    lo, hi = ssim._ssim_limits(gt)
    pred = gt.copy()
    pred[gt > hi[0]] += 7.0  # the spikes overshoot further: clipped, no penalty
    pred[gt < lo[0]] -= 7.0
    assert kinograph_ssim(pred, gt, positions=xy) == 1.0
    inside = np.argwhere((gt > lo[0]) & (gt < hi[0]))[0]
    pred[tuple(inside)] = hi[0] + 100.0  # out of range where gt is inside: penalised
    assert kinograph_ssim(pred, gt, positions=xy) < 1.0


def test_nearly_constant_component_keeps_its_min_max_range() -> None:
    gt = np.zeros((20, 100, 1))
    gt[3, 4, 0] = 1.0  # 1 value in 2000: the 0.1 / 99.9 % order statistics are both 0
    lo, hi = ssim._ssim_limits(gt)
    assert (lo[0], hi[0]) == (0.0, 1.0)
    assert kinograph_ssim(gt.copy(), gt) == 1.0
    assert kinograph_ssim(gt + 0.01, gt) < 1.0


def test_large_windows_take_the_percentiles_over_a_frame_subsample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, gt, _ = smooth_field(n_frames=50, n_points=100, seed=5)
    monkeypatch.setattr(ssim, "_SSIM_RANGE_VALUES", 1000)  # every 5th frame
    lo, hi = ssim._ssim_limits(gt)
    sub = gt[::5, :, 0]
    assert lo[0] == np.percentile(sub, 0.1, method="lower")
    assert hi[0] == np.percentile(sub, 99.9, method="higher")


# ------------------------------------------------------------- it separates fits now


def test_smooth_errors_of_r2_0_9999_and_0_99_get_clearly_different_ssim() -> None:
    # 100 of 200 000 values are ±50 spikes (like MPM's Jp and C tails): max − min ≈ 100
    # against ≈ 4.6 for 0.1–99.9 %. The errors are smooth (lower frequency than the field).
    xy, gt, err = smooth_field(spikes=100)
    good, fair = with_r2(gt, err, 0.9999), with_r2(gt, err, 0.99)
    assert final_r2(good, gt) == pytest.approx(0.9999, abs=1e-9)
    assert final_r2(fair, gt) == pytest.approx(0.99, abs=1e-9)
    new_good = kinograph_ssim(good, gt, positions=xy)  # 0.9953
    new_fair = kinograph_ssim(fair, gt, positions=xy)  # 0.8545
    assert new_good > 0.99
    assert new_good - new_fair > 0.1
    # the DESIGN.md definition read ≈ 1 for both: 1.0000 and 0.9958
    old_good, old_fair = old_kinograph_ssim(good, gt), old_kinograph_ssim(fair, gt)
    assert old_fair > 0.995
    assert old_good - old_fair < 0.01


def test_hilbert_order_lets_ssim_see_rough_errors_on_a_smooth_field() -> None:
    # White errors at R² 0.99 on the smooth field: in index order every 7 × 7 window
    # already spans the whole field's variance, in Hilbert order it spans a neighbourhood.
    xy, gt, _ = smooth_field(seed=6)
    noise = np.random.default_rng(6).standard_normal(gt.shape)
    fair = with_r2(gt, noise, 0.99)
    by_index = kinograph_ssim(fair, gt)  # 0.984
    by_space = kinograph_ssim(fair, gt, positions=xy)  # 0.878
    assert by_index - by_space > 0.05
