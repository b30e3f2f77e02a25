"""The time input τ of every shipped experiment's starting configs (issue 11 §3).

τ = k / n_frames / t_period (models/variants.py ``encode_time``), k = 0..n_frames−1. The
fly-eye experiment once set t_period = n_frames, which squashed τ into [0, 1/n_frames)
(1.6e-5 at 64000 frames): every block started blind to time. Bounds checked here:

- fixed t_period (MPM): τ spans [0, τ_max) with 0.5 ≤ τ_max ≤ 10 at every block;
- ``tau_per_frame`` (fly-eye): τ advances exactly tau_per_frame per frame at every block
  (τ_max = 0.057 at 10 frames … 402 at 64000), τ_max ≥ 0.5 from 100 frames on, and the
  SIREN first layer's phase per frame ω·Δτ / fan_in lies in 0.015–0.6 rad, the range where
  short CPU trainings of the fly-eye starts learned time (≈ 0.001: blind, ≳ 1: aliased);
- always: τ starts at 0, increases, stays ≤ 500, and τ_max never shrinks as the window of
  a field grows (the squashed encoding made it 1/n_frames).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from inr_tune.config import Config
from inr_tune.errors import ConfigError
from inr_tune.models.variants import encode_time
from inr_tune.search.experiment import BlockSpec, Experiment, experiments_dir, load_experiment

SHIPPED = sorted(d.name for d in experiments_dir().iterdir() if (d / "experiment.yaml").is_file())
#: fan-in of the SIREN first layer that reads τ (its weights are U(±1/fan_in))
FAN_IN = {"siren_t": 1, "siren_id": 2, "siren_txy": 3, "factorized": 1}


def _tau(cfg: Config) -> torch.Tensor:
    n = cfg.data.n_frames
    return encode_time(torch.arange(n), n, cfg.model.t_period).double()


def _roots(exp: Experiment) -> list[tuple[str, Config]]:
    return [
        (f"{b.field}@{b.n_frames} {'gpu' if gpu else 'cpu'}", exp.root_config(b, gpu=gpu))
        for b in exp.schedule
        for gpu in (True, False)
    ]


def test_every_experiment_is_checked() -> None:
    assert {"mpm_high_frames", "flyvis_stimulus"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_tau_spans_a_usable_range_at_every_block(name: str) -> None:
    exp = load_experiment(name)
    last: dict[tuple[str, bool], float] = {}
    for where, cfg in _roots(exp):
        tau = _tau(cfg)
        n = cfg.data.n_frames
        assert tau[0] == 0 and bool((tau.diff() > 0).all()), where
        tau_max = float(tau[-1])
        assert tau_max <= 500, f"{where}: τ_max {tau_max:g}"
        key = (cfg.data.field, where.endswith("gpu"))
        assert tau_max >= last.get(key, 0.0), f"{where}: τ_max {tau_max:g} shrank"
        last[key] = tau_max
        if exp.tau_per_frame is None:
            assert 0.5 <= tau_max <= 10, f"{where}: τ ∈ [0, {tau_max:g})"
            continue
        step = float(tau[1] - tau[0])
        assert step == pytest.approx(exp.tau_per_frame, rel=1e-5), where
        if n >= 100:
            assert tau_max >= 0.5, f"{where}: τ ∈ [0, {tau_max:g})"
        m = cfg.model
        if m.inr_type in FAN_IN:
            phase = m.omega * step / FAN_IN[m.inr_type]
            assert 0.015 <= phase <= 0.6, f"{where}: ω·Δτ/fan_in = {phase:.3g} rad per frame"


def test_flyvis_tau_step_is_the_older_tools_at_1000_frames() -> None:
    exp = load_experiment("flyvis")
    assert exp.tau_per_frame == pytest.approx(2 * math.pi / 1000)
    cfg = exp.root_config(BlockSpec("stimulus", 1000), gpu=True)
    assert float(_tau(cfg)[-1]) == pytest.approx(2 * math.pi * 999 / 1000, rel=1e-6)
    cfg = exp.root_config(BlockSpec("stimulus", 64000), gpu=False)
    assert float(_tau(cfg)[-1]) == pytest.approx(2 * math.pi * 63.999, rel=1e-5)


def test_a_carried_config_keeps_its_tau_per_frame() -> None:
    exp = load_experiment("flyvis")
    best = exp.root_config(BlockSpec("stimulus", 10), gpu=True)
    best = best.replace(model={"t_period": best.model.t_period * 2})  # the search's ×2
    nxt = exp.root_config(BlockSpec("stimulus", 100), gpu=True, carried=best)
    assert float(_tau(nxt)[1]) == pytest.approx(exp.tau_per_frame / 2, rel=1e-5)
    assert nxt.model.hidden_dim == best.model.hidden_dim  # the rest is carried as it was
    user = exp.root_config(
        BlockSpec("stimulus", 100), gpu=True, carried=best, sets=["model.t_period=3"]
    )
    assert user.model.t_period == 3.0  # --set still wins


def _experiment(tmp_path: Path, **extra: object) -> Path:
    raw = yaml.safe_load((experiments_dir() / "flyvis_stimulus" / "experiment.yaml").read_text())
    raw.update(brief=str(experiments_dir() / "flyvis_stimulus" / "brief.md"), knowledge=None)
    raw.update(extra)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if v is not None}))
    return path


def test_retired_t_period_follows_frames_is_refused(tmp_path: Path) -> None:
    for value in (True, False):
        with pytest.raises(ConfigError) as err:
            load_experiment(str(_experiment(tmp_path, t_period_follows_frames=value)))
        text = str(err.value)
        assert "t_period_follows_frames" in text and "tau_per_frame" in text and "\n" not in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"tau_per_frame": 0}, "must be > 0"),
        ({"tau_per_frame": "2pi"}, "must be a number"),
        ({"defaults": {"model": {"t_period": 1.0}}}, "defaults sets model.t_period"),
    ],
)
def test_tau_per_frame_errors(tmp_path: Path, extra: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_experiment(str(_experiment(tmp_path, **extra)))
