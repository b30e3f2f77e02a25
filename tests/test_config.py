"""Typed config: YAML round trip, --set overrides, one-line errors, the older dialect."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from inr_tune.config import Config, config_from_dict, parse_set
from inr_tune.config_files import load_config, save_config
from inr_tune.errors import ConfigError
from inr_tune.models.variants import encode_time

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_design() -> None:
    cfg = Config()
    assert cfg.data.field == "F" and cfg.data.n_frames == 400 and cfg.data.offset == "center"
    assert cfg.model.inr_type == "siren_txy" and cfg.model.hidden_dim == 256
    assert cfg.training.lr == pytest.approx(1.2e-4) and cfg.training.total_steps == 320000
    assert cfg.search.ucb_c == pytest.approx(0.5) and cfg.search.reward == "nines"
    assert cfg.block.parallel == 4


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["training.lr=3e-5", "model.omega_hidden=12", "data.offset=7"])
    path = save_config(cfg, tmp_path / "c.yaml")
    again = load_config(path)
    assert again == cfg
    assert again.training.lr == pytest.approx(3e-5) and again.model.omega_hidden == 12.0


def test_config_yaml_is_the_text_safe_dump_writes() -> None:
    """The config files keep their text whichever emitter PyYAML has (libyaml or not)."""
    import yaml

    from inr_tune.config_files import config_yaml

    cfg = load_config(
        None, ["training.lr=3e-5", "training.grad_clip=null", "data.path=/tmp/a b/ü.zarr"]
    )
    for c in (Config(), cfg):
        assert config_yaml(c) == yaml.safe_dump(c.to_dict(), sort_keys=False)


def test_set_overrides_are_typed() -> None:
    cfg = load_config(
        None,
        ["training.points_per_step=512", "training.grad_clip=null", "model.omega_learning=true"],
    )
    assert cfg.training.points_per_step == 512
    assert cfg.training.grad_clip is None
    assert cfg.model.omega_learning is True
    assert parse_set("training.lr=1e-4") == (
        "training",
        "lr",
        "1e-4",
    )  # YAML 1.1 string, coerced later


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["training.lrr=1"], "unknown key 'lrr' in section 'training'; allowed: lr,"),
        (["optim.lr=1"], "unknown section 'optim'"),
        (["training.lr=fast"], "training.lr: expected float, got 'fast'"),
        (["training.lr=-1"], "training.lr=-1.0 is out of range; must be > 0.0"),
        (["training.batch_size=0"], "training.batch_size=0 is out of range; must be ≥ 1"),
        (["training.batch_size=2.5"], "training.batch_size: expected int, got 2.5"),
        (["model.inr_type=mlp"], "choose one of: siren_t, siren_id, siren_txy, ngp"),
        (["training.optimizer=lbfgs"], "training.optimizer='lbfgs' is not allowed"),
        (["model.omega_learning=3"], "model.omega_learning: expected bool"),
        (["data.offset=middle"], "use center, start or a frame index"),
        (["lr=1"], "must look like section.key"),
        (["training.lr"], "must look like section.key=value"),
    ],
)
def test_bad_values_give_one_line(sets: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, sets)
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg


def test_bad_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {lr: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("training:\n  learning_rate: 1e-4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'.*\(in .*unknown.yaml\)"):
        load_config(unknown)
    with pytest.raises(ConfigError, match="must be a mapping"):
        config_from_dict({"training": 3})


def test_older_dialect_is_mapped() -> None:
    notes: list[str] = []
    cfg = load_config(ROOT / "tests/fixtures/anchor_mpm_config.yaml", notes=notes)
    assert cfg.model.hidden_dim == 384 and cfg.model.n_layers == 3 and cfg.model.omega == 5.0
    assert cfg.model.inr_type == "siren_txy" and cfg.model.ngp_levels == 16
    assert cfg.model.lr_omega == pytest.approx(1e-6) and cfg.model.omega_learning is False
    assert cfg.training.lr == pytest.approx(2e-4) and cfg.training.total_steps == 600000
    assert cfg.training.seed == 42 and cfg.training.batch_size == 1
    assert cfg.data.n_frames == 400 and cfg.data.field == "Jp"
    assert cfg.search.ucb_c == pytest.approx(1.414)
    assert notes and "simulation.n_particles" in notes[0] and "training.n_epochs" in notes[0]


def test_older_dialect_inr_batch_size_and_periods(tmp_path: Path) -> None:
    path = tmp_path / "fly.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "graph_model": {
                    "hidden_dim_nnr_f": 256,
                    "n_layers_nnr_f": 5,
                    "omega_f": 30,
                    "nnr_f_T_period": 1000.0,
                    "nnr_f_xy_period": 2.0,
                },
                "training": {"learning_rate_NNR_f": 2e-5, "inr_batch_size": 50},
                "claude": {
                    "field_name": "stimulus",
                    "total_steps": 20000,
                    "n_training_frames": 1000,
                },
            }
        )
    )
    cfg = load_config(path, ["training.lr=1e-5"])
    # the fly-eye tool's τ = 2πk / T_period: T_period = n_frames is τ ∈ [0, 2π) here too
    assert cfg.model.t_period == pytest.approx(1 / (2 * math.pi)) and cfg.model.xy_period == 2.0
    assert cfg.training.batch_size == 50 and cfg.training.total_steps == 20000
    assert cfg.training.lr == pytest.approx(1e-5)  # --set wins over the file
    assert cfg.data.field == "stimulus" and cfg.data.n_frames == 1000


def _fly_yaml(tmp_path: Path, t_period: float, **sections: dict) -> Path:
    raw = {
        "dataset": "flyvis_noise_005",
        "graph_model": {"inr_type": "siren_txy", "omega_f": 30, "nnr_f_T_period": t_period},
        "training": {"learning_rate_NNR_f": 2e-5},
        **sections,
    }
    path = tmp_path / "fly.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("t_old", "n"), [(10.0, 10), (1000.0, 1000), (64000.0, 64000), (500.0, 100)]
)
def test_older_flyvis_t_period_keeps_the_older_tools_tau(tmp_path: Path, t_old, n) -> None:
    """The fly-eye tool fed τ = k / (T_period / 2π) for frame k (seed 002); the mapped
    t_period gives the same τ through our one encoding, at the config's frame count."""
    cfg = load_config(_fly_yaml(tmp_path, t_old, claude={"n_training_frames": n}))
    k = torch.arange(n)
    ours = encode_time(k, cfg.data.n_frames, cfg.model.t_period).double()
    older = k.double() / (t_old / (2 * math.pi))
    assert torch.allclose(ours, older, rtol=1e-5, atol=1e-6)
    if t_old == n:  # the tool's rule T_period = n_frames: τ ∈ [0, 2π) here too
        assert float(ours[-1]) == pytest.approx(2 * math.pi * (n - 1) / n, rel=1e-5)


