"""Search space: shipped YAML, validation with precise reasons, moves, apply, config keys."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from inr_tune.config import Config
from inr_tune.errors import ConfigError, ProposalError
from inr_tune.search.space import SearchSpace, as_config, config_key, stored
from tests.yaml_validators import validate_shipped_yaml

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "configs" / "spaces"


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_yaml(SPACES / "mpm.yaml")


@pytest.fixture
def cfg() -> Config:
    return Config()  # lr 1.2e-4, 256×4, ω 8, 320k steps, batch 1, adam, cosine, clip 1.0


# ----------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", ["mpm.yaml", "flyvis.yaml"])
def test_shipped_spaces_load(name: str) -> None:
    validate_shipped_yaml(SPACES / name)
    space = SearchSpace.from_yaml(SPACES / name)
    for p in ("lr", "hidden_dim", "n_layers", "omega", "total_steps", "batch_size", "seed"):
        assert p in space.params
    assert space.seed_param() is not None and "seed" not in space.search_params


def test_mpm_space_contents(space: SearchSpace) -> None:
    assert space.param("hidden_dim").values == (
        8,
        16,
        24,
        32,
        48,
        64,
        96,
        128,
        192,
        256,
        384,
        512,
        640,
        768,
        896,
        1024,
        1280,
    )
    assert space.param("batch_size").values == (1, 2, 4, 8, 16, 32)
    assert space.param("grad_clip").values == (None, 0.5, 1.0, 2.0)
    assert space.param("points_per_step").values == (None, 256, 512, 1024, 2048, 4096)
    assert space.param("inr_type").values == (
        "siren_t",
        "siren_id",
        "siren_txy",
        "ngp",
        "factorized",
    )
    assert space.param("rank").values[0] == 2 and space.key_of("rank") == "model.rank"
    lr = space.param("lr")
    assert (lr.low, lr.high, lr.log) == (1e-6, 1e-2, True)
    assert (space.param("omega").low, space.param("omega").high) == (1.0, 200.0)
    assert space.key_of("omega") == "model.omega" and space.key_of("model.omega") == "model.omega"


def test_flyvis_space_is_wider() -> None:
    fly = SearchSpace.from_yaml(SPACES / "flyvis.yaml")
    assert fly.param("omega").high == 3000.0 and fly.param("lr").low == 1e-8
    assert max(fly.param("batch_size").values) == 256
    # t_period reaches ×8 either way of the blocks' own (1 / (2π/1000 · n): 15.9 … 0.0025)
    t_period = fly.param("t_period")
    assert t_period.low <= 1 / (2e-3 * math.pi * 64000) / 8
    assert t_period.high >= 8 / (2e-3 * math.pi * 10)


# ----------------------------------------------------------------------------- validate


def test_validate_returns_old_and_new(space: SearchSpace, cfg: Config) -> None:
    assert space.validate(cfg, {"omega": 12}) == {"omega": (8.0, 12.0)}
    assert space.validate(cfg, {"model.hidden_dim": 384}) == {"hidden_dim": (256, 384)}
    assert space.validate(cfg, {"lr": "1e-4"}) == {"lr": (1.2e-4, 1e-4)}  # text parsed
    assert space.validate(cfg, {"n_layers": 3.0}) == {"n_layers": (4, 3)}  # 3.0 is an int
    assert space.validate(cfg, {"grad_clip": None}) == {"grad_clip": (1.0, None)}
    assert space.validate(cfg, {"grad_clip": "null"}) == {"grad_clip": (1.0, None)}
    assert space.validate(cfg, {"batch_size": 8.0}) == {"batch_size": (1, 8)}
    assert space.validate(cfg, {"optimizer": "sgd"}) == {"optimizer": ("adam", "sgd")}


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"omega": 5000}, "omega=5000 is out of range for this space: 1..200"),
        ({"lr": 1.0}, "lr=1 is out of range for this space: 1e-6..0.01"),
        ({"dropout": 0.1}, "unknown parameter 'dropout'; allowed: lr, hidden_dim, n_layers,"),
        ({"n_layers": 4}, "parent config already has n_layers=4"),
        ({"omega": 8}, "parent config already has omega=8"),
        ({"lr": 1e-4, "omega": 12}, "a mutation changes exactly one parameter; got 2 (lr, omega)"),
        ({}, "a mutation changes exactly one parameter; got 0"),
        ({"n_layers": 3.5}, "n_layers=3.5 must be a whole number"),
        ({"lr": True}, "lr=true is not a number"),
        ({"lr": None}, "lr=null is not a number"),
        ({"lr": float("nan")}, "lr=nan is not a finite number"),
        ({"omega": float("inf")}, "omega=inf is not a finite number"),
        ({"lr": "fast"}, "lr='fast' is not a number"),
        ({"lr": [1e-4]}, "lr must be a single value, got list"),
        (
            {"batch_size": 3},
            "batch_size=3 is not allowed for this space; one of: 1, 2, 4, 8, 16, 32",
        ),
        ({"batch_size": 1e12}, "batch_size=1e12 is not allowed for this space"),
        (
            {"optimizer": "Adam"},
            "optimizer=Adam is not allowed for this space; one of: adam, adamw",
        ),
        ({"optimizer": True}, "optimizer=true is not allowed"),
        ({"hidden_dim": None}, "hidden_dim=null is not allowed"),
        ({"seed": 3}, "seed may change only in a robustness-test"),
    ],
)
def test_validate_refuses_with_a_reason(
    space: SearchSpace, cfg: Config, mutation: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProposalError) as err:
        space.validate(cfg, mutation)
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_robustness_tests_change_only_the_seed(space: SearchSpace, cfg: Config) -> None:
    assert space.validate(cfg, {"seed": 1}, strategy="robustness-test") == {"seed": (0, 1)}
    with pytest.raises(ProposalError, match="changes only seed, not lr"):
        space.validate(cfg, {"lr": 1e-4}, strategy="robustness-test")


def test_pinned_params_are_refused(space: SearchSpace, cfg: Config) -> None:
    pinned = {"model.omega": 8.0}
    with pytest.raises(ProposalError, match=r"model.omega is pinned to 8 by the user"):
        space.validate(cfg, {"omega": 12}, pinned)
    with pytest.raises(ProposalError, match="pinned"):
        space.validate(cfg, {"model.omega": 12}, {"omega": 8.0})
    assert space.validate(cfg, {"lr": 2e-4}, pinned) == {"lr": (1.2e-4, 2e-4)}


def test_child_config_must_validate(cfg: Config) -> None:
    loose = SearchSpace.from_dict(
        {"params": {"n_layers": {"key": "model.n_layers", "type": "int", "min": 1, "max": 64}}}
    )
    with pytest.raises(
        ProposalError, match=r"n_layers=40 gives an invalid config: model.n_layers=40"
    ):
        loose.validate(cfg, {"n_layers": 40})


# ----------------------------------------------------------------------------- apply, moves


def test_apply_makes_a_new_config(space: SearchSpace, cfg: Config) -> None:
    before = copy.deepcopy(cfg.to_dict())
    child = space.apply(cfg, {"omega": 12})
    assert child is not cfg and child.model.omega == 12.0
    assert cfg.to_dict() == before, "the parent was edited in place"
    assert child.replace(model={"omega": 8.0}) == cfg


def test_neighbours(space: SearchSpace, cfg: Config) -> None:
    assert space.neighbours(cfg, "lr") == [2.4e-4, 6e-5]
    assert space.neighbours(cfg, "hidden_dim") == [384, 192]
    assert space.neighbours(cfg, "n_layers") == [5, 3]
    assert space.neighbours(cfg, "omega") == [18.0, 12.0, 5.333]  # 8 − 10 is out of range
    assert space.neighbours(cfg, "total_steps") == [480000, 640000, 160000]
    assert space.neighbours(cfg, "batch_size") == [2]
    assert space.neighbours(cfg, "t_period") == [2.0, 0.5]
    assert space.neighbours(cfg, "optimizer") == ["adamw", "sgd", "rmsprop"]
    assert space.neighbours(cfg, "grad_clip") == [None, 0.5, 2.0]
    top = cfg.replace(model={"n_layers": 8, "hidden_dim": 300})
    assert space.neighbours(top, "n_layers") == [7]
    assert space.neighbours(top, "hidden_dim") == [384, 256], "off-list: nearest on each side"
    for p in space.params:
        for v in space.neighbours(cfg, p):
            space.validate(cfg, {p: v}, strategy="robustness-test" if p == "seed" else None)


def test_extremes_stay_in_bounds(space: SearchSpace, cfg: Config) -> None:
    assert space.param("lr").extreme(1.2e-4, 1) == 9.6e-4  # three ×2 moves
    assert space.param("lr").extreme(4e-3, 1) == 1e-2  # clipped to the bound
    assert space.param("hidden_dim").extreme(256, -1) == 96
    assert space.param("n_layers").extreme(2, -1) == 1
    assert space.param("n_layers").extreme(1, -1) is None
    assert space.param("optimizer").extreme("adam", 1) is None


# ----------------------------------------------------------------------------- config keys


def test_config_key(cfg: Config) -> None:
    assert config_key(cfg) == config_key(cfg.to_dict()) == config_key(Config())
    assert config_key(cfg.replace(model={"omega": 8})) == config_key(cfg)
    assert config_key(cfg.replace(training={"seed": 1})) != config_key(cfg)
    assert config_key(cfg.replace(model={"omega": 8.0000001})) != config_key(cfg)
    assert config_key(cfg.replace(search={"ucb_c": 2.0}, block={"parallel": 2})) == config_key(cfg)
    partial = {"model": {"omega": 8}}  # missing keys take their defaults
    assert config_key(partial) == config_key(cfg)
    assert as_config(cfg.to_dict()) == cfg and as_config(cfg.to_dict()) is not as_config(
        cfg.to_dict()
    )


# ----------------------------------------------------------------------------- bad YAML


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "min": 1, "max": 2}, "needs key: section.key"),
        ({"key": "model.dropout", "type": "float", "min": 0, "max": 1}, "unknown key 'dropout'"),
        ({"key": "model.omega", "type": "float", "min": 5, "max": 1}, "min=5 must be < max=1"),
        (
            {"key": "model.omega", "type": "float", "min": 0, "max": 1, "log": True},
            "log: true needs min > 0",
        ),
        (
            {"key": "model.omega", "type": "float", "min": 1, "max": 9, "moves": ["^2"]},
            "move '^2' is not understood",
        ),
        (
            {"key": "model.omega", "type": "complex", "min": 1, "max": 9},
            "type must be float or int",
        ),
        (
            {"key": "model.omega", "type": "float", "min": "a", "max": 9},
            "min must be a finite number",
        ),
        ({"key": "model.omega", "values": [1, 2], "min": 1}, "give either values or type/min/max"),
        ({"key": "model.omega", "values": []}, "values must be a non-empty list"),
        ({"key": "model.omega", "values": [1, 1]}, "values has duplicates"),
        (
            {"key": "model.omega", "values": [1, 2], "moves": ["*2"]},
            "is not understood for a value list",
        ),
        ({"key": "model.omega", "values": [1, 2], "colour": "red"}, "unknown field 'colour'"),
        (
            {"key": "model.omega", "values": [1, 2], "probe": "sideways"},
            "probe='sideways' not allowed",
        ),
        ("omega", "must be a mapping"),
    ],
)
def test_malformed_space_names_the_parameter(tmp_path: Path, spec: Any, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "params": {"omega": spec}}))
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_yaml(path)
    text = str(err.value)
    assert "'omega'" in text and message in text, text
    assert "\n" not in text


def test_malformed_space_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SearchSpace.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SearchSpace.from_yaml(bad)
    bad.write_text("params: 3\n")
    with pytest.raises(ConfigError, match="'params' mapping"):
        SearchSpace.from_yaml(bad)
    with pytest.raises(ConfigError, match=r"repeats key model\.omega"):
        SearchSpace.from_dict(
            {
                "params": {
                    "w": {"key": "model.omega", "values": [1, 2]},
                    "omega": {"key": "model.omega", "values": [1, 2]},
                }
            }
        )


@pytest.mark.parametrize("name", ["mpm.yaml", "flyvis.yaml"])
def test_child_key_matches_the_built_child(name: str, cfg: Config) -> None:
    """``StoredConfig.child_key`` (the searcher's shortcut) keys every valid one-value child
    of the shipped spaces as ``config_key`` keys the built Config."""
    space = SearchSpace.from_yaml(SPACES / name)
    base = stored(cfg.to_dict())
    assert base.key == config_key(cfg) and base.get("training.lr") == cfg.training.lr
    checked = 0
    for pname in space.params:
        p = space.param(pname)
        for value in p.neighbours(cfg.get(p.key)) + [v for v in p.values if v is not None]:
            try:
                child = space.apply(cfg, {pname: value})
            except ProposalError:
                continue
            assert base.child_key(p.key, p.coerce(value)) == config_key(child), (pname, value)
            checked += 1
    assert checked > 20


def test_stored_is_cached_by_content_and_identity(cfg: Config) -> None:
    raw = cfg.to_dict()
    assert stored(raw) is stored(raw) is stored(copy.deepcopy(raw))
    assert stored(raw).config == as_config(raw)
