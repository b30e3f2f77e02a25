"""Importers of the older tools' files, through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from inr_tune.cli import run_cli
from inr_tune.data.__main__ import main
from inr_tune.data.store import open_dataset


def _x_list(n_frames: int = 30, n_points: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_frames, n_points, 21)).astype(np.float32)
    a[:, :, 0] = np.arange(n_points)
    a[:, :, 14] = np.arange(n_points) % 3
    a[:, :, 15] = 1.5e-5
    a[:, :, 20] = np.arange(n_points) // 4
    return a


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(main, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_import_mpm_maps_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "x_list_0.npy"
    a = _x_list()
    np.save(src, a)
    code, out, _ = _cli(
        ["import-mpm", str(src), "--out", str(tmp_path / "m.zarr"), "--quiet"], capsys
    )
    assert code == 0 and "wrote mpm dataset" in out
    ds = open_dataset(tmp_path / "m.zarr")
    assert (ds.n_frames, ds.n_points) == (30, 12)
    np.testing.assert_array_equal(ds.read("positions"), a[:, :, 1:3])
    np.testing.assert_array_equal(ds.read("velocity"), a[:, :, 3:5])
    np.testing.assert_array_equal(ds.read("fields/C"), a[:, :, 5:9])
    np.testing.assert_array_equal(ds.read("fields/F"), a[:, :, 9:13])
    np.testing.assert_array_equal(ds.read("fields/Jp"), a[:, :, 13:14])
    np.testing.assert_array_equal(ds.read("fields/S"), a[:, :, 16:20])
    np.testing.assert_array_equal(ds.read("material"), np.arange(12) % 3)
    np.testing.assert_array_equal(ds.read("disc"), np.arange(12) // 4)
    assert ds.frame_dt == pytest.approx(7.5e-5)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: np.save(p, np.zeros((5, 4, 20), np.float32)), "expected an array [T, N, 21]"),
        (lambda p: np.save(p, np.zeros((5, 21), np.float32)), "expected an array [T, N, 21]"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "is not a readable .npy array"),
        (lambda p: p.write_bytes(b"not numpy at all"), "is not a readable .npy array"),
        (lambda p: np.save(p, np.zeros((5, 4, 21), np.int32)), "expected a float array"),
    ],
)
def test_import_mpm_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, needle: str
) -> None:
    src = tmp_path / "bad.npy"
    make(src)
    code, _, err = _cli(
        ["import-mpm", str(src), "--out", str(tmp_path / "m.zarr"), "--quiet"], capsys
    )
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m.zarr").exists()


def test_import_mpm_truncated_and_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "x.npy"
    np.save(src, _x_list(n_frames=40))
    src.write_bytes(src.read_bytes()[:-500])
    code, _, err = _cli(
        ["import-mpm", str(src), "--out", str(tmp_path / "m.zarr"), "--quiet"], capsys
    )
    assert code == 2 and "not a readable .npy array" in err
    a = _x_list(n_frames=300)
    a[290, 3, 10] = np.inf
    np.save(src, a)
    code, _, err = _cli(
        ["import-mpm", str(src), "--out", str(tmp_path / "m.zarr"), "--quiet"], capsys
    )
    assert code == 2 and "NaN or inf" in err and "frames 256..299" in err
    assert not (tmp_path / "m.zarr").exists() and not any(
        p.name.startswith(".m.zarr") for p in tmp_path.iterdir()
    )


def _v2_stimulus(path: Path, n_frames: int = 300, width: int = 13741) -> np.ndarray:
    from numcodecs import Blosc

    rng = np.random.default_rng(0)
    data = np.zeros((n_frames, width), np.float32)
    k = min(width, 1736)
    data[:, :k] = rng.uniform(0, 1, size=(n_frames, k))
    arr = zarr.create_array(
        store=str(path),
        shape=data.shape,
        chunks=(100, width),
        dtype="float32",
        zarr_format=2,
        compressors=Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE),
    )
    arr[...] = data
    return data


def test_import_flyvis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "stimulus.zarr"
    data = _v2_stimulus(src)
    code, out, _ = _cli(
        ["import-flyvis", str(src), "--out", str(tmp_path / "f.zarr"), "--quiet"], capsys
    )
    assert code == 0, out
    ds = open_dataset(tmp_path / "f.zarr")
    assert ds.kind == "flyvis" and (ds.n_frames, ds.n_points) == (300, 1736)
    np.testing.assert_array_equal(ds.read("fields/stimulus")[:, :, 0], data[:, :1736])
    assert ds.read("positions").shape == (1736, 2)
    assert (
        ds.attrs["n_columns"] == 217
        and ds.attrs["n_types"] == 8
        and ds.frame_dt == pytest.approx(0.02)
    )


def test_import_flyvis_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.zarr"
    narrow = tmp_path / "narrow.zarr"
    _v2_stimulus(narrow, n_frames=20, width=100)
    code, _, err = _cli(["import-flyvis", str(narrow), "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "expected a stimulus array [T, ≥1736]" in err
    code, _, err = _cli(
        ["import-flyvis", str(tmp_path / "none.zarr"), "--out", str(out), "--quiet"], capsys
    )
    assert code == 2 and "does not exist" in err
    (tmp_path / "junk").mkdir()
    code, _, err = _cli(
        ["import-flyvis", str(tmp_path / "junk"), "--out", str(out), "--quiet"], capsys
    )
    assert code == 2 and "is not a zarr array" in err
    broken = tmp_path / "broken.zarr"
    _v2_stimulus(broken, n_frames=300)
    chunk = broken / "2.0"
    chunk.write_bytes(chunk.read_bytes()[:50])
    code, _, err = _cli(["import-flyvis", str(broken), "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "truncated or corrupt chunk" in err and err.count("\n") == 1
    assert not out.exists()
