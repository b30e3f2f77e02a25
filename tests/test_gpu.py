"""Trials on a CUDA GPU (skipped without one): training, and the memory estimate that the
block's fit check relies on held against what the trial really used.

Run on a GPU machine with ``python -m pytest -m gpu`` (benchmarks/device_checks.sh does).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inr_tune.config_files import load_config
from inr_tune.training.fit import run_trial
from tests.helpers import write_synthetic_mpm

pytestmark = pytest.mark.gpu

ON_CUDA = ["training.device=cuda", "training.eval_every=100000", "training.log_every=16"]


@pytest.fixture(scope="module")
def reference_sized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 frames of 9000 points: the reference MPM window's size."""
    return write_synthetic_mpm(
        tmp_path_factory.mktemp("data") / "d.zarr", n_frames=400, n_points=9000
    )


def test_a_trial_trains_on_cuda(tmp_path: Path) -> None:
    dataset = write_synthetic_mpm(tmp_path / "d.zarr", n_frames=40, n_points=60)
    cfg = load_config(
        None,
        [
            *ON_CUDA,
            f"data.path={dataset}",
            "data.n_frames=24",
            "model.inr_type=siren_txy",
            "model.hidden_dim=64",
            "model.n_layers=2",
            "training.lr=1e-3",
            "training.total_steps=800",
        ],
    )
    m = run_trial(cfg, tmp_path / "trial")
    assert m["status"] == "ok", m["error"]
    assert m["device"] == "cuda" and m["steps_done"] == 800
    assert m["final_r2"] > 0.5, m["final_r2"]
    assert 0 < m["peak_memory_gb"] <= m["expected_memory_gb"]


@pytest.mark.parametrize(
    "sets",
    [
        ["model.inr_type=siren_txy", "model.hidden_dim=256", "model.n_layers=4"],
        [
            "model.inr_type=siren_txy",
            "model.hidden_dim=256",
            "model.n_layers=4",
            "training.batch_size=8",
        ],
        [
            "model.inr_type=siren_t",
            "model.hidden_dim=128",
            "model.n_layers=3",
            "training.batch_size=8",
        ],
        ["model.inr_type=ngp", "model.hidden_dim=64", "model.n_layers=2"],
    ],
    ids=["siren_txy-256x4-b1", "siren_txy-256x4-b8", "siren_t-128x3-b8", "ngp-64x2"],
)
def test_memory_estimate_bounds_the_peak(
    sets: list[str], reference_sized: Path, tmp_path: Path
) -> None:
    """expected_memory_gb (what the block checks before packing trials on a GPU) is above
    what the trial held, and not so far above that good configs would be refused."""
    cfg = load_config(
        None,
        [*ON_CUDA, f"data.path={reference_sized}", "training.total_steps=64", *sets],
    )
    m = run_trial(cfg, tmp_path / "trial")
    assert m["status"] == "ok", m["error"]
    peak, expected = m["peak_memory_gb"], m["expected_memory_gb"]
    assert 0 < peak <= expected, (peak, expected)
    assert expected <= 10 * peak + 0.5, (peak, expected)
