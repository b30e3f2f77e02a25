"""Classical compressor baselines (PCA, ZFP, SZ3): curves, best_at, cache and CLI."""

from __future__ import annotations

import csv
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from inr_tune.baselines import (
    BaselinePoint,
    Baselines,
    compute_baselines,
    format_table,
    load_or_compute,
    nines,
    write_csv,
)
from inr_tune.cli import run_cli
from inr_tune.data.__main__ import main
from inr_tune.data.split import holdout_frames, train_frames
from inr_tune.errors import DataError
from tests.helpers import write_synthetic_mpm


def low_rank(t: int = 120, n: int = 40, c: int = 2, rank: int = 3, seed: int = 0) -> np.ndarray:
    """Rank ``rank`` in time × (space, component) plus a mean, smooth in time: [T, N, C]."""
    rng = np.random.default_rng(seed)
    tau = np.linspace(0.0, 1.0, t)[:, None]
    coef = np.sin(2 * np.pi * (np.arange(1, rank + 1) * 0.5 * tau + rng.uniform(size=rank)))
    space = rng.normal(size=(rank, n * c))
    values = 3.0 + coef @ space + 0.1 * rng.normal(size=(1, n * c))
    return values.reshape(t, n, c).astype(np.float32)


def smooth_field(t: int = 100, n: int = 60, seed: int = 1) -> np.ndarray:
    """A smooth, not low-rank [T, N, 2] field with a little noise."""
    rng = np.random.default_rng(seed)
    tau = np.linspace(0.0, 1.0, t)[:, None]
    x = rng.uniform(size=(1, n))
    a = np.sin(4 * x + 3 * tau) * np.exp(-tau * x)
    b = np.cos(7 * x * tau) + 0.5 * x**2
    v = np.stack([a, 10 * b], -1) + 0.01 * rng.normal(size=(t, n, 2))
    return v.astype(np.float32)


@pytest.fixture(scope="module")
def smooth() -> Baselines:
    return compute_baselines(smooth_field(), holdout_every=10)


# ------------------------------------------------------------------------- split


def test_holdout_frames_rule() -> None:
    held = holdout_frames(400, 10)
    assert held.dtype == np.int64 and len(held) == 40
    assert held[0] == 5 and held[-1] == 395 and np.all(np.diff(held) == 10)
    train = train_frames(400, 10)
    assert train.dtype == np.int64 and len(train) == 360
    assert not set(train) & set(held) and set(train) | set(held) == set(range(400))
    assert len(holdout_frames(400, 0)) == 0 and len(train_frames(400, 0)) == 400
    # the window's last frame is always trained on: held-out frames are interior
    assert holdout_frames(10, 2).tolist() == [1, 3, 5, 7]
    for bad in (1, -1):
        with pytest.raises(ValueError, match=r"0 .* or ≥ 2"):
            holdout_frames(400, bad)
        with pytest.raises(ValueError):
            train_frames(400, bad)


# --------------------------------------------------------------------------- pca


def test_pca_recovers_low_rank_data() -> None:
    t, n, c = 120, 40, 2
    b = compute_baselines(low_rank(t, n, c), holdout_every=10, methods=("pca",))
    assert b.unavailable == {} and b.methods == ["pca"]
    by_rank = {p.setting: p for p in b.points}
    assert by_rank["rank=1"].r2 < by_rank["rank=2"].r2 < by_rank["rank=3"].r2
    p3 = by_rank["rank=3"]
    # exact on the training frames; the held-out frames carry the interpolation's error
    assert p3.r2 > 0.99999 and p3.holdout_r2 is not None and p3.holdout_r2 > 0.9999
    assert by_rank["rank=2"].r2 < 0.999
    assert p3 is b.points[-1]  # stops once the training frames are reproduced
    # storage: k·(T_train + N·C) + N·C mean values + C scales, as float32
    t_train = len(train_frames(t, 10))
    stored_values = 3 * (t_train + n * c) + n * c + c
    assert p3.stored_bytes == 4 * stored_values
    assert p3.ratio == pytest.approx(t * n * c / stored_values)
    assert p3.max_abs_error < 0.05 and p3.psnr > 40


def test_pca_ranks_are_dense_at_the_low_end_and_stop_at_ratio_two() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(200, 300, 1)).astype(np.float32)  # full rank: never reaches 1
    b = compute_baselines(values, holdout_every=0, methods=("pca",))
    ranks = [int(p.setting.split("=")[1]) for p in b.points]
    assert ranks[:16] == list(range(1, 17)) and ranks[16:20] == [18, 20, 22, 24]
    # ratio 200·300 / (k·(200 + 300) + 301) is ≥ 2 up to k = 59: the last listed rank is 56
    assert all(p.ratio >= 2 for p in b.points) and ranks[-4:] == [44, 48, 52, 56]
    assert all(p.holdout_r2 is None for p in b.points)


