"""What the MPM simulator reads and evolves: ``MPMParams`` (physical and numerical
constants, checked), ``MPMState`` (the particles) and the stored fields' components.
The simulator itself is ``mpm.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from inr_tune.errors import DataError

__all__ = ["COMPONENTS", "MATERIALS", "MPMParams", "MPMState"]

#: Material ids (index into ``MPMParams.densities``).
MATERIALS: dict[str, int] = {"liquid": 0, "jelly": 1, "snow": 2}
LIQUID, JELLY, SNOW = 0, 1, 2

#: Component names of the stored fields.
COMPONENTS: dict[str, list[str]] = {
    "F": ["F00", "F01", "F10", "F11"],
    "C": ["C00", "C01", "C10", "C11"],
    "S": ["S00", "S01", "S10", "S11"],
    "Jp": ["Jp"],
}


@dataclass
class MPMParams:
    """Physical and numerical constants of the simulator (defaults: the reference study)."""

    n_grid: int = 128
    """Grid nodes per side of the unit box; ``dx = 1 / n_grid``."""
    dt: float = 7.5e-5
    """Substep length."""
    gravity: float = 50.0
    """Gravitational acceleration along −y."""
    E: float = 1000.0
    """Young's modulus."""
    nu: float = 0.2
    """Poisson's ratio."""
    densities: tuple[float, float, float] = (1.0, 0.5, 0.25)
    """Density of (liquid, jelly, snow); ``p_mass = p_vol·density``."""
    hardening: float = 10.0
    """Snow hardening exponent: ``h = exp(hardening·(1 − Jp))``."""
    jelly_h: float = 0.3
    """Fixed hardening factor of jelly (softer than the base material)."""
    snow_theta_c: float = 2.5e-2
    """Critical compression of snow: singular values are clamped below at ``1 − θc``."""
    snow_theta_s: float = 4.5e-3
    """Critical stretch of snow: singular values are clamped above at ``1 + θs``."""
    wall_cells: int = 3
    """Grid cells next to each wall in which the inward normal velocity is zeroed."""

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> DataError:
            return DataError(
                f"MPM parameter {name}={getattr(self, name)!r} is not allowed; {allowed}"
            )

        if isinstance(self.n_grid, bool) or not isinstance(self.n_grid, int) or self.n_grid < 8:
            raise bad("n_grid", "use an integer ≥ 8")
        if isinstance(self.wall_cells, bool) or not isinstance(self.wall_cells, int):
            raise bad("wall_cells", "use an integer ≥ 0")
        if not 0 <= self.wall_cells < self.n_grid // 2:
            raise bad("wall_cells", f"use an integer in 0..{self.n_grid // 2 - 1}")
        for name in ("dt", "E"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise bad(name, "use a finite number > 0")
        for name in ("gravity", "hardening", "jelly_h", "snow_theta_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise bad(name, "use a finite number")
        if not -1.0 < self.nu < 0.5:
            raise bad("nu", "use a Poisson ratio in (−1, 0.5)")
        if not 0.0 <= self.snow_theta_c < 1.0 or self.snow_theta_s < 0.0:
            raise bad("snow_theta_c", "use 0 ≤ snow_theta_c < 1 and snow_theta_s ≥ 0")
        dens = tuple(float(d) for d in self.densities)
        if len(dens) != 3 or not all(math.isfinite(d) and d > 0 for d in dens):
            raise bad("densities", "use three finite densities > 0 (liquid, jelly, snow)")
        self.densities = dens  # type: ignore[assignment]

    @property
    def dx(self) -> float:
        return 1.0 / self.n_grid

    @property
    def inv_dx(self) -> float:
        return float(self.n_grid)

    @property
    def p_vol(self) -> float:
        """Particle volume ``(dx/2)²``: four particles per cell at rest density."""
        return (self.dx * 0.5) ** 2

    @property
    def mu0(self) -> float:
        return self.E / (2 * (1 + self.nu))

    @property
    def lambda0(self) -> float:
        return self.E * self.nu / ((1 + self.nu) * (1 - 2 * self.nu))

    @property
    def snow_sig_min(self) -> float:
        return 1 - self.snow_theta_c

    @property
    def snow_sig_max(self) -> float:
        return 1 + self.snow_theta_s

    def to_dict(self) -> dict[str, Any]:
        """Fields and derived constants as plain JSON-able values."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out["densities"] = list(self.densities)
        for name in ("dx", "p_vol", "mu0", "lambda0", "snow_sig_min", "snow_sig_max"):
            out[name] = getattr(self, name)
        return out


@dataclass
class MPMState:
    """Particle state; all tensors on one device, float tensors of one dtype.

    ``x`` [N, 2] positions in the unit box, ``v`` [N, 2] velocities, ``F`` [N, 2, 2]
    deformation gradients, ``C`` [N, 2, 2] APIC affine matrices, ``Jp`` [N] plastic
    volume ratios, ``material`` [N] int64 (0 liquid, 1 jelly, 2 snow) and ``S``
    [N, 2, 2] the scaled stress ``−dt·p_vol·4/dx²·τ`` of the last P2G (zeros initially).
    """

    x: torch.Tensor
    v: torch.Tensor
    F: torch.Tensor
    C: torch.Tensor
    Jp: torch.Tensor
    material: torch.Tensor
    S: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.S is None:
            self.S = torch.zeros(n, 2, 2, dtype=self.x.dtype, device=self.x.device)
        shapes = {
            "x": (n, 2),
            "v": (n, 2),
            "F": (n, 2, 2),
            "C": (n, 2, 2),
            "Jp": (n,),
            "material": (n,),
            "S": (n, 2, 2),
        }
        for name, shape in shapes.items():
            t = getattr(self, name)
            if tuple(t.shape) != shape:
                raise DataError(
                    f"MPMState.{name} has shape {list(t.shape)}, expected {list(shape)}"
                )

    @classmethod
    def at_rest(
        cls,
        x: torch.Tensor,
        material: torch.Tensor,
        v: torch.Tensor | None = None,
    ) -> MPMState:
        """Undeformed particles: F = I, C = 0, Jp = 1, S = 0; ``v`` [N, 2] or zeros."""
        n = x.shape[0]
        kw = {"dtype": x.dtype, "device": x.device}
        return cls(
            x=x,
            v=torch.zeros(n, 2, **kw) if v is None else v.to(**kw),
            F=torch.eye(2, **kw).expand(n, 2, 2).clone(),
            C=torch.zeros(n, 2, 2, **kw),
            Jp=torch.ones(n, **kw),
            material=material.to(device=x.device, dtype=torch.int64),
        )

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def mass(self, params: MPMParams) -> torch.Tensor:
        """Particle masses ``p_vol·ρ_material`` [N]."""
        rho = torch.tensor(params.densities, dtype=self.x.dtype, device=self.x.device)
        return params.p_vol * rho[self.material]

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> MPMState:
        """Copy to another device and/or float dtype (material stays int64)."""
        kw = {"device": device, "dtype": dtype}
        return MPMState(
            x=self.x.to(**kw),
            v=self.v.to(**kw),
            F=self.F.to(**kw),
            C=self.C.to(**kw),
            Jp=self.Jp.to(**kw),
            material=self.material.to(device=device),
            S=self.S.to(**kw),
        )

    def clone(self) -> MPMState:
        return MPMState(**{f.name: getattr(self, f.name).clone() for f in dataclasses.fields(self)})

    def numpy_frame(self) -> dict[str, np.ndarray]:
        """This state as one frame: float32 arrays keyed like ``iter_frames`` yields."""
        return _frame_dict(self.x, self.v, self.F, self.C, self.S, self.Jp)


def _frame_dict(
    x: torch.Tensor,
    v: torch.Tensor,
    F: torch.Tensor,
    C: torch.Tensor,
    S: torch.Tensor,
    Jp: torch.Tensor,
) -> dict[str, np.ndarray]:
    n = x.shape[0]

    def arr(t: torch.Tensor, k: int) -> np.ndarray:
        return t.detach().reshape(n, k).to(device="cpu", dtype=torch.float32).numpy()

    return {
        "positions": arr(x, 2),
        "velocity": arr(v, 2),
        "F": arr(F, 4),
        "C": arr(C, 4),
        "S": arr(S, 4),
        "Jp": arr(Jp, 1),
    }
