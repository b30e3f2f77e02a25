"""Metrics on arrays (pure functions; no Ray or Lightning). Definitions: DESIGN.md."""

from __future__ import annotations

import numpy as np

__all__ = ["effective_ranks"]


def effective_ranks(
    matrix: np.ndarray, fractions: tuple[float, ...] = (0.9, 0.99), top: int | None = None
) -> list[int]:
    """Smallest k whose top-k singular values hold ≥ fraction of Σσ² (uncentred matrix).

    ``matrix`` is ``[T, M]``. ``top`` restricts Σσ² to the ``top`` largest singular values
    (the older tools' way used ``top=50``); ``None`` uses all of them.
    """
    x = np.asarray(matrix, dtype=np.float64)
    # σ² are the eigenvalues of the smaller Gram matrix: cheaper than a full SVD.
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    energy = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    if top is not None:
        energy = energy[:top]
    total = energy.sum()
    if total <= 0:
        return [0 for _ in fractions]
    cum = np.cumsum(energy) / total
    return [int(np.searchsorted(cum, f - 1e-12) + 1) for f in fractions]
