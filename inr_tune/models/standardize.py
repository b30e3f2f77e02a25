"""Per-component target standardisation (model outputs are in standardised units)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from inr_tune.errors import DataError

__all__ = ["Standardizer"]


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
