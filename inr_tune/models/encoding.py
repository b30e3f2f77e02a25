"""The one input encoding of every INR variant (training, evaluation and plots alike).

Every prediction goes through ``encode_inputs``; the older tools divided time by
T_period in training but not in evaluation, which this single function rules out.

- time τ = k / n_frames / t_period, k = frame index within the window (0..T−1);
- space (x, y) · position_scale / xy_period;
- particle id i / N.

The table of what each variant reads is in ``inr_tune.models.variants``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from inr_tune.errors import ConfigError

__all__ = [
    "BASIS_TYPES",
    "INR_NAMES",
    "FieldSpec",
    "encode_inputs",
    "encode_space",
    "encode_time",
]

INR_NAMES = ("siren_t", "siren_id", "siren_txy", "ngp", "factorized")
"""The inr_type names (``variants.INR_TYPES`` maps each to its builder)."""

_DEFAULTS: dict[str, Any] = {
    "omega_hidden": None,
    "omega_learning": False,
    "t_period": 1.0,
    "xy_period": 1.0,
    "id_embedding_dim": 0,
    "output_init": "siren",
    "ngp_levels": 16,
    "ngp_log2_hashmap_size": 19,
    "ngp_features_per_level": 2,
    "ngp_base_resolution": 16,
    "ngp_max_resolution": 1024,
    "rank": 8,
    "basis": "siren",
    "basis_hidden_dim": 128,
    "basis_layers": 2,
    "basis_omega": 300.0,
}
"""Values used when a (duck-typed) config lacks the attribute; same as ModelConfig's."""


def _get(cfg: Any, name: str) -> Any:
    if name in _DEFAULTS:
        return getattr(cfg, name, _DEFAULTS[name])
    return getattr(cfg, name)


BASIS_TYPES = ("siren", "table")
"""Allowed ``basis`` values of the factorized variant."""


@dataclass(frozen=True)
class FieldSpec:
    """What the model needs to know about the data window."""

    n_frames: int
    """T, frames in the training window (τ = k / T / t_period)."""
    n_points: int
    """N, particles or neurons."""
    n_components: int
    """C, components of the field (F: 4, Jp: 1, stimulus: 1)."""
    position_scale: float = 1.0
    """Raw positions × this = model positions: 1.0 for MPM (unit box), 1/8 for fly-eye."""
    static_positions: bool = False
    """Positions do not change with the frame (fly-eye: [N, 2])."""
    position_range: tuple[float, float] = (0.0, 1.0)
    """Range of positions · position_scale, used by ngp to fit its grid: (0, 1) for the MPM
    unit box, (−1, 1) for fly-eye (|x| ≤ 8 scaled by 1/8)."""


def encode_time(frame_idx: Tensor, n_frames: int, t_period: float) -> Tensor:
    """τ = k / n_frames / t_period; frame_idx [...] integer → τ [...] float32."""
    return frame_idx.to(torch.float32) / float(n_frames) / float(t_period)


def encode_space(positions: Tensor, spec: FieldSpec, xy_period: float) -> Tensor:
    """Raw positions [..., 2] → (x, y) · position_scale / xy_period [..., 2] float32."""
    return positions.to(torch.float32) * float(spec.position_scale) / float(xy_period)


def _check_inr_type(inr_type: str) -> None:
    if inr_type not in INR_NAMES:
        raise ConfigError(
            f"model.inr_type={inr_type!r} is unknown; valid: {', '.join(sorted(INR_NAMES))}"
        )


def _as_point_idx(point_idx: Tensor | None, batch: int, n_points: int, device: Any) -> Tensor:
    """point_idx [B, P], [P] or None (= all N points) → LongTensor [B, P]."""
    if point_idx is None:
        point_idx = torch.arange(n_points, device=device)
    if point_idx.ndim == 1:
        point_idx = point_idx.expand(batch, -1)
    return point_idx


def encode_inputs(
    inr_type: str,
    frame_idx: Tensor,
    point_idx: Tensor | None,
    positions: Tensor | None,
    spec: FieldSpec,
    cfg: Any,
    reference_positions: Tensor | None = None,
) -> Tensor:
    """The network input of every variant (training, evaluation and plots alike).

    Args:
        inr_type: one of ``INR_TYPES``.
        frame_idx: LongTensor [B], frame index k within the window (0..T−1).
        point_idx: LongTensor [B, P] (or [P], shared by the batch; None = all N points).
        positions: raw positions of those points at those frames, [B, P, 2] (or [P, 2]
            for static positions); only siren_txy and ngp read them (None allowed else).
        spec: the ``FieldSpec``.
        cfg: anything with ``t_period`` and ``xy_period`` (the model config; factorized
            also reads ``basis``).
        reference_positions: raw reference positions of all N points [N, 2] (MPM: the
            window's first frame; fly-eye: the static positions); only the factorized
            variant with ``basis="siren"`` reads them.

    Returns:
        siren_t: τ [B, 1, 1]; siren_id: (τ, i/N) [B, P, 2] (with an embedding the model
        replaces i/N by embedding[i]); siren_txy, ngp: (τ, x, y) [B, P, 3]; factorized:
        (τ, x0, y0) [B, P, 3] of the reference positions (basis siren) or (τ, i/N)
        [B, P, 2] (basis table: the model looks up table[i]). float32.
    """
    _check_inr_type(inr_type)
    tau = encode_time(frame_idx, spec.n_frames, cfg.t_period)  # [B]
    if inr_type == "siren_t":
        return tau[:, None, None]
    batch = frame_idx.shape[0]
    point_idx = _as_point_idx(point_idx, batch, spec.n_points, frame_idx.device)
    n = point_idx.shape[-1]
    tau_bp = tau[:, None, None].expand(batch, n, 1)
    if inr_type == "factorized" and _get(cfg, "basis") == "siren":
        if reference_positions is None:
            raise ValueError(
                "inr_type='factorized' with basis='siren' needs reference_positions [N, 2]"
            )
        xy0 = encode_space(reference_positions[point_idx], spec, cfg.xy_period)  # [B, P, 2]
        return torch.cat([tau_bp, xy0], dim=-1)
    if inr_type in ("siren_id", "factorized"):
        ids = point_idx.to(torch.float32) / float(spec.n_points)
        return torch.cat([tau_bp, ids[..., None]], dim=-1)
    if positions is None:
        raise ValueError(f"inr_type={inr_type!r} needs positions [B, P, 2]")
    xy = encode_space(positions, spec, cfg.xy_period)
    return torch.cat([tau_bp, xy.expand(batch, n, 2)], dim=-1)
