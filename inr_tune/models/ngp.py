"""Multi-resolution hash encoding (Instant-NGP) and the NGP field.

Müller, Evans, Schied, Keller (2022), "Instant Neural Graphics Primitives with a
Multiresolution Hash Encoding", ACM ToG 41(4). Sec. 3 of the paper:

- L levels; level l has resolution N_l = ⌊N_min · b^l⌋ with growth
  b = exp((ln N_max − ln N_min) / (L − 1))  (eq. 2, 3);
- an input x ∈ [0, 1]^d is scaled by N_l; the 2^d corners of its grid cell are looked up
  in a table of F-dimensional features and d-linearly interpolated;
- a level whose (N_l + 1)^d vertices fit in the table size T is indexed densely (1:1);
  finer levels use the spatial hash h(x) = (⊕_i x_i π_i) mod T with π = (1, 2654435761,
  805459861, …) (eq. 4);
- table entries are initialised U(−1e-4, 1e-4).

Tables are stored as one parameter [Σ_l T_l, F] with per-level offsets (T_l = min(T,
(N_l + 1)^d), like tiny-cuda-nn), so all levels and corners are looked up in one gather.

The pure-torch path is the default and the one the tests run. ``implementation="tcnn"``
uses tiny-cuda-nn instead (only if ``import tinycudann`` succeeds, and only for CUDA
inputs). tiny-cuda-nn's grid uses slightly different conventions (a half-cell offset,
resolution ⌈N_min·b^l − 1⌉ + 1, fp16 tables), so its parameters are not interchangeable
with the torch ones: a config would give different results depending on whether the
package happens to be installed, and a tcnn checkpoint cannot be evaluated on CPU. That is
why it is opt-in rather than automatic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["HASH_PRIMES", "HashGridEncoding", "NGPField"]

HASH_PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
"""π_i of the spatial hash: the paper's first three, then tiny-cuda-nn's (d ≤ 7)."""


class HashGridEncoding(nn.Module):
    """Multi-resolution hash encoding: x [..., d] in [0, 1]^d → [..., L·F].

    Inputs outside [0, 1]^d are clamped onto the boundary (map them into the unit cube
    first; ``NGPField`` does this from its ``input_bounds``).

    Defaults, for (τ, x, y) with the window mapped onto [0, 1]³: L = 16, F = 2 and
    T = 2^19 are the paper's. N_min = 16: the coarsest cell spans 1/16 of the window
    (25 frames at T = 400). N_max = 1024: 1/1024 is ~1/4 of the mean MPM particle spacing
    (1000 particles per disc of radius 0.075: ~1/240) and ≤ 1 frame up to 1024 frames;
    finer levels would only add hash collisions in space. The grid is isotropic, so for
    long windows (fly-eye, 64000 frames: 62 frames per finest cell) time is the limiting
    axis. With these defaults the table holds 11.4 M parameters (6 dense levels up to
    N = 64, then 10 × 2^19 entries × 2): more than the 400 × 9000 × 4 values of an MPM
    window, so a search that cares about compression should lower ``log2_hashmap_size``.

    Args:
        n_input_dims: d (3 for (τ, x, y)); at most 7.
        n_levels: L.
        features_per_level: F.
        log2_hashmap_size: log2 of T, the largest table size per level.
        base_resolution: N_min, resolution of the coarsest level.
        max_resolution: N_max, resolution of the finest level.
        implementation: ``"torch"`` (default) or ``"tcnn"`` (see the module docstring).
    """

    def __init__(
        self,
        n_input_dims: int = 3,
        n_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 1024,
        implementation: str = "torch",
    ) -> None:
        super().__init__()
        if not 1 <= n_input_dims <= len(HASH_PRIMES):
            raise ValueError(f"n_input_dims must be in 1..{len(HASH_PRIMES)}, got {n_input_dims}")
        if n_levels < 1 or features_per_level < 1:
            raise ValueError("n_levels and features_per_level must be ≥ 1")
        if not 1 <= base_resolution <= max_resolution:
            raise ValueError(
                f"need 1 ≤ base_resolution ≤ max_resolution, got {base_resolution}, {max_resolution}"
            )
        if implementation not in ("torch", "tcnn"):
            raise ValueError(f"implementation must be 'torch' or 'tcnn', got {implementation!r}")
        self.n_input_dims = n_input_dims
        self.n_levels = n_levels
        self.features_per_level = features_per_level
        self.log2_hashmap_size = log2_hashmap_size
        self.base_resolution = base_resolution
        self.max_resolution = max_resolution
        self.implementation = implementation
        # Paper eq. 2-3: growth factor b and per-level resolutions N_l.
        if n_levels > 1:
            self.growth = math.exp(
                (math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1)
            )
        else:
            self.growth = 1.0
        # The small epsilon keeps ⌊16 · b^15⌋ = 1024 despite rounding in b^l.
        resolutions = [
            math.floor(base_resolution * self.growth**level + 1e-6) for level in range(n_levels)
        ]
        table_size = 2**log2_hashmap_size
        vertices = [(r + 1) ** n_input_dims for r in resolutions]
        dense = [v <= table_size for v in vertices]
        sizes = [min(v, table_size) for v in vertices]
        offsets = [0]
        for s in sizes[:-1]:
            offsets.append(offsets[-1] + s)
        self.level_resolutions: tuple[int, ...] = tuple(resolutions)
        self.level_sizes: tuple[int, ...] = tuple(sizes)

        self.tcnn_encoding: nn.Module | None = None
        if implementation == "tcnn":
            self.tcnn_encoding = self._make_tcnn()
            self.register_parameter("table", None)
        else:
            # Paper Sec. 3 ("Initialization"): U(−1e-4, 1e-4).
            self.table = nn.Parameter(torch.empty(sum(sizes), features_per_level))
            nn.init.uniform_(self.table, -1e-4, 1e-4)

        # Non-persistent lookup constants (rebuilt from the constructor arguments).
        d = n_input_dims
        strides = torch.tensor(
            [[(r + 1) ** i for i in range(d)] for r in resolutions], dtype=torch.long
        )  # [L, d]
        self.register_buffer("_strides", strides, persistent=False)
        self.register_buffer("_res", torch.tensor(resolutions), persistent=False)
        self.register_buffer("_dense", torch.tensor(dense), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets), persistent=False)
        self.register_buffer("_primes", torch.tensor(HASH_PRIMES[:d]), persistent=False)

    @property
    def n_output_dims(self) -> int:
        """L · F."""
        return self.n_levels * self.features_per_level

    def _make_tcnn(self) -> nn.Module:
        try:
            import tinycudann as tcnn
        except ImportError as err:  # pragma: no cover - not installed on CPU machines
            raise ImportError(
                "HashGridEncoding(implementation='tcnn') needs tiny-cuda-nn; "
                "install it or use implementation='torch'"
            ) from err
        return tcnn.Encoding(  # pragma: no cover
            n_input_dims=self.n_input_dims,
            encoding_config={
                "otype": "HashGrid",
                "n_levels": self.n_levels,
                "n_features_per_level": self.features_per_level,
                "log2_hashmap_size": self.log2_hashmap_size,
                "base_resolution": self.base_resolution,
                "per_level_scale": self.growth,
            },
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [..., d] → features [..., L·F] (float32)."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.n_input_dims).float().clamp(0.0, 1.0)  # [B, d]
        if self.tcnn_encoding is not None:  # pragma: no cover - needs CUDA + tinycudann
            if not x.is_cuda:
                raise RuntimeError(
                    "this HashGridEncoding uses tiny-cuda-nn, which runs on CUDA only; move "
                    "the model to a GPU or build it with implementation='torch'"
                )
            return self.tcnn_encoding(x).float().reshape(*lead, self.n_output_dims)
        return self._torch_forward(x).reshape(*lead, self.n_output_dims)

    def _torch_forward(self, x: Tensor) -> Tensor:
        """x [B, d] in [0, 1] → [B, L·F]."""
        res = self._res  # [L]
        scaled = x[:, None, :] * res[None, :, None].to(x.dtype)  # [B, L, d]
        # Cell index; x = 1 falls in the last cell (upper corner weight 1), so corners
        # stay within 0..N_l.
        cell = torch.minimum(scaled.floor().long(), (res - 1)[None, :, None])  # [B, L, d]
        frac = scaled - cell.to(x.dtype)  # [B, L, d] in [0, 1]
        lo_hi = torch.stack([cell, cell + 1], dim=-1)  # [B, L, d, 2]: corner coordinates
        # Per dimension, the two values a corner can take; combined over the 2^d corners
        # (corner c has bit i = (c >> i) & 1 for dimension i).
        dense_index = _combine(lo_hi * self._strides[None, :, :, None], torch.add)
        hashed = _combine(lo_hi * self._primes[None, None, :, None], torch.bitwise_xor)
        hashed = hashed & (2**self.log2_hashmap_size - 1)  # mod T (T is a power of two)
        index = torch.where(self._dense[None, :, None], dense_index, hashed)
        index = index + self._offsets[None, :, None]  # [B, L, 2^d]
        # d-linear weights: Π_i (frac_i if corner bit i else 1 − frac_i).
        weights = _combine(torch.stack([1.0 - frac, frac], dim=-1), torch.mul)  # [B, L, 2^d]
        # index_select: on CPU ~3× faster than table[index] forward and backward.
        feats = self.table.index_select(0, index.reshape(-1)).view(*index.shape, -1)
        out = (weights[..., None] * feats).sum(2)  # [B, L, F]
        return out.reshape(x.shape[0], self.n_output_dims)

    def extra_repr(self) -> str:
        return (
            f"d={self.n_input_dims}, levels={self.n_levels}, F={self.features_per_level}, "
            f"log2_T={self.log2_hashmap_size}, resolutions={self.level_resolutions[0]}.."
            f"{self.level_resolutions[-1]} (b={self.growth:.4f}), impl={self.implementation}"
        )


def _combine(parts: Tensor, op: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """parts [B, L, d, 2] (per dimension: value at bit 0, at bit 1) → [B, L, 2^d], where
    entry c = op over i of parts[..., i, (c >> i) & 1]."""
    out = parts[:, :, 0, :]  # [B, L, 2]
    for i in range(1, parts.shape[2]):
        out = op(parts[:, :, i, :, None], out[:, :, None, :]).flatten(2)  # bit i is slowest
    return out


class NGPField(nn.Module):
    """Hash-grid encoding + small ReLU MLP: x [..., d] → [..., out_features].

    The MLP is ``Linear(L·F, h), ReLU, n_layers × (Linear(h, h), ReLU), Linear(h, out)``
    with nn.Linear's default init.

    Args:
        encoding: the ``HashGridEncoding`` (d = its ``n_input_dims``).
        out_features: output width C.
        hidden_dim: MLP width h.
        n_layers: hidden h → h layers (≥ 0).
        input_bounds: per input dimension (lo, hi); inputs are mapped affinely from
            [lo, hi] onto [0, 1] before the encoding (values outside are clamped).
            None = inputs are already in [0, 1].
    """

    def __init__(
        self,
        encoding: HashGridEncoding,
        out_features: int,
        hidden_dim: int = 64,
        n_layers: int = 1,
        input_bounds: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        super().__init__()
        d = encoding.n_input_dims
        if input_bounds is None:
            input_bounds = [(0.0, 1.0)] * d
        if len(input_bounds) != d or any(hi <= lo for lo, hi in input_bounds):
            raise ValueError(f"input_bounds needs {d} pairs (lo, hi) with hi > lo")
        lo = torch.tensor([b[0] for b in input_bounds], dtype=torch.float32)
        span = torch.tensor([b[1] - b[0] for b in input_bounds], dtype=torch.float32)
        self.register_buffer("input_lo", lo)
        self.register_buffer("input_span", span)
        self.encoding = encoding
        layers: list[nn.Module] = [nn.Linear(encoding.n_output_dims, hidden_dim), nn.ReLU()]
        for _ in range(n_layers):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        layers.append(nn.Linear(hidden_dim, out_features))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x [..., d] → [..., out_features]."""
        u = (x - self.input_lo) / self.input_span
        return self.mlp(self.encoding(u))
