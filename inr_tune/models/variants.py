"""INR variants: the one input encoding, the field wrappers, the registry, standardisation.

Every prediction — training batch, evaluation loop, plot — goes through
``encode_inputs``; the older tools divided time by T_period in training but not in
evaluation, which this single function rules out.

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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from inr_tune.errors import ConfigError, DataError
from inr_tune.models.ngp import HashGridEncoding, NGPField
from inr_tune.models.siren import OUTPUT_INITS, Siren

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
    if inr_type not in INR_TYPES:
        raise ConfigError(
            f"model.inr_type={inr_type!r} is unknown; valid: {', '.join(sorted(INR_TYPES))}"
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


class FieldINR(nn.Module):
    """A field model with one interface for every variant.

    ``forward(frame_idx [B], point_idx [B, P], positions [B, P, 2]) -> [B, P, C]`` in
    standardised units. Subclasses only say how the encoded input becomes the output
    (``decode``); the encoding is always ``encode_inputs``.

    Args:
        spec: the data window.
        t_period, xy_period: the encoding periods (also read by ``encode_inputs``).
    """

    inr_type: ClassVar[str]

    def __init__(self, spec: FieldSpec, t_period: float, xy_period: float) -> None:
        super().__init__()
        self.spec = spec
        self.t_period = float(t_period)
        self.xy_period = float(xy_period)

    def encode(
        self, frame_idx: Tensor, point_idx: Tensor | None, positions: Tensor | None
    ) -> Tensor:
        """``encode_inputs`` with this model's type, spec and periods."""
        return encode_inputs(self.inr_type, frame_idx, point_idx, positions, self.spec, self)

    def forward(
        self,
        frame_idx: Tensor,
        point_idx: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """frame_idx [B], point_idx [B, P] ([P] or None = all), positions [B, P, 2] → [B, P, C]."""
        point_idx = _as_point_idx(
            point_idx, frame_idx.shape[0], self.spec.n_points, frame_idx.device
        )
        return self.decode(self.encode(frame_idx, point_idx, positions), point_idx)

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        """Encoded input x (see ``encode_inputs``) and point_idx [B, P] → [B, P, C]."""
        raise NotImplementedError

    @property
    def total_params(self) -> int:
        """Number of trainable scalars (learned ω and embeddings included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def omega_parameters(self) -> list[nn.Parameter]:
        """Learnable SIREN ω (their own learning rate, ``lr_omega``); empty if none."""
        return []

    def base_parameters(self) -> list[nn.Parameter]:
        """All parameters except ``omega_parameters()``."""
        omega_ids = {id(p) for p in self.omega_parameters()}
        return [p for p in self.parameters() if id(p) not in omega_ids]

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"inr_type={self.inr_type}, T={s.n_frames}, N={s.n_points}, C={s.n_components}, "
            f"t_period={self.t_period:g}, xy_period={self.xy_period:g}"
        )


class _SirenFieldINR(FieldINR):
    net: Siren

    def omega_parameters(self) -> list[nn.Parameter]:
        return self.net.omega_parameters()


class SirenTField(_SirenFieldINR):
    """siren_t: τ → all N·C values; the requested points are gathered from them."""

    inr_type = "siren_t"

    def __init__(self, spec: FieldSpec, t_period: float, xy_period: float, net: Siren) -> None:
        super().__init__(spec, t_period, xy_period)
        self.net = net

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        batch = x.shape[0]
        c = self.spec.n_components
        full = self.net(x).reshape(batch, self.spec.n_points, c)  # [B, N, C]
        return torch.gather(full, 1, point_idx[..., None].expand(-1, -1, c))  # [B, P, C]


class SirenIdField(_SirenFieldINR):
    """siren_id: (τ, i/N) → C, or (τ, embedding[i]) → C with a learned embedding.

    The embedding table [N, E] is initialised U(−1, 1), the same scale as SIREN's
    coordinate inputs.
    """

    inr_type = "siren_id"

    def __init__(
        self,
        spec: FieldSpec,
        t_period: float,
        xy_period: float,
        net: Siren,
        embedding_dim: int = 0,
    ) -> None:
        super().__init__(spec, t_period, xy_period)
        self.net = net
        self.embedding: nn.Embedding | None = None
        if embedding_dim > 0:
            self.embedding = nn.Embedding(spec.n_points, embedding_dim)
            nn.init.uniform_(self.embedding.weight, -1.0, 1.0)

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        if self.embedding is not None:
            x = torch.cat([x[..., :1], self.embedding(point_idx)], dim=-1)  # [B, P, 1 + E]
        return self.net(x)


class SirenTXYField(_SirenFieldINR):
    """siren_txy: (τ, x, y) → C."""

    inr_type = "siren_txy"

    def __init__(self, spec: FieldSpec, t_period: float, xy_period: float, net: Siren) -> None:
        super().__init__(spec, t_period, xy_period)
        self.net = net

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        return self.net(x)


class NGPFieldINR(FieldINR):
    """ngp: hash grid on (τ, x, y) + ReLU MLP → C.

    The grid is fitted to the window: τ ∈ [0, 1/t_period] and (x, y) ∈ position_range /
    xy_period are mapped onto [0, 1]³, so t_period and xy_period do not change an ngp
    model (its resolution is set by ngp_base_resolution .. ngp_max_resolution).
    """

    inr_type = "ngp"

    def __init__(self, spec: FieldSpec, t_period: float, xy_period: float, net: NGPField) -> None:
        super().__init__(spec, t_period, xy_period)
        self.net = net

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        return self.net(x)


class FactorizedField(FieldINR):
    """factorized: f(τ, i)_c = Σ_k a_k(τ) · b_k,c(i) + bias_c, a low-rank field.

    a(τ) ∈ R^rank is ``time_net`` (Siren 1 → rank); the basis b(i) ∈ R^{rank×C} is either
    ``basis_net`` (Siren 2 → rank·C) of the point's encoded reference position (x0, y0),
    so its size does not grow with N, or a learned table [N, rank·C] (``basis="table"``).

    The reference positions (raw, [N, 2]) are a non-trainable buffer: they are data (not
    counted in the compression ratio) but travel with the state_dict, so a checkpoint
    decodes on its own. Built without them, the buffer holds NaN (every prediction is
    NaN) until ``load_state_dict`` or ``set_reference_positions`` fills it.

    Per forward pass the time net runs once per frame of the batch and the basis once per
    requested point: when the batch shares its points (``point_idx`` rows expanded from
    one row, or B = 1) on those P points, else on all N points (when B·P ≥ N) or on the
    B·P requested ones, then gathered.

    Init (balanced for a product): the time net's output layer gets W ~ U(±√(6/h)), so
    each a_k(τ) has about unit variance (the SIREN hidden-layer bound without the 1/ω),
    and the basis starts near zero, so the fit starts near the mean and each step moves
    the output by ~rank·lr through the basis. ``output_init`` sets the basis, i.e. the
    weights that turn a(τ) into values (the table rows, fan-in = rank; or the basis net's
    output layer, fan-in = basis_hidden_dim): ``"siren"`` (default) U(±0.01·√(6/fan_in))
    and bias 0, ``"zeros"`` all zero, ``"default"`` nn.Linear's U(±1/√fan_in) (bias too).
    On a small smooth field the SIREN-scaled time output (a_k ≈ 0.1) with a U(±√(3/rank))
    table ended 500× higher after 200 Adam steps at lr 1e-3. The component bias starts at
    0, the mean of the standardised targets.
    """

    inr_type = "factorized"
    reference_positions: Tensor | None

    def __init__(
        self,
        spec: FieldSpec,
        t_period: float,
        xy_period: float,
        time_net: Siren,
        rank: int,
        basis: str = "siren",
        basis_net: Siren | None = None,
        reference_positions: Tensor | None = None,
        output_init: str = "siren",
    ) -> None:
        super().__init__(spec, t_period, xy_period)
        if basis not in BASIS_TYPES:
            raise ConfigError(f"model.basis={basis!r} is unknown; valid: {', '.join(BASIS_TYPES)}")
        n, c = spec.n_points, spec.n_components
        self.rank = int(rank)
        self.basis = basis
        self.time_net = time_net
        self.bias = nn.Parameter(torch.zeros(c))
        self.basis_net = basis_net if basis == "siren" else None
        self.basis_table: nn.Parameter | None = None
        if basis == "siren":
            if basis_net is None:
                raise ValueError("basis='siren' needs a basis_net (Siren 2 → rank·C)")
            self.register_buffer("reference_positions", torch.full((n, 2), math.nan))
            if reference_positions is not None:
                self.set_reference_positions(reference_positions)
        else:
            self.register_buffer("reference_positions", None)
            self.basis_table = nn.Parameter(torch.empty(n, self.rank * c))
        self._init(output_init)

    @torch.no_grad()
    def _init(self, output_init: str) -> None:
        """See the class docstring: unit-variance a(τ), basis per ``output_init``."""
        if output_init not in OUTPUT_INITS:
            raise ConfigError(
                f"model.output_init={output_init!r} is unknown; valid: {', '.join(OUTPUT_INITS)}"
            )
        out = self.time_net.output
        bound = math.sqrt(6.0 / out.in_features)
        out.weight.uniform_(-bound, bound)
        if self.basis_table is not None:
            weights, bias, fan_in = self.basis_table, None, self.rank
        else:
            assert self.basis_net is not None
            layer = self.basis_net.output
            weights, bias, fan_in = layer.weight, layer.bias, layer.in_features
        if output_init == "siren":
            bound = 0.01 * math.sqrt(6.0 / fan_in)
        elif output_init == "default":
            bound = 1.0 / math.sqrt(fan_in)
        else:
            bound = 0.0
        weights.uniform_(-bound, bound)
        if bias is not None:
            if output_init == "default":
                bias.uniform_(-bound, bound)
            else:
                bias.zero_()

    @torch.no_grad()
    def set_reference_positions(self, positions: Tensor) -> None:
        """Raw reference positions [N, 2] of the siren basis (ignored by the table basis)."""
        if self.reference_positions is None:
            return
        pos = torch.as_tensor(positions, dtype=torch.float32)
        if tuple(pos.shape) != (self.spec.n_points, 2):
            raise ValueError(
                f"reference_positions must be [N, 2] = [{self.spec.n_points}, 2], "
                f"got {list(pos.shape)}"
            )
        self.reference_positions.copy_(pos.to(self.reference_positions.device))

    def encode(
        self, frame_idx: Tensor, point_idx: Tensor | None, positions: Tensor | None
    ) -> Tensor:
        return encode_inputs(
            self.inr_type,
            frame_idx,
            point_idx,
            positions,
            self.spec,
            self,
            reference_positions=self.reference_positions,
        )

    def omega_parameters(self) -> list[nn.Parameter]:
        out = self.time_net.omega_parameters()
        if self.basis_net is not None:
            out += self.basis_net.omega_parameters()
        return out

    def decode(self, x: Tensor, point_idx: Tensor) -> Tensor:
        batch, n_req = point_idx.shape
        r, c = self.rank, self.spec.n_components
        a = self.time_net(x[:, 0, :1])  # [B, r]
        shared = batch == 1 or point_idx.stride(0) == 0
        if self.basis_table is not None:
            rows = point_idx[0] if shared else point_idx
            basis = self.basis_table[rows]  # [P, r·C] or [B, P, r·C]
        elif shared:
            basis = self.basis_net(x[0, :, 1:])  # [P, r·C]
        elif batch * n_req >= self.spec.n_points:
            xy0 = encode_space(self.reference_positions, self.spec, self.xy_period)
            basis = self.basis_net(xy0)[point_idx]  # [N, r·C] → [B, P, r·C]
        else:
            basis = self.basis_net(x[..., 1:])  # [B, P, r·C]
        if shared:
            out = torch.einsum("bk,pkc->bpc", a, basis.view(n_req, r, c))
        else:
            out = torch.einsum("bk,bpkc->bpc", a, basis.view(batch, n_req, r, c))
        return out + self.bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, basis={self.basis}"


# --- builders -------------------------------------------------------------------------

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


# --- target standardisation -----------------------------------------------------------


class Standardizer(nn.Module):
    """Per-component standardisation y = (x − mean) / std, stored as buffers.

    The buffers travel with ``state_dict`` (and so with checkpoints) and with ``.to()``.

    Args:
        mean: [C].
        std: [C], > 0.
    """

    REL_FLOOR: ClassVar[float] = 1e-6
    ABS_FLOOR: ClassVar[float] = 1e-12

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def identity(cls, n_components: int) -> Standardizer:
        """mean 0, std 1 (e.g. to build a module before ``load_state_dict``)."""
        return cls(torch.zeros(n_components), torch.ones(n_components))

    @classmethod
    def fit(cls, values: Any, chunk_frames: int = 256) -> Standardizer:
        """Mean and std per component of values [T, N, C] (tensor, numpy or zarr array).

        Statistics are accumulated in float64, ``chunk_frames`` frames at a time (two
        passes: mean, then Σ(x − mean)²; population std). The std is floored at
        ``REL_FLOOR · max|x_c| + ABS_FLOOR`` (1e-6 relative to the component's largest
        magnitude, plus 1e-12): a constant component maps to 0 instead of dividing by zero,
        and a near-constant one does not blow float32 rounding noise up to O(1).

        Raises:
            DataError: empty values or non-finite statistics (NaN/inf in the data).
        """
        shape = tuple(values.shape)
        if len(shape) != 3 or shape[0] * shape[1] == 0:
            raise DataError(f"Standardizer.fit needs values [T, N, C] with T·N > 0, got {shape}")
        n_frames, c = shape[0], shape[2]

        def chunks():
            for start in range(0, n_frames, chunk_frames):
                block = values[start : start + chunk_frames]
                if not isinstance(block, Tensor):
                    block = torch.from_numpy(np.asarray(block))
                yield block.to(torch.float64).reshape(-1, c)

        total = None
        count = 0
        absmax = None
        for block in chunks():
            s = block.sum(0)
            m = block.abs().amax(0)
            total = s if total is None else total + s
            absmax = m if absmax is None else torch.maximum(absmax, m)
            count += block.shape[0]
        mean = total / count
        sq = None
        for block in chunks():
            s = ((block - mean) ** 2).sum(0)
            sq = s if sq is None else sq + s
        std = torch.sqrt(sq / count)
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise DataError("Standardizer.fit: the values contain NaN or inf")
        std = torch.maximum(std, cls.REL_FLOOR * absmax + cls.ABS_FLOOR)
        return cls(mean.float().cpu(), std.float().cpu())

    def normalize(self, x: Tensor) -> Tensor:
        """Raw x [..., C] → standardised [..., C]."""
        return (x - self.mean) / self.std

    def denormalize(self, y: Tensor) -> Tensor:
        """Standardised y [..., C] → raw [..., C]."""
        return y * self.std + self.mean

    def extra_repr(self) -> str:
        return f"C={self.mean.numel()}"
