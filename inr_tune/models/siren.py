"""SIREN: MLPs with sine activations.

Sitzmann, Martel, Bergman, Lindell, Wetzstein (2020), "Implicit Neural Representations
with Periodic Activation Functions", NeurIPS. The initialisation below follows Sec. 3.2 of
the paper and Sec. 1.5 of its supplement; it is written where it is used
(``SineLayer._init_weights`` and ``Siren._init_output``).

ω (omega) is stored as a 0-d tensor per layer: a registered buffer when fixed, an
``nn.Parameter`` when learned (``omega_learning=True``). It is stored *raw*, not as a log,
so that ``lr_omega`` means what it meant in the older tools (an Adam step moves ω by about
``lr_omega``). Either way it lives under the key ``layers.<i>.omega`` in the state_dict,
so checkpoints load across both settings.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["OUTPUT_INITS", "SineLayer", "Siren"]

OUTPUT_INITS = ("siren", "zeros", "default")
"""Allowed ``output_init`` values of ``Siren`` (see ``Siren._init_output``)."""


class SineLayer(nn.Module):
    """``y = sin(ω · (W x + b))``; x [..., in_features] → y [..., out_features].

    Args:
        in_features: input width.
        out_features: output width.
        omega: ω of this layer (the first layer's ω sets the frequency content of the
            fit; hidden layers use ω_hidden, 30 in the paper).
        is_first: whether this is the network's first layer (changes the weight init).
        omega_learning: make ω an ``nn.Parameter`` (else a buffer).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        omega: float,
        is_first: bool = False,
        omega_learning: bool = False,
    ) -> None:
        super().__init__()
        if omega <= 0:
            raise ValueError(f"SineLayer omega must be > 0, got {omega}")
        self.in_features = in_features
        self.out_features = out_features
        self.is_first = is_first
        self.linear = nn.Linear(in_features, out_features)
        omega_t = torch.tensor(float(omega))
        if omega_learning:
            self.omega = nn.Parameter(omega_t)
        else:
            self.register_buffer("omega", omega_t)
        self._init_weights(float(omega))

    @property
    def weight_bound(self) -> float:
        """Half-width b of the init W ~ U(−b, b) (computed from the initial ω)."""
        return self._bound

    @torch.no_grad()
    def _init_weights(self, omega: float) -> None:
        # Sitzmann et al. 2020, Sec. 3.2 and supplement Sec. 1.5:
        # - first layer: W ~ U(−1/in, 1/in); with sin(ω·Wx) the first layer then spans
        #   ω/in cycles per unit input, so ω (not W) sets the input frequencies;
        # - other layers: W ~ U(−√(6/in)/ω, √(6/in)/ω), so that ω·Wx is ~ N(0, 1)-like and
        #   the activations keep the arcsine distribution through depth.
        # Biases keep nn.Linear's default U(−1/√in, 1/√in), as the reference code does
        # (siren/modules.py and explore_siren.ipynb only re-initialise weights).
        if self.is_first:
            self._bound = 1.0 / self.in_features
        else:
            self._bound = math.sqrt(6.0 / self.in_features) / omega
        self.linear.weight.uniform_(-self._bound, self._bound)

    def forward(self, x: Tensor) -> Tensor:
        """x [..., in_features] → [..., out_features]."""
        return torch.sin(self.omega * self.linear(x))

    def extra_repr(self) -> str:
        learn = isinstance(self.omega, nn.Parameter)
        return f"omega={self.omega.detach().item():g}, is_first={self.is_first}, omega_learning={learn}"


class Siren(nn.Module):
    """SIREN MLP: in → h (sine), ``n_layers`` × h → h (sine), h → out (linear).

    ``n_layers`` counts the hidden h → h layers only, so 256 × 4 with 3 inputs and
    4 outputs has 1024 + 4·65792 + 1028 = 265220 parameters.

    Args:
        in_features: input width D.
        hidden_dim: width h.
        n_layers: number of hidden h → h sine layers (≥ 0).
        out_features: output width.
        omega: ω of the first layer.
        omega_hidden: ω of the hidden layers; None = ``omega``.
        omega_learning: learn every layer's ω (one scalar per sine layer).
        output_init: ``"siren"`` = W ~ U(±√(6/h)/ω_hidden) like a hidden layer (reference
            code), ``"zeros"`` = W = 0, b = 0 (the fit starts at the mean, i.e. 0 in
            standardised units), ``"default"`` = nn.Linear's default init.
    """

    def __init__(
        self,
        in_features: int,
        hidden_dim: int,
        n_layers: int,
        out_features: int,
        omega: float,
        omega_hidden: float | None = None,
        omega_learning: bool = False,
        output_init: str = "siren",
    ) -> None:
        super().__init__()
        if output_init not in OUTPUT_INITS:
            raise ValueError(f"output_init={output_init!r} is not one of {', '.join(OUTPUT_INITS)}")
        if n_layers < 0:
            raise ValueError(f"n_layers must be ≥ 0, got {n_layers}")
        omega_hidden = omega if omega_hidden is None else omega_hidden
        self.omega_hidden = float(omega_hidden)
        self.layers = nn.ModuleList(
            [
                SineLayer(
                    in_features, hidden_dim, omega, is_first=True, omega_learning=omega_learning
                )
            ]
            + [
                SineLayer(hidden_dim, hidden_dim, omega_hidden, omega_learning=omega_learning)
                for _ in range(n_layers)
            ]
        )
        self.output = nn.Linear(hidden_dim, out_features)
        self.output_init = output_init
        self._init_output()

    @torch.no_grad()
    def _init_output(self) -> None:
        if self.output_init == "siren":
            # Reference code (explore_siren.ipynb, Siren(outermost_linear=True)): the final
            # linear layer gets the hidden-layer bound √(6/h)/ω_hidden; bias stays default.
            bound = math.sqrt(6.0 / self.output.in_features) / self.omega_hidden
            self.output.weight.uniform_(-bound, bound)
        elif self.output_init == "zeros":
            self.output.weight.zero_()
            self.output.bias.zero_()
        # "default": keep nn.Linear's Kaiming-uniform init.

    def forward(self, x: Tensor) -> Tensor:
        """x [..., in_features] → [..., out_features]."""
        for layer in self.layers:
            x = layer(x)
        return self.output(x)

    def omega_parameters(self) -> list[nn.Parameter]:
        """The learnable ω (one per sine layer); empty unless ``omega_learning``."""
        return [
            layer.omega
            for layer in self.layers
            if isinstance(layer, SineLayer) and isinstance(layer.omega, nn.Parameter)
        ]
