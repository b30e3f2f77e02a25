"""The older tools' YAML dialect (sections ``graph_model`` / ``training`` / ``claude``),
mapped onto our sections by ``load_config``."""

from __future__ import annotations

import math
from typing import Any

from inr_tune.errors import ConfigError

__all__ = ["ANCHOR_KEYS", "from_anchor_dialect", "is_anchor_dialect"]


# (section, key) of the older tools' YAML → our (section, key). Keys found in those
# sections but not listed here belong to their simulator or pipeline and are ignored.
ANCHOR_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("graph_model", "hidden_dim_nnr_f"): ("model", "hidden_dim"),
    ("graph_model", "n_layers_nnr_f"): ("model", "n_layers"),
    ("graph_model", "omega_f"): ("model", "omega"),
    ("graph_model", "nnr_f_T_period"): ("model", "t_period"),
    ("graph_model", "nnr_f_xy_period"): ("model", "xy_period"),
    ("graph_model", "omega_f_learning"): ("model", "omega_learning"),
    ("graph_model", "inr_type"): ("model", "inr_type"),
    ("graph_model", "ngp_n_levels"): ("model", "ngp_levels"),
    ("graph_model", "ngp_log2_hashmap_size"): ("model", "ngp_log2_hashmap_size"),
    ("training", "learning_rate_NNR_f"): ("training", "lr"),
    ("training", "learning_rate_omega_f"): ("model", "lr_omega"),
    ("training", "batch_size"): ("training", "batch_size"),
    ("training", "inr_batch_size"): ("training", "batch_size"),
    ("training", "total_steps"): ("training", "total_steps"),
    ("training", "n_training_frames"): ("data", "n_frames"),
    ("training", "seed"): ("training", "seed"),
    ("claude", "field_name"): ("data", "field"),
    ("claude", "ucb_c"): ("search", "ucb_c"),
    ("claude", "total_steps"): ("training", "total_steps"),
    ("claude", "n_training_frames"): ("data", "n_frames"),
    ("claude", "n_iter_block"): ("block", "iterations"),
}
ANCHOR_SECTIONS = ("graph_model", "claude", "simulation", "plotting")


def is_anchor_dialect(raw: Any) -> bool:
    return isinstance(raw, dict) and any(s in raw for s in ("graph_model", "claude"))


def _is_flyvis_anchor(raw: dict[str, Any]) -> bool:
    """A config of the older fly-eye tool: its stimulus field, a fly dataset name, or the
    photoreceptor count of its simulation section (the MPM tool has none of these)."""
    claude = raw.get("claude") if isinstance(raw.get("claude"), dict) else {}
    simulation = raw.get("simulation") if isinstance(raw.get("simulation"), dict) else {}
    names = " ".join(str(raw.get(k, "")) for k in ("dataset", "description")).lower()
    return (
        claude.get("field_name") == "stimulus" or "fly" in names or "n_input_neurons" in simulation
    )


def _flyvis_t_period(raw: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    """The older fly-eye tool encoded time as τ = 2π·k / T_period (k = frame index, T_period
    ≈ n_training_frames); ours is τ = k / n_frames / t_period, so the same τ needs
    t_period = T_period / (2π · n_frames). The MPM tool used τ = k / n_frames / T_period
    already, so its T_period maps unchanged."""
    model = out.get("model", {})
    if "t_period" not in model or not _is_flyvis_anchor(raw):
        return
    simulation = raw.get("simulation") if isinstance(raw.get("simulation"), dict) else {}
    n_frames = out.get("data", {}).get("n_frames", simulation.get("n_frames"))
    try:
        t_old, n = float(model["t_period"]), int(n_frames)
    except (TypeError, ValueError):
        raise ConfigError(
            "graph_model.nnr_f_T_period of an older fly-eye config needs the frame count it "
            "was set for (training.n_training_frames): τ = 2π·k / T_period there"
        ) from None
    if t_old <= 0 or n < 1:
        raise ConfigError(
            f"graph_model.nnr_f_T_period={t_old:g} with n_training_frames={n} cannot be "
            "mapped: both must be > 0"
        )
    model["t_period"] = t_old / (2.0 * math.pi * n)


def from_anchor_dialect(raw: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Map an older-tool config onto our sections; returns (sections, ignored dotted keys).

    ``nnr_f_T_period`` keeps the older tool's τ range: unchanged for the MPM tool, ÷ (2π ·
    n_training_frames) for the fly-eye tool (``_flyvis_t_period``).
    """
    out: dict[str, dict[str, Any]] = {}
    ignored: list[str] = []
    for section, values in raw.items():
        if not isinstance(values, dict):
            ignored.append(str(section))
            continue
        for key, value in values.items():
            target = ANCHOR_KEYS.get((section, key))
            if target is None:
                ignored.append(f"{section}.{key}")
                continue
            out.setdefault(target[0], {})[target[1]] = value
    _flyvis_t_period(raw, out)
    return out, ignored
