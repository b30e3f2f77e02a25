"""Effective ranks of a block's window: rank_90/rank_99 of [T, N·C], uncentred and centred,
over the full spectrum; cached per window; shown in memory.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inr_tune import metrics, spectrum
from inr_tune.config_files import load_config
from inr_tune.metrics import effective_ranks, window_ranks
from inr_tune.reports.memory import render_memory
from inr_tune.reports.ranks import format_ranks, load_or_compute_ranks
from inr_tune.search.tree import Tree
from tests.helpers import write_synthetic_mpm

# σ² of the centred part: cumulative 0.60, 0.85, 0.95, 0.98, 0.995, 1 → rank_90 3, rank_99 5.
# The mean adds one direction of σ² 1900, orthogonal to them: uncentred cumulative 0.95,
# 0.98, 0.9925 of 2000 → rank_90 1, rank_99 3.
SIGMA2 = np.array([60.0, 25.0, 10.0, 3.0, 1.5, 0.5])
EXPECTED = {"rank_90": 1, "rank_99": 3, "centred_rank_90": 3, "centred_rank_99": 5}


def _known(t: int, m: int, offset: float = 0.0, seed: int = 0) -> np.ndarray:
    """[t, m] = 1·cᵀ + U·diag(σ)·Vᵀ with U ⊥ 1 and V ⊥ c, |c|²·t = 1900 (+ ``offset``)."""
    rng = np.random.default_rng(seed)
    k = len(SIGMA2)
    u, _ = np.linalg.qr(np.column_stack([np.ones(t), rng.normal(size=(t, k))]))
    v, _ = np.linalg.qr(rng.normal(size=(m, k + 1)))
    c = v[:, 0] * np.sqrt(1900.0 / t)
    x = np.outer(np.ones(t), c) + u[:, 1:] @ np.diag(np.sqrt(SIGMA2)) @ v[:, 1:].T
    return x + offset


@pytest.mark.parametrize("shape", [(40, 150), (150, 40)])  # both sides of the Gram matrix
@pytest.mark.parametrize("chunk", [1 << 20, 97])  # one chunk, or many
def test_known_ranks(shape: tuple[int, int], chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spectrum, "_CHUNK_VALUES", chunk)  # the module window_ranks reads
    x = _known(*shape)
    assert window_ranks(x.reshape(shape[0], -1, 1)) == EXPECTED
    assert window_ranks(x.reshape(shape[0], -1, 2) if shape[1] % 2 == 0 else x[:, :, None]) == (
        EXPECTED
    )
    assert effective_ranks(x) == [1, 3] and effective_ranks(x, centred=True) == [3, 5]
    # a mean 1e5 times the structure: centring chunk by chunk loses nothing
    big = _known(*shape, offset=1e5)
    assert effective_ranks(big, centred=True) == [3, 5]
    assert effective_ranks(big) == [1, 1]


def test_matches_a_full_svd_without_a_cap() -> None:
    rng = np.random.default_rng(1)
    t, n, c = 80, 70, 3  # 80 singular values, many beyond 50
    vals = (rng.normal(size=(t, n, c)) + 2.0).astype(np.float32)

    def by_svd(x: np.ndarray) -> list[int]:
        s2 = np.linalg.svd(x.astype(np.float64), compute_uv=False) ** 2
        cum = np.cumsum(s2) / s2.sum()
        return [int(np.searchsorted(cum, f - 1e-12) + 1) for f in (0.9, 0.99)]

    flat = vals.reshape(t, -1)
    got = window_ranks(vals)
    assert [got["rank_90"], got["rank_99"]] == by_svd(flat)
    assert [got["centred_rank_90"], got["centred_rank_99"]] == by_svd(flat - flat.mean(0))
    assert got["centred_rank_99"] > 50  # the old top-50 cap would have hidden it
    assert effective_ranks(flat, (0.99,), top=50, centred=True)[0] <= 50


def test_block_window_ranks_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inr_tune.data.store import open_dataset

    data = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=30)
    cfg = load_config(None, ["data.n_frames=24", "data.field=C"]).data
    ds = open_dataset(data)
    want = window_ranks(ds.window("C", 24, "center").values)
    got = load_or_compute_ranks(str(data), cfg, "abc123", cache_dir=tmp_path / "cache")
    assert got == want and len(list((tmp_path / "cache").glob("*.json"))) == 1

    def boom(values: np.ndarray) -> dict[str, int]:
        raise AssertionError("computed twice")

    monkeypatch.setattr(metrics, "window_ranks", boom)
    assert load_or_compute_ranks(str(data), cfg, "abc123", cache_dir=tmp_path / "cache") == want
    # another dataset hash is another window: computed (here: fails, reported, None)
    assert load_or_compute_ranks(str(data), cfg, "other", cache_dir=tmp_path / "cache") is None


def test_ranks_in_memory_md() -> None:
    assert format_ranks(EXPECTED) == "rank_90/99: 1/3 (centred 3/5)"
    assert format_ranks(None) == ""
    start = {"event": "block_start", "block": 1, "field": "F", "n_frames": 400, "ranks": EXPECTED}
    text = render_memory([start], Tree(), metrics.MPM_CLASSES, "t")
    assert "Window rank_90/99: 1/3 (centred 3/5) of the [T, N·C] matrix" in text
    end = {"event": "block_end", "block": 1, "field": "F", "n_frames": 400, "best": None}
    text = render_memory([start, end], Tree(), metrics.MPM_CLASSES, "t")
    assert "| 1 | F | 400 | 1/3 (3/5) | - | failed |" in text
    assert "Rank 90/99 (centred)" in text
