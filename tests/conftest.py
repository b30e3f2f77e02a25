"""Shared fixtures: a private dataset cache, small datasets, the GPU skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's ~/.cache: the default-dataset cache is a temp dir."""
    if "INR_TUNE_DATA" not in os.environ:
        os.environ["INR_TUNE_DATA"] = str(tmp_path_factory.mktemp("datasets"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
