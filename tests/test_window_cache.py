"""The window and standardisation a process keeps for its next trial (a kept Ray worker):
the same data as a fresh read, a fresh read when the request or the files change, and a
shared normalised tensor no trial writes to."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from inr_tune.config_files import load_config
from inr_tune.data.store import open_dataset
from inr_tune.models.standardize import Standardizer
from inr_tune.training import window_cache
from inr_tune.training.fit import run_trial
from tests.helpers import write_synthetic_mpm


@pytest.fixture
def dataset(tmp_path: Path) -> Iterator[Path]:
    window_cache.clear()
    yield write_synthetic_mpm(tmp_path / "d.zarr", n_frames=30, n_points=40)
    window_cache.clear()


def cfg_of(path: Path, *sets: str):
    return load_config(None, [f"data.path={path}", "data.n_frames=20", *sets])


def test_the_same_request_on_unchanged_files_reads_once(dataset: Path) -> None:
    first, _ = window_cache.load_window(cfg_of(dataset))
    again, _ = window_cache.load_window(cfg_of(dataset))
    assert again is first
    fresh = open_dataset(dataset).window("F", 20, "center")
    np.testing.assert_array_equal(first.values, fresh.values)
    np.testing.assert_array_equal(first.positions, fresh.positions)
    # another field, length or offset is another window
    assert window_cache.load_window(cfg_of(dataset, "data.field=S"))[0].field == "S"
    other, _ = window_cache.load_window(cfg_of(dataset, "data.offset=start"))
    assert other.start == 0 and other is not first


def test_changed_files_are_read_again(dataset: Path, tmp_path: Path) -> None:
    first, _ = window_cache.load_window(cfg_of(dataset))
    # the store writes a dataset anew into another directory and renames it into place
    copy = tmp_path / "new.zarr"
    write_synthetic_mpm(copy, n_frames=30, n_points=40, seed=5)
    shutil.rmtree(dataset)
    os.rename(copy, dataset)
    second, _ = window_cache.load_window(cfg_of(dataset))
    assert second is not first
    assert not np.array_equal(second.values, first.values)
    np.testing.assert_array_equal(second.values, open_dataset(dataset).window("F", 20).values)


def test_standardised_is_kept_for_the_same_array_only() -> None:
    window_cache.clear()
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(12, 30, 4)) * [1, 10, 0.1, 3] + 7).astype(np.float32)
    st1, norm1 = window_cache.standardised(values)
    st2, norm2 = window_cache.standardised(values)
    assert norm2 is norm1 and st2 is not st1  # a new module, the same buffers' values
    ref = Standardizer.fit(torch.as_tensor(values))
    for st in (st1, st2):
        torch.testing.assert_close(st.mean, ref.mean)
        torch.testing.assert_close(st.std, ref.std)
    torch.testing.assert_close(norm1, ref.normalize(torch.as_tensor(values)))
    _, norm3 = window_cache.standardised(values.copy())  # equal values, another array
    assert norm3 is not norm1
    window_cache.clear()


def test_two_trials_in_one_process_share_the_window_and_leave_it_unchanged(
    dataset: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    sets = ("training.total_steps=64", "training.eval_every=32", "training.device=cpu")
    cfg = cfg_of(dataset, *sets)
    first = run_trial(cfg, tmp_path / "a")
    window, _ = window_cache.load_window(cfg)
    kept = window.values.copy()
    _, normalised = window_cache.standardised(window.values)
    before = normalised.clone()
    second = run_trial(cfg, tmp_path / "b")
    assert window_cache.load_window(cfg)[0] is window  # the second trial read nothing
    np.testing.assert_array_equal(window.values, kept)
    torch.testing.assert_close(normalised, before, rtol=0, atol=0)
    # the same config and seed on the same data: the same fit
    assert second["final_r2"] == pytest.approx(first["final_r2"], rel=1e-6)
