"""A wheel (plain ``pip install .``) carries everything the search needs, not only a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage() -> None:
    """The package list in pyproject.toml is explicit (for the _shipped mapping): a new
    subpackage left out of it would be missing from wheels."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(ROOT), include=["inr_tune", "inr_tune.*"]))
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"
    assert listed - found == {"inr_tune._shipped.experiments", "inr_tune._shipped.configs"}


@pytest.mark.slow
def test_wheel_install_finds_experiments_and_spaces(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("inr_tune", "experiments", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("inr_tune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "inr_tune/_shipped/experiments/mpm_high_frames/experiment.yaml",
        "inr_tune/_shipped/experiments/flyvis_stimulus/brief.md",
        "inr_tune/_shipped/configs/spaces/mpm.yaml",
        "inr_tune/search/prompts/system.md",
    ):
        assert needed in names, needed
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import inr_tune\n"
        "from inr_tune.search.experiment import load_experiment\n"
        "print(inr_tune.__file__)\n"
        "for name in ('mpm', 'flyvis'):\n"
        "    e = load_experiment(name)\n"
        "    print(e.name, len(e.space.params))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # no checkout in sight
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(target)), lines[0]
    assert lines[1].startswith("mpm_high_frames ") and lines[2].startswith("flyvis_stimulus ")
