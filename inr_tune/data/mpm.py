"""2D MLS-MPM (APIC, quadratic B-splines) in PyTorch: a port of Taichi's ``mpm99.py``.

Three materials share one grid: liquid (0), jelly (1) and snow (2). One substep follows
mpm99 line by line, vectorised over particles and over the 3×3 stencil:

1. ``F ← (I + dt·C)·F``; hardening ``h = exp(10·(1 − Jp))`` (jelly: ``h = 0.3``);
   ``μ, λ = μ0·h, λ0·h`` (liquid: ``μ = 0``).
2. SVD ``F = U·diag(σ)·Vᵀ``; snow clamps σ to ``[1 − θc, 1 + θs]`` and
   ``Jp *= σ / σ_clamped`` per singular value; ``J = Π σ_clamped``; liquid
   ``F = √J·I``; snow ``F = U·diag(σ_clamped)·Vᵀ``.
3. Fixed-corotated Kirchhoff stress ``τ = 2μ(F − U·Vᵀ)·Fᵀ + λ·J·(J − 1)·I`` scaled to
   ``S = −dt·p_vol·4/dx²·τ`` (the ``S`` field of the datasets); ``affine = S + m·C``.
4. P2G with ``base = floor(x/dx − 0.5)``, ``fx = x/dx − base``,
   ``w = [0.5(1.5 − fx)², 0.75 − (fx − 1)², 0.5(fx − 0.5)²]``: each of the 9 nodes gets
   ``w·(m·v + affine·(offset − fx)·dx)`` momentum and ``w·m`` mass.
5. Grid, where ``m > 0``: ``v = momentum / m``; ``v_y −= dt·gravity``; within
   ``wall_cells`` of a wall the velocity component into the wall is zeroed.
6. G2P: ``v = Σ w·v_grid``, ``C = 4/dx·Σ w·v_grid ⊗ (offset − fx)``; ``x += dt·v``.
   As in mpm99, this ``offset − fx`` is in grid units (mpm99's G2P ``dpos`` has no
   ``·dx``, unlike its P2G ``dpos``): ``4/dx·(offset − fx) = 4/dx²·(x_node − x_p)`` is the
   APIC ``D⁻¹·(x_i − x_p)`` of quadratic B-splines, so C is the velocity gradient.

Frames (``iter_frames``, ``generate_mpm``) are recorded after the last substep of each
frame, as in the reference data; the initial state is not a frame. ``S`` is the scaled
stress of the frame's last P2G.

Implementation: one substep is ~100 tensor ops with no Python loop over particles.
Matrices are row-major ``[N, 2, 2]``; the 2×2 algebra is written on components (a batched
``bmm`` of 2×2 matrices is slower on CPU than a few element-wise ops). The grid is a flat
channel-major ``[3, n_grid²]`` tensor (momentum x, momentum y, mass) filled by one
``scatter_add_`` of all 9 stencil contributions of all particles; G2P is one
``index_select``. On CPU the simulation runs torch on one thread (restored afterwards):
the ops are small and intra-op threading on 2 shared cores made them up to 20× slower.

Departures from mpm99
---------------------
- **SVD.** mpm99 calls Taichi's ``ti.svd`` (``svd2d``): a polar decomposition
  ``F = R·S`` (R a rotation) followed by a Jacobi rotation of the symmetric ``S``, so U and
  V are rotations and the singular values are sorted descending and *signed* (the
  smaller one is negative when ``det F < 0``); ``U·Vᵀ = R``. We compute the same thing in
  closed form: R from ``(F00 + F11, F10 − F01)``, σ₁,₂ = ``m ± r`` with
  ``m = (S00 + S11)/2``, ``r = √(((S00 − S11)/2)² + S01²)``, and the snow reconstruction
  ``U·diag(σ')·Vᵀ = R·((σ'₁ + σ'₂)/2·I + (σ'₁ − σ'₂)/(σ₁ − σ₂)·(S − m·I))``. Same sign
  convention, same ``U·Vᵀ``, same clamps. Taichi's ``svd2d`` skips the Jacobi rotation
  when ``|S01| < 1e-5`` (keeping the diagonal of S as the singular values); we always
  diagonalise exactly, so a snow particle's reconstructed F keeps shears below 1e-5 that
  Taichi would drop, and J differs by at most ``S01² < 1e-10``.
- **Stencil base.** mpm99 truncates ``x/dx − 0.5`` toward zero; we floor (as the
  spec states). Both agree for ``x ≥ dx/2``, which the walls guarantee. The base is also
  clamped to ``[0, n_grid − 3]`` so that a particle outside the box (only possible after
  a blow-up) cannot index out of the grid; inside the walls this clamp never acts.
- **Grid mass test.** Exactly mpm99's ``m > 0`` (no epsilon regulariser); nodes with
  ``m = 0`` keep velocity 0 (their momentum is 0 as well).
- **Per-material density.** mpm99 uses one density; here ``p_mass = p_vol·ρ_material``
  with ρ = (1.0, 0.5, 0.25) for (liquid, jelly, snow), as in the reference study.
- **Constants.** ``dt = 7.5e-5`` as in the reference study (mpm99: ``1e-4``); E = 1000,
  ν = 0.2 and gravity 50 as in mpm99, but all of them are parameters (``MPMParams``),
  as are the hardening exponent 10, jelly's h = 0.3, the snow clamps and the 3 wall cells.
- **Arithmetic order.** Sums are regrouped for vectorisation: P2G scatters
  ``w·((m·v − dx·affine·(fx − 1)) + dx·affine·(offset − 1))`` and G2P computes
  ``C = 4/dx·(Σ w·v_grid ⊗ (offset − 1) − v ⊗ (fx − 1))`` (offsets centred on the middle
  node to avoid cancellation), and ``F ← (I + dt·C)·F`` is expanded per component.
  Results equal mpm99's per-particle loop up to floating-point rounding (the tests
  check ≤ 1e-10 relative in float64 against such a loop).
- **Determinism.** On CPU a run is bitwise reproducible. On CUDA ``scatter_add_`` uses
  atomics, so the summation order of grid contributions (hence rounding) varies between
  runs, as it does in Taichi on a GPU.

The parameters and the particle state (``MPMParams``, ``MPMState``) are in
``mpm_state.py``, importable from here; the default scene and its dataset writer in
``mpm_scene.py``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from inr_tune.data.mpm_state import (
    COMPONENTS,
    JELLY,
    LIQUID,
    MATERIALS,
    SNOW,
    MPMParams,
    MPMState,
)
from inr_tune.errors import DataError

__all__ = [
    "COMPONENTS",
    "MATERIALS",
    "MPMParams",
    "MPMState",
    "p2g_grid",
    "simulate",
]


class _Stepper:
    """Per-run constants (masses, material masks, stencil offsets) and the substep.

    Built once per ``simulate``/``iter_frames`` call so the substep does no set-up work.
    """

    def __init__(self, material: torch.Tensor, params: MPMParams, dtype: torch.dtype) -> None:
        p = params
        dev = material.device
        kw = {"dtype": dtype, "device": dev}
        self.p = p
        self.n_grid = p.n_grid
        self.dt = p.dt
        self.dx = p.dx
        self.inv_dx = p.inv_dx
        self.is_liquid = material == LIQUID
        self.is_snow = material == SNOW
        self.is_jelly = material == JELLY
        self.mass = p.p_vol * torch.tensor(p.densities, **kw)[material]
        # μ0 for elastic materials, 0 for liquid; λ0 for all.
        self.mu_fac = torch.where(
            self.is_liquid, torch.tensor(0.0, **kw), torch.tensor(p.mu0, **kw)
        )
        inf = torch.tensor(math.inf, **kw)
        self.sig_lo = torch.where(self.is_snow, torch.tensor(p.snow_sig_min, **kw), -inf)
        self.sig_hi = torch.where(self.is_snow, torch.tensor(p.snow_sig_max, **kw), inf)
        self.stress_scale = -p.dt * p.p_vol * 4 * p.inv_dx * p.inv_dx
        # Stencil k = 3·i + j, offsets (i, j) centred as (i − 1, j − 1) ∈ {−1, 0, 1}²: with
        # fx − 1 ∈ [−0.5, 0.5) this keeps the regrouped sums below free of cancellation.
        ii, jj = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
        ii, jj = ii.reshape(-1), jj.reshape(-1)
        self.offsets_c = torch.stack([ii, jj], 1).to(**kw) - 1  # [9, 2]
        self.offsets_c_dx_t = (self.offsets_c * p.dx).T.contiguous()  # [2, 9]
        self.flat_offsets = (ii * p.n_grid + jj).to(dev)  # [9]
        g = p.n_grid * p.n_grid
        self.n_nodes = g
        # Channel-major flat grid [3, G]: momentum x, momentum y, mass.
        self.channel_offsets = (torch.arange(3, device=dev) * g)[None, :, None]  # [1, 3, 1]
        # Node index = i·n_grid + j, i along x.
        gi, gj = torch.meshgrid(
            torch.arange(p.n_grid, device=dev), torch.arange(p.n_grid, device=dev), indexing="ij"
        )
        gi, gj = gi.reshape(-1), gj.reshape(-1)
        lo, hi = p.wall_cells, p.n_grid - p.wall_cells
        # Walls as velocity bounds [2, G]: i < lo ⇒ v_x ≥ 0, i > hi ⇒ v_x ≤ 0 (same for j, v_y).
        inf = torch.tensor(math.inf, **kw)
        zero = torch.zeros((), **kw)
        self.v_min = torch.where(torch.stack([gi < lo, gj < lo], 0), zero, -inf)
        self.v_max = torch.where(torch.stack([gi > hi, gj > hi], 0), zero, inf)
        self.gravity = torch.tensor([[0.0], [-p.dt * p.gravity]], **kw)  # [2, 1]
        self.one = torch.ones((), **kw)
        self.zero = torch.zeros((), **kw)

    # -- pieces of a substep --------------------------------------------------------

    def stencil(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat node indices [N, 9], weights [N, 9] and ``fx − 1`` [N, 2] of each particle."""
        xg = x * self.inv_dx
        base = torch.floor(xg - 0.5).long().clamp_(0, self.n_grid - 3)  # [N, 2]
        fx = xg - base.to(x.dtype)
        w = torch.stack(
            [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2], 1
        )  # [N, 3 (stencil), 2 (axis)]
        weight = (w[:, :, None, 0] * w[:, None, :, 1]).reshape(-1, 9)
        idx = (base[:, 0] * self.n_grid + base[:, 1])[:, None] + self.flat_offsets
        return idx, weight, fx - 1

    def constitutive(
        self, F: torch.Tensor, C: torch.Tensor, Jp: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F update, plasticity and scaled stress: returns ``F'``, ``Jp'``, ``S`` (mpm99 order)."""
        dt = self.dt
        c00, c01, c10, c11 = C[:, 0, 0], C[:, 0, 1], C[:, 1, 0], C[:, 1, 1]
        f00, f01, f10, f11 = F[:, 0, 0], F[:, 0, 1], F[:, 1, 0], F[:, 1, 1]
        # F ← (I + dt·C)·F
        m00, m01, m10, m11 = 1 + dt * c00, dt * c01, dt * c10, 1 + dt * c11
        a = m00 * f00 + m01 * f10
        b = m00 * f01 + m01 * f11
        c = m10 * f00 + m11 * f10
        d = m10 * f01 + m11 * f11
        # Hardening and Lamé parameters.
        h = torch.where(self.is_jelly, self.p.jelly_h, torch.exp(self.p.hardening * (1.0 - Jp)))
        mu = self.mu_fac * h
        la = self.p.lambda0 * h
        # Signed SVD via polar decomposition F = R·S, S symmetric (see module docstring).
        px, py = a + d, c - b
        inv = torch.rsqrt(px * px + py * py)
        cs, sn = px * inv, py * inv  # R = [[cs, -sn], [sn, cs]] = U·Vᵀ
        s00 = cs * a + sn * c
        s01 = cs * b + sn * d
        s11 = cs * d - sn * b
        mid = 0.5 * (s00 + s11)
        half = 0.5 * (s00 - s11)
        r = torch.sqrt(half * half + s01 * s01)
        sig1, sig2 = mid + r, mid - r
        new1 = torch.clamp(sig1, self.sig_lo, self.sig_hi)
        new2 = torch.clamp(sig2, self.sig_lo, self.sig_hi)
        Jp = Jp * (sig1 / new1) * (sig2 / new2)
        J = new1 * new2
        # Snow: F = U·diag(new)·Vᵀ = R·S' with S' = (n1+n2)/2·I + k·(S − mid·I).
        den = sig1 - sig2
        k = torch.where(den != 0, (new1 - new2) / torch.where(den != 0, den, 1.0), 1.0)
        nm = 0.5 * (new1 + new2)
        t00, t01, t11 = nm + k * half, k * s01, nm - k * half
        sa = cs * t00 - sn * t01
        sb = cs * t01 - sn * t11
        sc = sn * t00 + cs * t01
        sd = sn * t01 + cs * t11
        sqj = torch.sqrt(J)
        zero = torch.zeros_like(J)
        liq, snow = self.is_liquid, self.is_snow
        a = torch.where(snow, sa, torch.where(liq, sqj, a))
        b = torch.where(snow, sb, torch.where(liq, zero, b))
        c = torch.where(snow, sc, torch.where(liq, zero, c))
        d = torch.where(snow, sd, torch.where(liq, sqj, d))
        # τ = 2μ(F − R)·Fᵀ + λJ(J − 1)·I, scaled by −dt·p_vol·4/dx².
        da, db, dc, dd = a - cs, b + sn, c - sn, d - cs
        two_mu = 2 * mu
        iso = la * J * (J - 1)
        t00 = two_mu * (da * a + db * b) + iso
        t01 = two_mu * (da * c + db * d)
        t10 = two_mu * (dc * a + dd * b)
        t11 = two_mu * (dc * c + dd * d) + iso
        F_new = torch.stack([a, b, c, d], 1).view(-1, 2, 2)
        S = (self.stress_scale * torch.stack([t00, t01, t10, t11], 1)).view(-1, 2, 2)
        return F_new, Jp, S

    def p2g(
        self,
        idx: torch.Tensor,
        weight: torch.Tensor,
        fxc: torch.Tensor,
        v: torch.Tensor,
        affine: torch.Tensor,
    ) -> torch.Tensor:
        """Scatter ``w·(m·v + affine·dpos)`` and ``w·m``: returns the grid [3, G].

        ``dpos = (offset − fx)·dx = ((offset − 1) − (fx − 1))·dx``; the sum is regrouped as
        ``(m·v − dx·affine·(fx − 1)) + affine·(offset − 1)·dx``.
        """
        n = v.shape[0]
        q = self.mass[:, None] * v - self.dx * (affine * fxc[:, None, :]).sum(-1)  # [N, 2]
        a_off = (affine.reshape(n * 2, 2) @ self.offsets_c_dx_t).view(n, 2, 9)
        mv = weight[:, None, :] * (q[:, :, None] + a_off)  # [N, 2, 9]
        src = torch.cat([mv, (weight * self.mass[:, None])[:, None, :]], 1)  # [N, 3, 9]
        flat = (idx[:, None, :] + self.channel_offsets).reshape(-1)
        grid = torch.zeros(3 * self.n_nodes, dtype=v.dtype, device=v.device)
        grid.scatter_add_(0, flat, src.reshape(-1))
        return grid.view(3, self.n_nodes)

    def grid_velocity(self, grid: torch.Tensor) -> torch.Tensor:
        """Momentum → velocity where m > 0, gravity, walls: returns [2, G]."""
        m = grid[2:3]
        has = m > 0
        vel = torch.where(has, grid[:2] / torch.where(has, m, self.one) + self.gravity, self.zero)
        return torch.clamp(vel, self.v_min, self.v_max)

    def g2p(
        self, idx: torch.Tensor, weight: torch.Tensor, fxc: torch.Tensor, grid_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather: ``v = Σ w·g_v`` [N, 2] and ``C = 4/dx·Σ w·g_v ⊗ (offset − fx)`` [N, 2, 2]."""
        n = weight.shape[0]
        wg = weight * grid_v.index_select(1, idx.reshape(-1)).view(2, n, 9)  # [2, N, 9]
        v_new = wg.sum(-1)  # [2, N]
        c = (wg.view(2 * n, 9) @ self.offsets_c).view(2, n, 2)  # Σ w·g_v ⊗ (offset − 1)
        c = (4 * self.inv_dx) * (c - v_new[:, :, None] * fxc[None])
        return v_new.T, c.permute(1, 0, 2)

    def step(
        self,
        x: torch.Tensor,
        v: torch.Tensor,
        F: torch.Tensor,
        C: torch.Tensor,
        Jp: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """One substep; returns new ``(x, v, F, C, Jp, S)`` (inputs are not modified)."""
        idx, weight, fxc = self.stencil(x)
        F, Jp, S = self.constitutive(F, C, Jp)
        affine = S + self.mass[:, None, None] * C
        grid_v = self.grid_velocity(self.p2g(idx, weight, fxc, v, affine))
        v_new, C_new = self.g2p(idx, weight, fxc, grid_v)
        x_new = x + self.dt * v_new
        return x_new, v_new, F, C_new, Jp, S


@contextlib.contextmanager
def _single_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run torch CPU ops on one thread (restored afterwards); a no-op on CUDA.

    The substep is ~100 small ops; on 2 shared cores, intra-op threading made them up to
    20× slower (threads waiting for each other), never faster. ``torch.set_num_threads``
    is process-wide, so other torch work in the same process runs single-threaded while
    a simulation is inside this context.
    """
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_state(state: MPMState, params: MPMParams) -> None:
    if not state.x.is_floating_point():
        raise DataError(f"MPMState.x must be a float tensor, got {state.x.dtype}")
    if state.material.numel() and (int(state.material.min()) < 0 or int(state.material.max()) > 2):
        raise DataError("MPMState.material must hold 0 (liquid), 1 (jelly) or 2 (snow)")


def simulate(state: MPMState, params: MPMParams, n_substeps: int) -> MPMState:
    """Advance ``state`` by ``n_substeps`` substeps of ``params.dt``; returns a new state.

    Pure: the input state's tensors are not modified. No finiteness check is made here
    (``iter_frames`` and ``generate_mpm`` check every frame).
    """
    if isinstance(n_substeps, bool) or not isinstance(n_substeps, int) or n_substeps < 0:
        raise DataError(f"n_substeps must be an integer ≥ 0, got {n_substeps!r}")
    _check_state(state, params)
    stepper = _Stepper(state.material, params, state.x.dtype)
    x, v, F, C, Jp, S = state.x, state.v, state.F, state.C, state.Jp, state.S
    with _single_cpu_thread(state.x.device):
        for _ in range(n_substeps):
            x, v, F, C, Jp, S = stepper.step(x, v, F, C, Jp)
    return MPMState(x=x, v=v, F=F, C=C, Jp=Jp, material=state.material, S=S).clone()


def p2g_grid(state: MPMState, params: MPMParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The P2G of the next substep, for diagnostics: grid momentum [n, n, 2], mass [n, n].

    Index ``[i, j]`` is the node at ``(i·dx, j·dx)``.
    """
    _check_state(state, params)
    st = _Stepper(state.material, params, state.x.dtype)
    idx, weight, fxc = st.stencil(state.x)
    _, _, S = st.constitutive(state.F, state.C, state.Jp)
    grid = st.p2g(idx, weight, fxc, state.v, S + st.mass[:, None, None] * state.C)
    n = params.n_grid
    return grid[:2].T.reshape(n, n, 2), grid[2].reshape(n, n)
