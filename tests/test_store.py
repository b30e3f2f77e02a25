"""Zarr store: layout, atomic writes, windows, and one-line errors on bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from inr_tune.data.store import DatasetWriter, FrameArray, open_dataset, resolve_offset
from inr_tune.errors import DataError
from tests.helpers import synthetic_mpm_arrays, write_synthetic_mpm


def test_round_trip_and_layout(tmp_path: Path) -> None:
    path = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=30)
    ds = open_dataset(path)
    assert ds.kind == "mpm" and ds.n_frames == 40 and ds.n_points == 30
    assert ds.fields == ["F", "C", "S", "Jp"]
    g = zarr.open_group(str(path), mode="r")
    assert g["positions"].shape == (40, 30, 2) and g["positions"].dtype == np.float32
    assert g["fields/F"].shape == (40, 30, 4) and g["fields/Jp"].shape == (40, 30, 1)
    assert g["material"].dtype == np.int8 and g["disc"].dtype == np.int16
    assert g["fields/F"].chunks[0] <= 256
    for key in (
        "format_version",
        "kind",
        "n_frames",
        "n_points",
        "frame_dt",
        "components",
        "generator",
    ):
        assert key in g.attrs
    expect = synthetic_mpm_arrays(40, 30)
    np.testing.assert_array_equal(ds.read("fields/C"), expect["fields/C"])
    lo, hi = ds.attrs["value_range"]["Jp"][0]
    assert lo == pytest.approx(expect["fields/Jp"].min()) and hi == pytest.approx(
        expect["fields/Jp"].max()
    )


def test_windows(tmp_path: Path) -> None:
    ds = open_dataset(write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40))
    full = ds.read("fields/F")
    w = ds.window("F", 10)
    assert w.start == 15 and w.values.shape == (10, 30, 4) and w.positions.shape == (10, 30, 2)
    np.testing.assert_array_equal(w.values, full[15:25])
    assert ds.window("F", 10, "start").start == 0
    np.testing.assert_array_equal(ds.window("Jp", 5, 35).values, ds.read("fields/Jp")[35:40])
    with pytest.raises(
        DataError, match=r"window of 41 frames is longer than the data \(40 frames\)"
    ):
        ds.window("F", 41)
    with pytest.raises(DataError, match=r"allowed offsets: 0\.\.30"):
        ds.window("F", 10, 31)
    with pytest.raises(DataError, match="valid fields: F, C, S, Jp"):
        ds.window("stress", 10)
    assert resolve_offset("center", 400, 1000) == 300


def test_window_reads_only_its_frames(tmp_path: Path) -> None:
    """Corrupting a chunk outside the window does not affect the window read."""
    path = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=48)  # chunks of 16 frames
    chunk = path / "fields" / "F" / "c" / "2" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(chunk.read_bytes()[:10])
    ds = open_dataset(path)
    assert ds.window("F", 16, "start").values.shape == (16, 30, 4)
    with pytest.raises(DataError, match="truncated or corrupt chunk"):
        ds.window("F", 48)


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.zarr"
    with (
        pytest.raises(RuntimeError),
        DatasetWriter(
            out,
            kind="mpm",
            n_frames=4,
            n_points=2,
            frame_dt=1.0,
            frame_arrays={"positions": FrameArray((2, 2)), "fields/Jp": FrameArray((2, 1))},
            components={"Jp": ["Jp"]},
        ) as w,
    ):
        w.write(0, {"positions": np.zeros((2, 2, 2)), "fields/Jp": np.ones((2, 2, 1))})
        raise RuntimeError("killed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_incomplete_or_nan_write_is_refused_and_old_data_kept(tmp_path: Path) -> None:
    out = write_synthetic_mpm(tmp_path / "x.zarr", n_frames=20)
    before = open_dataset(out).read("fields/F")
    spec = {"positions": FrameArray((2, 2)), "fields/Jp": FrameArray((2, 1))}
    with (
        pytest.raises(DataError, match="frames missing"),
        DatasetWriter(
            out,
            kind="mpm",
            n_frames=4,
            n_points=2,
            frame_dt=1.0,
            frame_arrays=spec,
            components={"Jp": ["Jp"]},
        ) as w,
    ):
        w.write(0, {"positions": np.zeros((2, 2, 2)), "fields/Jp": np.ones((2, 2, 1))})
    with (
        pytest.raises(DataError, match="NaN or inf"),
        DatasetWriter(
            out,
            kind="mpm",
            n_frames=1,
            n_points=2,
            frame_dt=1.0,
            frame_arrays=spec,
            components={"Jp": ["Jp"]},
        ) as w,
    ):
        w.write(0, {"fields/Jp": np.full((1, 2, 1), np.nan)})
    np.testing.assert_array_equal(open_dataset(out).read("fields/F"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nope.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is not an inr_tune dataset"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(DataError, match="is not an inr_tune dataset"):
        open_dataset(tmp_path / "file.txt")
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.attrs["hello"] = 1
    with pytest.raises(DataError, match="attrs missing"):
        open_dataset(tmp_path / "plain.zarr")


def test_nan_in_stored_data_is_reported(tmp_path: Path) -> None:
    path = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=32)
    g = zarr.open_group(str(path), mode="r+")
    g["fields/S"][3, 4, 1] = np.nan
    ds = open_dataset(path)
    with pytest.raises(DataError, match="NaN or inf"):
        ds.window("S", 32)
    assert np.isfinite(ds.window("F", 32).values).all()


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = open_dataset(write_synthetic_mpm(tmp_path / "a.zarr", seed=1)).content_hash()
    b = open_dataset(write_synthetic_mpm(tmp_path / "b.zarr", seed=1)).content_hash()
    c = open_dataset(write_synthetic_mpm(tmp_path / "c.zarr", seed=2)).content_hash()
    assert a == b != c
