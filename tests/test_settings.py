"""One config: block flags, --set, a YAML, a Config and user_input.md set the same keys."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inr_tune.block import build_parser, resolve
from inr_tune.config import BlockConfig, Config, SearchConfig
from inr_tune.errors import ConfigError
from inr_tune.journal import Journal
from inr_tune.search.experiment import load_experiment
from inr_tune.search.session import LIVE_KEYS, RunContext
from inr_tune.search.tree import Tree
from inr_tune.settings import FLAG_KEYS, settings_from, settings_from_saved

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "configs" / "spaces" / "flyvis.yaml"

# a value other than the default for every search/block key
VALUES: dict[str, Any] = {
    "search.ucb_c": 0.7,
    "search.reward": "r2",
    "search.objective": "pareto",
    "search.min_ratio": 12.5,
    "search.searcher": "random",
    "search.proposer": "rule",
    "search.llm_model": "claude-haiku-4-5",
    "search.llm_timeout_s": 30.0,
    "search.llm_max_retries": 0,
    "search.space": str(SPACE),
    "search.seed": 7,
    "search.seed_reruns": 0,
    "block.experiment": "flyvis",
    "block.field": "S",
    "block.frames": 100,
    "block.iterations": 3,
    "block.blocks": 2,
    "block.parallel": 1,
    "block.early_stop": "asha",
    "block.address": "127.0.0.1:6379",
    "block.storage": "/tmp/results",
}


def _keys() -> list[str]:
    return [f"search.{f.name}" for f in dataclasses.fields(SearchConfig)] + [
        f"block.{f.name}" for f in dataclasses.fields(BlockConfig)
    ]


def test_every_search_and_block_key_has_a_test_value_differing_from_its_default() -> None:
    assert sorted(VALUES) == sorted(_keys())
    default = Config()
    for dotted, value in VALUES.items():
        assert default.get(dotted) != value, dotted


def test_default_yaml_lists_every_search_and_block_key_with_its_default() -> None:
    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    default = Config().to_dict()
    for section in ("search", "block"):
        assert raw[section] == default[section], section


@pytest.mark.parametrize("dotted", sorted(VALUES))
def test_each_key_by_set_yaml_config_and_flag_gives_the_same_settings(
    dotted: str, tmp_path: Path
) -> None:
    section, key = dotted.split(".")
    value = VALUES[dotted]
    by_set = settings_from(sets=[f"{dotted}={value}"]).config
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    by_yaml = settings_from(path).config
    cfg = Config()
    setattr(getattr(cfg, section), key, value)
    by_config = settings_from(cfg).config
    assert by_set.get(dotted) == by_yaml.get(dotted) == by_config.get(dotted) == value
    flag = next((f for f, k in FLAG_KEYS.items() if k == dotted), None)
    if flag is not None:  # the CLI flag, parsed as the user types it
        argv = [f"--{flag.replace('_', '-')}", str(value), "--out", str(tmp_path / "run")]
        settings, _ = resolve(build_parser().parse_args(argv))
        assert settings.config.get(dotted) == value
        assert settings_from(flags={flag: value}).config.get(dotted) == value


def test_later_wins_yaml_then_set_then_flag(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("block: {iterations: 5, parallel: 3}\nsearch: {ucb_c: 0.5}\n")
    s = settings_from(path, ["block.iterations=6", "search.ucb_c=0.6"], {"iterations": 7})
    assert (s.block.iterations, s.block.parallel, s.search.ucb_c) == (7, 3, 0.6)


def test_data_field_and_n_frames_name_the_first_blocks_window(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {field: C, n_frames: 100}\n")
    s = settings_from(path)
    assert (s.block.field, s.block.frames) == ("C", 100)
    assert settings_from(sets=["data.field=Jp"]).block.field == "Jp"


def test_an_older_options_json_reads_as_settings() -> None:
    saved = {
        "experiment": "mpm",
        "frames": 24,
        "iterations": 2,
        "ucb_c": 1.0,
        "set": ["training.lr=1e-3"],
        "early_stop": "none",
        "llm_model": None,
    }
    s = settings_from_saved(saved)
    assert (s.block.frames, s.block.iterations, s.search.ucb_c) == (24, 2, 1.0)
    assert "training.lr=1e-3" in s.sets


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "search.bogus=1"], "unknown key 'bogus' in section 'search'"),
        (["--set", "block.parallel=0"], "block.parallel=0 is out of range"),
        (["--set", "block.early_stop=hyperband"], "choose one of: none, asha"),
        (["--parallel", "0"], "block.parallel=0 is out of range"),
        (["--ucb-c", "11"], "search.ucb_c=11.0 is out of range"),
        (["--set", "search.space=/nope.yaml"], "search.space /nope.yaml: no such file"),
        (["--experiment", "nope"], "experiment 'nope' not found"),
        (["--searcher", "random", "--proposer", "llm"], "proposes for the UCB tree only"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(argv: list[str], needle: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "inr_tune.block", *argv, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_resume_takes_no_settings_but_more_blocks(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--resume", "--out", str(tmp_path), "--iterations", "3"])
    with pytest.raises(ConfigError, match="drop --iterations"):
        resolve(args)


def test_every_search_and_block_key_is_read_by_the_code() -> None:
    """No dead key: each search/block key is read somewhere outside config.py."""
    source = "\n".join(
        p.read_text()
        for p in (ROOT / "inr_tune").rglob("*.py")
        if p.name not in ("config.py", "settings.py")
    )
    for dotted in _keys():
        section, key = dotted.split(".")
        used = re.search(rf"\b{section}\.{key}\b|\.{key}\b", source)
        assert used, f"{dotted} is read nowhere"


# ----------------------------------------------------------------------------- user_input.md
def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(
        run_dir=tmp_path,
        journal=Journal(tmp_path / "journal.jsonl"),
        tree=Tree(),
        experiment=load_experiment("mpm"),
        proposer=None,  # type: ignore[arg-type]
        parallel=4,
        n_iter=8,
        reward="nines",
    )


def test_user_input_sets_each_live_key_and_refuses_the_others(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    live = {k: VALUES[k] for k in LIVE_KEYS}
    fixed = [k for k in VALUES if k not in LIVE_KEYS]
    lines = [f"set {k}={v}" for k, v in live.items()] + [f"set {k}={VALUES[k]}" for k in fixed]
    (tmp_path / "user_input.md").write_text("Please:\n" + "\n".join(lines) + "\n")
    assert ctx.read_user_input()
    assert ctx.overrides == live
    assert (ctx.n_iter, ctx.reward) == (3, "r2")
    assert ctx.experiment.space.name == "flyvis"
    event = ctx.journal.of("user_input")[-1]
    assert event["settings"] == live
    assert len(event["problems"]) == len(fixed)
    for key, problem in zip(fixed, event["problems"], strict=True):
        assert f"{key} is fixed when the run starts" in problem
    assert not ctx.read_user_input()  # unchanged text: nothing new


def test_user_input_bad_value_is_refused_not_applied(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (tmp_path / "user_input.md").write_text("set block.iterations=0\nset search.ucb_c=oops\n")
    ctx.read_user_input()
    event = ctx.journal.of("user_input")[-1]
    assert event["settings"] == {} and len(event["problems"]) == 2
    assert ctx.n_iter == 8


@pytest.mark.parametrize(
    "argv", [["--set", "search.ucb_c=2"], ["--set", "block.iterations=3"], ["YAML"]]
)
def test_a_training_refuses_search_and_block_keys(argv: list[str], tmp_path: Path) -> None:
    """A training does nothing with them: one line, exit 2; default.yaml itself runs."""
    if argv == ["YAML"]:
        path = tmp_path / "t.yaml"
        path.write_text("training: {lr: 0.001}\nsearch: {reward: r2}\n")
        argv = [str(path)]
    r = subprocess.run(
        [sys.executable, "-m", "inr_tune.train", *argv, "--out", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "configures a search, not a training" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_default_yaml_has_no_search_keys_a_training_refuses() -> None:
    from inr_tune.settings import search_keys_set

    assert search_keys_set(ROOT / "configs" / "default.yaml", []) == []