def test_older_flyvis_t_period_frame_count(tmp_path: Path) -> None:
    """Without n_training_frames the whole recording (simulation.n_frames) was the window;
    without either the mapping has no frame count and says so in one line."""
    cfg = load_config(_fly_yaml(tmp_path, 2000.0, simulation={"n_frames": 2000}))
    assert cfg.model.t_period == pytest.approx(1 / (2 * math.pi))
    with pytest.raises(ConfigError, match="n_training_frames") as err:
        load_config(_fly_yaml(tmp_path, 2000.0))
    assert "\n" not in str(err.value)


def test_older_mpm_t_period_is_unchanged(tmp_path: Path) -> None:
    """The MPM tool used τ = k / n_frames / T_period already: the value maps as it is."""
    assert load_config(ROOT / "tests/fixtures/anchor_mpm_config.yaml").model.t_period == 1.0
    raw = yaml.safe_load((ROOT / "tests/fixtures/anchor_mpm_config.yaml").read_text())
    raw["graph_model"]["nnr_f_T_period"] = 2.0
    path = tmp_path / "mpm.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).model.t_period == 2.0


def _shipped_yaml() -> list[Path]:
    files = sorted((ROOT / "configs").rglob("*.yaml")) + sorted(
        (ROOT / "experiments").rglob("*.yaml")
    )
    assert files, "no YAML shipped under configs/ or experiments/"
    return files


@pytest.mark.parametrize("path", _shipped_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_validates(path: Path) -> None:
    from tests.yaml_validators import validate_shipped_yaml

    validate_shipped_yaml(path)