# ---------------------------------------------------------------- all the methods


def test_curves_of_every_method(smooth: Baselines) -> None:
    assert smooth.unavailable == {}
    assert set(smooth.methods) == {"pca", "zfp", "sz3"}
    for method, prefix in (("pca", "rank="), ("zfp", "accuracy="), ("sz3", "rel=")):
        pts = [
            p
            for p in smooth.points
            if p.method == method and p.setting.startswith(prefix) and "unsorted" not in p.setting
        ]
        assert len(pts) >= 5
        # more bytes, better fidelity: R² falls (almost) monotonically as the ratio grows
        pts.sort(key=lambda p: p.ratio)
        r2 = [p.r2 for p in pts]
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(r2)), (method, r2)
        assert r2[0] > 0.999 and r2[-1] < r2[0]
        for p in pts:
            assert p.stored_bytes > 0 and p.seconds >= 0 and p.max_abs_error >= 0
            assert p.ratio == pytest.approx(100 * 60 * 2 / (p.stored_bytes / 4))
            assert p.holdout_r2 is not None and p.holdout_r2 <= 1
    rates = [p for p in smooth.points if p.method == "zfp" and p.setting.startswith("rate=")]
    assert {p.setting for p in rates} >= {"rate=1", "rate=2", "rate=4", "rate=8", "rate=16"}
    table = format_table(smooth)
    assert "held-out R²" in table and "accuracy=0.001" in table and "rel=0.01" in table


def test_constant_component_is_scored_not_crashed() -> None:
    values = smooth_field(40, 20)
    values[:, :, 1] = 2.5
    b = compute_baselines(values, holdout_every=4)
    assert b.unavailable == {}
    assert all(math.isfinite(p.r2) and p.r2 <= 1 for p in b.points)


def test_missing_library_is_reported_and_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zfpy", None)  # import zfpy raises ImportError
    b = compute_baselines(smooth_field(30, 20), holdout_every=10)
    assert set(b.unavailable) == {"zfp"} and "zfpy" in b.unavailable["zfp"]
    assert "\n" not in b.unavailable["zfp"]
    assert {"pca", "sz3"} <= set(b.methods) and "zfp" not in b.methods
    assert "zfp: unavailable (zfpy" in format_table(b)
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_baselines(smooth_field(30, 20), methods=("jpeg",))


# ------------------------------------------------------------------------ best_at


def _point(method: str, setting: str, ratio: float, r2: float, hold: float | None) -> BaselinePoint:
    return BaselinePoint(method, setting, ratio, r2, hold, 40.0, 0.1, 1000, 0.01)


def test_nines() -> None:
    assert nines(0.99) == pytest.approx(2) and nines(0.999) == pytest.approx(3)
    assert nines(1.0) == 9 and nines(1 - 1e-10) == 9 and nines(0.0) == 0


def test_best_at_interpolates_in_log_ratio_and_nines() -> None:
    b = Baselines(
        [
            _point("pca", "rank=2", 100.0, 0.99, 0.98),
            _point("pca", "rank=4", 10.0, 0.9999, 0.999),
            _point("pca", "rank=9", 5.0, 0.999, 0.99),  # dominated by rank=4: ignored
            _point("sz3", "rel=0.1", 400.0, 0.9, 0.9),
            _point("sz3", "rel=0.01", 40.0, 0.995, 0.996),
        ],
        {},
        100,
        10,
        1,
        10,
    )
    assert [p.setting for p in b.front("pca", holdout=False)] == ["rank=4", "rank=2"]
    # √(10·100) lies halfway in log ratio: pca halfway between 4 and 2 nines
    r2, src = b.best_at(math.sqrt(1000), holdout=False)
    assert r2 == pytest.approx(0.999) and src == "pca rank=2 .. rank=4"
    # held out, pca gives 1 − 10^−(3 + 1.70)/2 = 0.99553 there, but sz3 holds 0.996 at 40×
    assert b.best_at(math.sqrt(1000)) == (pytest.approx(0.996), "sz3 rel=0.01")
    f = math.log(12 / 10) / math.log(100 / 10)
    held = 1 - 10 ** -(3 + f * (nines(0.98) - 3))
    assert b.best_at(12.0) == (pytest.approx(held), "pca rank=2 .. rank=4")
    # exactly on a point; below every ratio: the best R² with more bytes
    assert b.best_at(100.0, holdout=False) == (pytest.approx(0.99), "pca rank=2")
    assert b.best_at(1.0, holdout=False) == (pytest.approx(0.9999), "pca rank=4")
    # pca cannot reach 200×; sz3 can (interpolated); nothing reaches 1000×
    r2, src = b.best_at(200.0, holdout=False)
    assert src == "sz3 rel=0.1 .. rel=0.01" and 0.9 < r2 < 0.995
    assert b.best_at(1000.0) is None
    with pytest.raises(ValueError):
        b.best_at(0.0)


