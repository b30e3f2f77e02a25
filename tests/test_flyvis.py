"""Fly-eye stimulus generator: lattice, statistics of the video, determinism, the dataset."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from inr_tune.data.flyvis import (
    N_COLUMNS,
    N_NEURONS,
    clip_lengths,
    generate_flyvis,
    generate_stimulus,
    hex_columns,
    lag1_correlation,
    neuron_positions,
    stimulus_statistics,
)
from inr_tune.data.store import open_dataset
from inr_tune.errors import DataError


@pytest.fixture(scope="module")
def video_seed0() -> np.ndarray:
    return generate_stimulus(1000, seed=0)


# ----- lattice ---------------------------------------------------------------------------


def test_hex_columns_lattice() -> None:
    xy = hex_columns()
    assert xy.shape == (217, 2) and xy.dtype == np.float32 and N_COLUMNS == 217
    assert len(np.unique(np.round(xy, 4), axis=0)) == 217
    assert np.abs(xy[:, 0]).max() <= 8 + 1e-6
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(d.min(axis=1), 1.0, atol=1e-5)
    neighbours = (np.abs(d - 1.0) < 1e-4).sum(axis=1)
    interior = np.linalg.norm(xy, axis=1) < 8 * math.sqrt(3) / 2 - 0.5  # inside the hexagon
    assert interior.sum() > 100
    assert np.all(neighbours[interior] == 6)
    assert np.all(neighbours <= 6) and neighbours.min() in (2, 3)  # corners and edges
    assert len(hex_columns(1)) == 7 and len(hex_columns(3)) == 37


def test_hex_columns_order_is_get_hex_coords() -> None:
    uv = [(q, r) for q in range(-8, 9) for r in range(max(-8, -8 - q), min(8, 8 - q) + 1)]
    expected = np.array([(u + v / 2, v * math.sqrt(3) / 2) for u, v in uv])
    np.testing.assert_allclose(hex_columns(), expected, atol=1e-6)
    np.testing.assert_allclose(hex_columns()[0], [-8.0, 0.0], atol=1e-6)


def test_neuron_positions_type_major() -> None:
    pos = neuron_positions()
    assert pos.shape == (1736, 2) and pos.dtype == np.float32 and N_NEURONS == 1736
    cols = hex_columns()
    for k in range(8):
        np.testing.assert_array_equal(pos[k * 217 : (k + 1) * 217], cols)


# ----- video statistics ------------------------------------------------------------------


def test_statistics_match_the_study(video_seed0: np.ndarray) -> None:
    neurons = np.tile(video_seed0, (1, 8))  # [1000, 1736], type-major
    s = stimulus_statistics(neurons)
    assert 10 <= s["rank_90"] <= 14, s
    assert 40 <= s["rank_99"] <= 45, s
    assert 0.94 <= s["lag1_corr"] <= 0.98, s
    assert s["min"] >= 0.0 and s["max"] <= 1.0, s
    assert s["std"] > 0.1, s
    # Tiling over the 8 types scales every σ² by 8: the column matrix has the same stats.
    cs = stimulus_statistics(video_seed0)
    assert (cs["rank_90"], cs["rank_99"]) == (s["rank_90"], s["rank_99"])
    assert cs["lag1_corr"] == pytest.approx(s["lag1_corr"], abs=1e-9)


def test_statistics_match_the_study_another_seed() -> None:
    s = stimulus_statistics(generate_stimulus(1000, seed=1))  # columns: same stats as neurons
    assert 10 <= s["rank_90"] <= 14 and 40 <= s["rank_99"] <= 45, s
    assert 0.94 <= s["lag1_corr"] <= 0.98, s
    assert s["min"] >= 0.0 and s["max"] <= 1.0, s


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_statistics_stable_across_seeds(seed: int) -> None:
    s = stimulus_statistics(generate_stimulus(1000, seed=seed))
    assert 10 <= s["rank_90"] <= 14 and 40 <= s["rank_99"] <= 45, s
    assert 0.94 <= s["lag1_corr"] <= 0.98, s


def test_values_in_unit_interval_and_float32(video_seed0: np.ndarray) -> None:
    assert video_seed0.shape == (1000, 217) and video_seed0.dtype == np.float32
    assert video_seed0.min() >= 0.0 and video_seed0.max() <= 1.0
    assert np.all(np.isfinite(video_seed0))


def test_hard_cuts_between_clips(video_seed0: np.ndarray) -> None:
    lengths = clip_lengths(1000, seed=0)
    assert lengths.sum() == 1000
    assert np.all((lengths[:-1] >= 50) & (lengths[:-1] <= 80)) and 1 <= lengths[-1] <= 80
    change = np.abs(np.diff(video_seed0, axis=0)).mean(axis=1)  # [999]
    at_cut = np.zeros(999, dtype=bool)
    at_cut[np.cumsum(lengths)[:-1] - 1] = True
    assert at_cut.sum() == len(lengths) - 1 >= 12
    assert change[at_cut].min() > 2 * change[~at_cut].max()
    assert change[at_cut].min() > 4 * np.median(change[~at_cut])


def test_deterministic_per_seed_and_prefix_stable(video_seed0: np.ndarray) -> None:
    np.testing.assert_array_equal(generate_stimulus(1000, seed=0), video_seed0)
    np.testing.assert_array_equal(generate_stimulus(300, seed=0), video_seed0[:300])
    assert not np.allclose(generate_stimulus(300, seed=1), video_seed0[:300])


def test_noise_adds_sigma_and_stays_in_range(video_seed0: np.ndarray) -> None:
    clean = video_seed0[:400]
    noisy = generate_stimulus(400, seed=0, noise=0.03)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0
    diff = noisy.astype(np.float64) - clean
    unclipped = (clean > 0.15) & (clean < 0.85)  # 5σ from the bounds: no clipping
    assert unclipped.sum() > 10000
    assert abs(diff[unclipped].std() / 0.03 - 1) < 0.05
    assert abs(diff[unclipped].mean()) < 0.002
    loud = generate_stimulus(200, seed=0, noise=0.5)
    assert loud.min() == 0.0 and loud.max() == 1.0  # clipped after noise


def test_stimulus_statistics_definitions() -> None:
    rng = np.random.default_rng(0)
    rank1 = np.outer(rng.uniform(0.2, 1, 50), rng.uniform(0.2, 1, 30))
    s = stimulus_statistics(rank1)
    assert s["rank_90"] == 1 and s["rank_99"] == 1
    x = rng.standard_normal((200, 5)).cumsum(axis=0)
    expected = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    assert lag1_correlation(x) == pytest.approx(expected, abs=1e-12)
    assert set(s) == {"rank_90", "rank_99", "lag1_corr", "min", "max", "mean", "std"}
    with pytest.raises(DataError):
        stimulus_statistics(np.zeros(10))


# ----- dataset ---------------------------------------------------------------------------


def test_generate_flyvis_dataset_layout(tmp_path: Path) -> None:
    out = generate_flyvis(tmp_path / "f.zarr", frames=300, seed=1, progress=False)
    ds = open_dataset(out)
    assert ds.kind == "flyvis" and (ds.n_frames, ds.n_points) == (300, 1736)
    assert ds.frame_dt == pytest.approx(0.02)
    assert ds.components == {"stimulus": ["stimulus"]}
    assert ds.attrs["n_columns"] == 217 and ds.attrs["n_types"] == 8
    gen = ds.attrs["generator"]
    assert gen["name"] == "flyvis.natural_video"
    assert gen["parameters"]["seed"] == 1 and gen["parameters"]["frames"] == 300
    assert gen["parameters"]["noise"] == 0.0
    arr = ds.group["fields/stimulus"]
    assert arr.shape == (300, 1736, 1) and arr.dtype == np.float32 and arr.chunks[0] <= 256
    values = ds.read("fields/stimulus")[:, :, 0]
    np.testing.assert_array_equal(values, np.tile(generate_stimulus(300, seed=1), (1, 8)))
    for k in range(1, 8):  # 8 identical copies, type-major
        np.testing.assert_array_equal(values[:, k * 217 : (k + 1) * 217], values[:, :217])
    positions = ds.read("positions")
    assert positions.shape == (1736, 2) and positions.dtype == np.float32
    np.testing.assert_array_equal(positions, neuron_positions())
    win = ds.window("stimulus", 100, "center")
    assert win.values.shape == (100, 1736, 1) and win.positions.shape == (1736, 2)


def test_generate_flyvis_progress_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_flyvis(tmp_path / "quiet.zarr", frames=20, progress=False)
    assert capsys.readouterr().err == ""
    generate_flyvis(tmp_path / "loud.zarr", frames=20, progress=True)
    captured = capsys.readouterr()
    assert "frame" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"frames": 0}, "frames=0"),
        ({"frames": -5}, "frames=-5"),
        ({"frames": 2.5}, "frames=2.5"),
        ({"frames": 10, "noise": -0.1}, "noise=-0.1"),
        ({"frames": 10, "noise": float("nan")}, "noise=nan"),
        ({"frames": 10, "seed": -1}, "seed=-1"),
    ],
)
def test_bad_arguments_raise_data_error(tmp_path: Path, kwargs: dict, needle: str) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(DataError, match=needle) as info:
        generate_flyvis(out, progress=False, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()
    stim_kwargs = {"n_frames" if k == "frames" else k: v for k, v in kwargs.items()}
    with pytest.raises(DataError, match=needle):
        generate_stimulus(**stim_kwargs)
    with pytest.raises(DataError):
        generate_stimulus(10, extent=0)
