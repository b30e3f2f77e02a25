"""``python -m inr_tune.data`` as a user runs it: help, generate, info, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inr_tune.cli import run_cli
from inr_tune.data.__main__ import main
from tests.helpers import write_synthetic_mpm


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inr_tune.data", *args], capture_output=True, text=True, timeout=300
    )


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(main, args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["generate"],
        ["generate", "mpm"],
        ["generate", "flyvis"],
        ["import-mpm"],
        ["import-flyvis"],
        ["info"],
        ["default"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0


def test_generate_and_info_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "m.zarr"
    r = _run(
        "generate",
        "mpm",
        "--out",
        str(out),
        "--particles-per-disc",
        "10",
        "--frames",
        "12",
        "--substeps-per-frame",
        "2",
        "--skip-substeps",
        "0",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert "wrote mpm dataset" in r.stdout and "12 frames × 90 points" in r.stdout
    r = _run("info", str(out))
    assert r.returncode == 0, r.stderr
    for needle in (
        "kind      mpm",
        "frames    12",
        "points    90",
        "F         4 components",
        "Jp        1 components",
    ):
        assert needle in r.stdout
    r = _run("generate", "flyvis", "--out", str(tmp_path / "f.zarr"), "--frames", "300", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "300 frames × 1736 points" in r.stdout
    info = json.loads(_run("info", str(tmp_path / "f.zarr"), "--json").stdout)
    assert info["kind"] == "flyvis" and info["fields"]["stimulus"]["components"] == ["stimulus"]
    lo, hi = info["fields"]["stimulus"]["range"][0]
    assert 0.0 <= lo <= hi <= 1.0


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    r = _run("info", str(tmp_path / "missing.zarr"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_refuses_to_overwrite_and_bad_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = write_synthetic_mpm(tmp_path / "d.zarr")
    code, _, err = _cli(
        ["generate", "mpm", "--out", str(existing), "--frames", "2", "--quiet"], capsys
    )
    assert code == 2 and "already exists; pass --force" in err
    code, _, err = _cli(
        ["generate", "mpm", "--out", str(tmp_path / "n.zarr"), "--set", "params.gravityy=1"], capsys
    )
    assert code == 2 and "params.KEY=VALUE with KEY one of" in err
    code, _, err = _cli(
        ["generate", "mpm", "--out", str(tmp_path / "n.zarr"), "--frames", "0"], capsys
    )
    assert code == 2 and "must be ≥ 1" in err
    assert not (tmp_path / "n.zarr").exists()


def test_info_of_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_synthetic_mpm(tmp_path / "d.zarr")
    code, out, _ = _cli(["info", str(path), "--hash"], capsys)
    assert code == 0 and "content   " in out and "generator test.synthetic" in out
