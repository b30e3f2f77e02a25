"""The field models: one ``FieldINR`` interface, one subclass per inr_type.

``forward(frame_idx [B], point_idx [B, P], positions [B, P, 2]) -> [B, P, C]`` in
standardised units; a subclass only says how the encoded input (``encoding.encode_inputs``)
becomes the output. Built by ``variants.build_model``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from inr_tune.errors import ConfigError
from inr_tune.models.encoding import (
    BASIS_TYPES,
    FieldSpec,
    _as_point_idx,
    encode_inputs,
    encode_space,
)
from inr_tune.models.ngp import NGPField
from inr_tune.models.siren import OUTPUT_INITS, Siren

__all__ = [
    "FactorizedField",
    "FieldINR",
    "NGPFieldINR",
    "SirenIdField",
    "SirenTField",
    "SirenTXYField",
]


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
