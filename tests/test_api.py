"""The Python API and the one config, run as a user runs them: run_search / load_run,
results.csv, search/block keys by YAML, flags and user_input.md, --resume --blocks."""

from __future__ import annotations

import signal
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml

from inr_tune import load_run, run_search
from inr_tune.journal import read_events
from tests.helpers import TINY, block_args, run_block, write_synthetic_mpm


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MPM experiment with a schedule of 24-frame windows (F, S, C)."""
    shipped = Path(__file__).parents[1] / "experiments" / "mpm_high_frames"
    d = tmp_path_factory.mktemp("tiny_experiment")
    for name in ("brief.md", "knowledge.md"):
        (d / name).write_text((shipped / name).read_text())
    raw = yaml.safe_load((shipped / "experiment.yaml").read_text())
    raw["name"] = "tiny"
    raw["schedule"] = [{"field": f, "n_frames": 24} for f in ("F", "S", "C")]
    (d / "experiment.yaml").write_text(yaml.safe_dump(raw))
    return d


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mpm(tmp_path_factory.mktemp("data") / "d.zarr", n_frames=40, n_points=50)


def _events(run: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run / "journal.jsonl") if e["event"] == kind]


@pytest.mark.slow
def test_run_search_returns_the_trials_as_a_dataframe(tmp_path: Path, dataset: Path) -> None:
    backend = matplotlib.get_backend()
    handler = signal.getsignal(signal.SIGINT)
    config = tmp_path / "search.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "block": {"iterations": 2, "parallel": 2},
                "search": {"seed_reruns": 0, "min_ratio": 1},
                "data": {"path": str(dataset)},
            }
        )
    )
    out = tmp_path / "run"
    df = run_search(config, out=out, frames=24, field="F", set=TINY, quiet=True)
    assert isinstance(df, pd.DataFrame)
    assert list(df["node"]) == [1, 2] and set(df["status"]) == {"ok"}
    for column in ("parent", "block", "holdout_r2", "compression_ratio", "model.hidden_dim"):
        assert column in df.columns, column
    assert (df["model.hidden_dim"] == 16).all() and (df["block"] == 1).all()
    on_disk = pd.read_csv(out / "results.csv")
    assert list(on_disk.columns) == list(df.columns)
    assert on_disk["holdout_r2"].tolist() == pytest.approx(df["holdout_r2"].tolist())
    again = load_run(out)
    assert again["holdout_r2"].tolist() == pytest.approx(df["holdout_r2"].tolist())
    assert matplotlib.get_backend() == backend  # no import switched the caller's backend
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's Ctrl-C handler is back


@pytest.mark.slow
def test_search_and_block_keys_change_the_run(tmp_path: Path, dataset: Path) -> None:
    """ucb_c, seed_reruns, space, iterations and parallel from a YAML file, the window and
    the proposer's seed from flags: each one shows in the journal."""
    space = yaml.safe_load((Path(__file__).parents[1] / "configs/spaces/mpm.yaml").read_text())
    space["params"] = {k: v for k, v in space["params"].items() if k in ("lr", "seed")}
    (tmp_path / "lr_only.yaml").write_text(yaml.safe_dump(space))
    config = tmp_path / "search.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "search": {"ucb_c": 0.7, "seed_reruns": 0, "space": str(tmp_path / "lr_only.yaml")},
                "block": {"iterations": 3, "parallel": 1},
            }
        )
    )
    out = tmp_path / "run"
    sets = [*TINY, f"data.path={dataset}"]
    flags = ["--frames", "24", "--field", "F", "--seed", "5", "--out", str(out)]
    r = run_block(str(config), *flags, *[a for s in sets for a in ("--set", s)])
    assert r.returncode == 0, r.stderr[-2000:]
    (start,) = _events(out, "block_start")
    assert start["ucb_c"] == 0.7 and (start["field"], start["n_frames"]) == ("F", 24)
    batches = _events(out, "batch_added")
    nodes = [n for b in batches for n in b["nodes"]]
    assert len(nodes) == 3 and all(len(b["nodes"]) == 1 for b in batches)  # parallel 1
    assert all(set(n["mutation"]) <= {"lr"} for n in nodes)  # the lr-only space
    assert not any(n["strategy"] == "robustness-test" for n in nodes)  # seed_reruns 0
    (run_start,) = _events(out, "run_start")
    assert "search.seed=5" in run_start["options"]["sets"]


@pytest.mark.slow
def test_user_input_changes_the_running_search_and_resume_adds_blocks(
    tmp_path: Path, dataset: Path, tiny_experiment: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "user_input.md").write_text(
        "set block.iterations=2\nset search.ucb_c=0.8\nset block.blocks=2\n"
        "set search.proposer=llm\n"
    )
    sets = [*TINY, f"data.path={dataset}", "search.seed_reruns=0"]
    flags = ("--experiment", str(tiny_experiment), "--out", str(out))
    r = run_block(*block_args(*flags, sets=sets, iterations=4, parallel=2))
    assert r.returncode == 0, r.stderr[-2000:]
    (ui,) = _events(out, "user_input")
    assert ui["settings"] == {"block.iterations": 2, "search.ucb_c": 0.8, "block.blocks": 2}
    assert len(ui["problems"]) == 1 and "search.proposer is fixed" in ui["problems"][0]
    assert [e["ucb_c"] for e in _events(out, "ucb_c_changed")][:1] == [0.8]
    starts = _events(out, "block_start")
    assert [s["block"] for s in starts] == [1, 2] and starts[1]["ucb_c"] == 0.8
    assert [s["field"] for s in starts] == ["F", "S"]
    df = load_run(out)
    assert df.groupby("block").size().tolist() == [2, 2]  # 2 trials each, not 4

    r = run_block("--resume", "--out", str(out), "--blocks", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert [s["block"] for s in _events(out, "block_start")] == [1, 2, 3]
    assert len(_events(out, "run_extended")) == 1 and len(_events(out, "run_end")) == 2
    df = pd.read_csv(out / "results.csv")
    assert df.groupby("block").size().tolist() == [2, 2, 2]
    r = run_block("--resume", "--out", str(out), "--blocks", "2")
    assert r.returncode == 2 and "fewer than the run's 3" in r.stderr
