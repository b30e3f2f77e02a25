"""INR variants: the registry of builders, ``build_model`` and ``predict_window``.

The encoding lives in ``encoding.py`` (every prediction goes through ``encode_inputs``),
the field models in ``fields.py``, standardisation in ``standardize.py``; their names are
re-exported here.

Encoding (``spec`` = ``FieldSpec``, ``cfg`` = the model config):

- time τ = k / n_frames / t_period, k = frame index within the window (0..T−1);
- space (x, y) · position_scale / xy_period;
- particle id i / N.

| inr_type   | encoded input            | network                                          |
| ---------- | ------------------------ | ------------------------------------------------ |
| siren_t    | τ                [B,1,1] | Siren 1 → N·C, then gather point_idx             |
| siren_id   | (τ, i/N)         [B,P,2] | Siren 2 → C, or (τ, embedding[i]) → C            |
| siren_txy  | (τ, x, y)        [B,P,3] | Siren 3 → C                                      |
| ngp        | (τ, x, y)        [B,P,3] | hash grid on [0, 1]³ + ReLU MLP → C              |
| factorized | (τ, x0, y0)      [B,P,3] | Σ_k a_k(τ)·b_k,c(x0, y0) + bias_c (basis: siren) |
|            | (τ, i/N)         [B,P,2] | Σ_k a_k(τ)·table[i, k, c] + bias_c (basis: table)|

factorized: a(τ) = Siren 1 → rank (hidden_dim × n_layers, ω omega); the basis b(i) ∈
R^{rank×C} is Siren 2 → rank·C of the point's reference position (x0, y0) (its position
at the window's first frame for MPM, the static position for fly-eye; basis_hidden_dim ×
basis_layers, ω basis_omega in the first layer and omega_hidden, null = omega, in the
hidden ones) or a learned table [N, rank·C]. Per step the time net runs on the B frames
and the basis once on the requested points, then one contraction.

How the trainable parameter count (``count_params``) grows with the window (T frames,
N points, C components; h = hidden_dim, L = n_layers, r = rank, h_b/L_b = basis_hidden_dim
/ basis_layers):

| inr_type            | parameters                                        | grows with    |
| ------------------- | ------------------------------------------------- | ------------- |
| siren_t             | ~h²·L + (h+1)·N·C                                 | N·C (× h)     |
| siren_id            | ~h²·L + h·C (+ N·E with an id embedding of dim E) | — (N with E)  |
| siren_txy           | ~h²·L + h·C                                       | C only        |
| ngp                 | hash tables (≤ levels·2^log2·F) + MLP ~h²·L + h·C | C only        |
| factorized (siren)  | ~h²·L + h·r + h_b²·L_b + h_b·r·C + C              | C only        |
| factorized (table)  | ~h²·L + h·r + N·C·r + C                           | N·C (× r)     |

None grows with T, so compression_ratio = T·N·C / params grows linearly with T for all
of them; siren_t and the table basis also scale with N·C, so their ratio is capped near
T/(h+1) and T/r respectively.

Model outputs are in standardised units; ``Standardizer`` converts to raw units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from inr_tune.errors import ConfigError
from inr_tune.models.encoding import (
    BASIS_TYPES,
    INR_NAMES,
    FieldSpec,
    _check_inr_type,
    _get,
    encode_inputs,
    encode_space,
    encode_time,
)
from inr_tune.models.fields import (
    FactorizedField,
    FieldINR,
    NGPFieldINR,
    SirenIdField,
    SirenTField,
    SirenTXYField,
)
from inr_tune.models.ngp import HashGridEncoding, NGPField
from inr_tune.models.siren import OUTPUT_INITS, Siren
from inr_tune.models.standardize import Standardizer

__all__ = [
    "BASIS_TYPES",
    "INR_TYPES",
    "FactorizedField",
    "FieldINR",
    "FieldSpec",
    "NGPFieldINR",
    "SirenIdField",
    "SirenTField",
    "SirenTXYField",
    "Standardizer",
    "build_model",
    "encode_inputs",
    "encode_space",
    "encode_time",
    "predict_window",
]


def _siren(cfg: Any, in_features: int, out_features: int) -> Siren:
    return Siren(
        in_features,
        int(cfg.hidden_dim),
        int(cfg.n_layers),
        out_features,
        float(cfg.omega),
        omega_hidden=_get(cfg, "omega_hidden"),
        omega_learning=bool(_get(cfg, "omega_learning")),
        output_init=_get(cfg, "output_init"),
    )


def _periods(cfg: Any) -> tuple[float, float]:
    return float(_get(cfg, "t_period")), float(_get(cfg, "xy_period"))


def _build_siren_t(cfg: Any, spec: FieldSpec) -> FieldINR:
    net = _siren(cfg, 1, spec.n_points * spec.n_components)
    return SirenTField(spec, *_periods(cfg), net=net)


def _build_siren_id(cfg: Any, spec: FieldSpec) -> FieldINR:
    emb = int(_get(cfg, "id_embedding_dim"))
    net = _siren(cfg, 1 + (emb if emb > 0 else 1), spec.n_components)
    return SirenIdField(spec, *_periods(cfg), net=net, embedding_dim=emb)


def _build_siren_txy(cfg: Any, spec: FieldSpec) -> FieldINR:
    net = _siren(cfg, 3, spec.n_components)
    return SirenTXYField(spec, *_periods(cfg), net=net)


def _build_factorized(cfg: Any, spec: FieldSpec) -> FieldINR:
    rank = int(_get(cfg, "rank"))
    basis = _get(cfg, "basis")
    if basis not in BASIS_TYPES:
        raise ConfigError(f"model.basis={basis!r} is unknown; valid: {', '.join(BASIS_TYPES)}")
    if rank < 1:
        raise ConfigError(f"model.rank={rank} must be ≥ 1")
    # the output inits of both nets are set by FactorizedField (output_init: the basis)
    time_net = _siren(cfg, 1, rank)
    basis_net = None
    if basis == "siren":
        # basis_omega sets the spatial frequencies (first layer); the hidden layers follow
        # omega_hidden (null = omega) as in the time net: a hidden ω of ~100 multiplies the
        # hidden weights' steps by 100 and stalled the fit at lr 1e-3
        omega_hidden = _get(cfg, "omega_hidden")
        basis_net = Siren(
            2,
            int(_get(cfg, "basis_hidden_dim")),
            int(_get(cfg, "basis_layers")),
            rank * spec.n_components,
            float(_get(cfg, "basis_omega")),
            omega_hidden=float(cfg.omega) if omega_hidden is None else omega_hidden,
            omega_learning=bool(_get(cfg, "omega_learning")),
            output_init="siren",
        )
    return FactorizedField(
        spec,
        *_periods(cfg),
        time_net=time_net,
        rank=rank,
        basis=basis,
        basis_net=basis_net,
        output_init=_get(cfg, "output_init"),
    )


def _build_ngp(cfg: Any, spec: FieldSpec) -> FieldINR:
    t_period, xy_period = _periods(cfg)
    lo, hi = spec.position_range
    bounds = [
        (0.0, 1.0 / t_period),
        (lo / xy_period, hi / xy_period),
        (lo / xy_period, hi / xy_period),
    ]
    encoding = HashGridEncoding(
        n_input_dims=3,
        n_levels=int(_get(cfg, "ngp_levels")),
        features_per_level=int(_get(cfg, "ngp_features_per_level")),
        log2_hashmap_size=int(_get(cfg, "ngp_log2_hashmap_size")),
        base_resolution=int(_get(cfg, "ngp_base_resolution")),
        max_resolution=int(_get(cfg, "ngp_max_resolution")),
    )
    net = NGPField(
        encoding,
        spec.n_components,
        hidden_dim=int(cfg.hidden_dim),
        n_layers=int(cfg.n_layers),
        input_bounds=bounds,
    )
    return NGPFieldINR(spec, t_period, xy_period, net=net)


INR_TYPES: dict[str, Callable[[Any, FieldSpec], FieldINR]] = {
    "siren_t": _build_siren_t,
    "siren_id": _build_siren_id,
    "siren_txy": _build_siren_txy,
    "ngp": _build_ngp,
    "factorized": _build_factorized,
}
"""inr_type name → builder(cfg, spec) -> FieldINR."""
assert tuple(INR_TYPES) == INR_NAMES


def build_model(
    cfg: Any, spec: FieldSpec, reference_positions: Tensor | np.ndarray | None = None
) -> FieldINR:
    """The ``FieldINR`` for ``cfg.inr_type`` (ConfigError lists the valid names).

    ``reference_positions``: raw positions [N, 2] the factorized siren basis reads (MPM:
    the window's first frame, fly-eye: the static positions); ignored by the other
    variants. Without them a factorized siren-basis model predicts NaN until a
    state_dict holding them is loaded.
    """
    _check_inr_type(cfg.inr_type)
    output_init = _get(cfg, "output_init")
    if output_init not in OUTPUT_INITS:
        raise ConfigError(
            f"model.output_init={output_init!r} is unknown; valid: {', '.join(OUTPUT_INITS)}"
        )
    for name in ("t_period", "xy_period"):
        if not float(_get(cfg, name)) > 0:
            raise ConfigError(f"model.{name}={_get(cfg, name)!r} must be > 0")
    if spec.n_points < 1 or spec.n_frames < 1 or spec.n_components < 1:
        raise ConfigError(f"empty field: {spec}")
    model = INR_TYPES[cfg.inr_type](cfg, spec)
    if reference_positions is not None and isinstance(model, FactorizedField):
        model.set_reference_positions(torch.as_tensor(reference_positions))
    return model


@torch.no_grad()
def predict_window(
    model: FieldINR,
    positions: Tensor | None = None,
    frame_idx: Tensor | None = None,
    chunk_frames: int = 16,
) -> Tensor:
    """Evaluate all N points at the given frames through ``model.forward``.

    Args:
        model: the field.
        positions: raw positions [T, N, 2] indexed by window frame, [N, 2] if static, or
            None for siren_t / siren_id.
        frame_idx: LongTensor [K] of window frames (default: all T).
        chunk_frames: frames per forward pass (memory bound).

    Returns:
        [K, N, C] in standardised units, on the model's device.
    """
    device = next(model.parameters()).device
    if frame_idx is None:
        frame_idx = torch.arange(model.spec.n_frames, device=device)
    frame_idx = frame_idx.to(device)
    if positions is not None:
        positions = positions.to(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, frame_idx.shape[0], chunk_frames):
            k = frame_idx[start : start + chunk_frames]
            pos = None
            if positions is not None:
                pos = positions if positions.ndim == 2 else positions[k]
            out.append(model(k, None, pos))
    finally:
        model.train(was_training)
    return torch.cat(out, dim=0)