def test_best_at_without_holdout_uses_r2() -> None:
    b = compute_baselines(low_rank(), holdout_every=0, methods=("pca",))
    p = b.points[0]
    assert p.holdout_r2 is None
    assert b.best_at(p.ratio) == (pytest.approx(p.r2), f"pca {p.setting}")
    assert Baselines([], {}, 1, 1, 1, 0).best_at(10.0) is None


# ----------------------------------------------------------------- rows, CSV, cache


def test_rows_and_csv_round_trip(smooth: Baselines, tmp_path: Path) -> None:
    b = Baselines(smooth.points, {"zfp": "zfpy is not installed"}, 100, 60, 2, 10)
    assert Baselines.from_rows(b.to_rows()) == b
    path = write_csv(b, tmp_path / "b.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(b.points) + 1
    assert Baselines.from_rows(rows) == b
    with pytest.raises(ValueError):
        Baselines.from_rows([])


def test_cache_is_written_read_and_repaired(tmp_path: Path) -> None:
    data = tmp_path / "m.zarr"
    write_synthetic_mpm(data, n_frames=40, n_points=30)
    cache = tmp_path / "cache"
    first = load_or_compute(data, "F", 32, holdout_every=4, cache_dir=cache)
    assert not first.from_cache and first.cache_path is not None
    assert first.cache_path.parent == cache and first.cache_path.exists()
    assert (first.n_frames, first.n_points, first.n_components) == (32, 30, 4)
    assert not list(cache.glob(".*"))  # no temporary file left behind
    second = load_or_compute(data, "F", 32, holdout_every=4, cache_dir=cache)
    assert second.from_cache and second == first
    first.cache_path.write_text('{"key": {"dataset": ')  # a half-written or corrupt file
    third = load_or_compute(data, "F", 32, holdout_every=4, cache_dir=cache)
    assert not third.from_cache and third.points[0].r2 == first.points[0].r2
    assert load_or_compute(data, "F", 32, holdout_every=4, cache_dir=cache).from_cache
    other = load_or_compute(data, "F", 32, holdout_every=0, cache_dir=cache)
    assert other.cache_path != first.cache_path and other.holdout_every == 0
    with pytest.raises(DataError, match="every=1"):
        load_or_compute(data, "F", 32, holdout_every=1, cache_dir=cache)
    with pytest.raises(DataError, match="valid fields"):
        load_or_compute(data, "Q", 32, cache_dir=cache)


# --------------------------------------------------------------------------- CLI


def test_cli_prints_table_and_writes_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m.zarr"
    write_synthetic_mpm(data, n_frames=40, n_points=30)
    out = tmp_path / "b.csv"
    args = ["baselines", str(data), "--field", "Jp", "--frames", "30", "--holdout", "5"]
    code = run_cli(main, [*args, "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "method" in stdout and "held-out R²" in stdout and "rank=1" in stdout
    last = stdout.strip().splitlines()[-1]
    assert f"wrote {out}" in last and "Jp@30" in last and "computed" in last
    with open(out, newline="") as f:
        b = Baselines.from_rows(list(csv.DictReader(f)))
    assert (b.n_frames, b.n_points, b.n_components, b.holdout_every) == (30, 30, 1, 5)
    assert {"pca", "zfp", "sz3"} == set(b.methods)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["/no/such/data.zarr", "--field", "F"], "does not exist"),
        (["DATA", "--field", "F", "--holdout", "1"], "--holdout 1"),
        (["DATA", "--field", "Q", "--frames", "10"], "valid fields"),
        (["DATA", "--field", "F", "--frames", "41"], "longer than the data"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m.zarr"
    if "DATA" in args:
        write_synthetic_mpm(data, n_frames=40, n_points=10)
    args = [str(data) if a == "DATA" else a for a in args]
    code = run_cli(main, ["baselines", *args, "--cache-dir", str(tmp_path / "c")])
    stdout, err = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_cli_help() -> None:
    with pytest.raises(SystemExit) as info:
        main(["baselines", "--help"])
    assert info.value.code == 0
