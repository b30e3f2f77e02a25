"""Effective ranks of a window: how many singular values hold 90 % / 99 % of its energy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inr_tune._chunks import CHUNK_VALUES as _CHUNK_VALUES

__all__ = ["data_ranks", "effective_ranks", "window_ranks"]


def _grams(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices of ``x`` [m, p], uncentred and with the column means removed.

    Each is x·xᵀ or xᵀ·x, whichever is smaller, in float64, accumulated over chunks of
    about ``_CHUNK_VALUES`` values (columns when m ≤ p, rows otherwise), so no float64
    copy of ``x`` is made. The centred one is summed from centred chunks, exact however
    large the means; the uncentred one adds the means' terms back to it (positive energy,
    no cancellation): X = X_c + 1·μᵀ gives X·Xᵀ = X_c·X_cᵀ + v·1ᵀ + 1·vᵀ + |μ|²·1·1ᵀ with
    v = X_c·μ, and Xᵀ·X = X_cᵀ·X_c + m·μ·μᵀ.
    """
    rows, cols = x.shape
    if rows <= cols:  # a chunk holds whole columns: its column means are exact
        gram_c = np.zeros((rows, rows))
        v = np.zeros(rows)
        mu2 = 0.0
        step = max(1, _CHUNK_VALUES // max(1, rows))
        for a in range(0, cols, step):
            block = np.array(x[:, a : a + step], dtype=np.float64)
            mu = block.mean(axis=0)
            block -= mu
            gram_c += block @ block.T
            v += block @ mu
            mu2 += float(mu @ mu)
        return gram_c + v[:, None] + v[None, :] + mu2, gram_c
    step = max(1, _CHUNK_VALUES // max(1, cols))
    mu = np.zeros(cols)
    for a in range(0, rows, step):
        mu += np.asarray(x[a : a + step]).sum(axis=0, dtype=np.float64)
    mu /= rows
    gram_c = np.zeros((cols, cols))
    for a in range(0, rows, step):
        block = np.asarray(x[a : a + step], dtype=np.float64) - mu
        gram_c += block.T @ block
    return gram_c + rows * np.outer(mu, mu), gram_c


def _ranks_of(gram: np.ndarray, fractions: Sequence[float], top: int | None) -> list[int]:
    """Smallest k whose top-k eigenvalues of ``gram`` (the σ²) hold ≥ each fraction."""
    energy = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    if top is not None:
        energy = energy[:top]
    total = energy.sum()
    if total <= 0:
        return [0 for _ in fractions]
    cum = np.cumsum(energy) / total
    return [int(np.searchsorted(cum, f - 1e-12) + 1) for f in fractions]


def effective_ranks(
    matrix: np.ndarray,
    fractions: tuple[float, ...] = (0.9, 0.99),
    top: int | None = None,
    *,
    centred: bool = False,
) -> list[int]:
    """Smallest k whose top-k singular values hold ≥ fraction of Σσ².

    ``matrix`` is ``[T, M]``, uncentred unless ``centred`` (each column's mean removed).
    ``top`` restricts Σσ² to the ``top`` largest singular values (the older tools' way
    used ``top=50``); ``None`` uses all of them. The σ² are the eigenvalues of the smaller
    Gram matrix (``_grams``): cheaper than a full SVD.
    """
    gram, gram_c = _grams(np.asarray(matrix))
    return _ranks_of(gram_c if centred else gram, fractions, top)


def data_ranks(values: np.ndarray, *, top: int | None = None) -> dict[str, int]:
    """``rank_90`` and ``rank_99`` of a ``[T, N, C]`` field as the uncentred [T, N·C] matrix."""
    v = np.asarray(values)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"values must be a non-empty 3-D array [T, N, C], got shape {v.shape}")
    r90, r99 = effective_ranks(v.reshape(v.shape[0], -1), (0.9, 0.99), top=top)
    return {"rank_90": r90, "rank_99": r99}


def window_ranks(values: np.ndarray) -> dict[str, int]:
    """``rank_90``, ``rank_99`` (uncentred) and ``centred_rank_90``, ``centred_rank_99``
    (each column's mean removed) of a ``[T, N, C]`` window as the [T, N·C] matrix, over
    the full spectrum, from one pass over the values (``_grams``)."""
    v = np.asarray(values)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"values must be a non-empty 3-D array [T, N, C], got shape {v.shape}")
    gram, gram_c = _grams(v.reshape(v.shape[0], -1))
    r90, r99 = _ranks_of(gram, (0.9, 0.99), None)
    c90, c99 = _ranks_of(gram_c, (0.9, 0.99), None)
    return {"rank_90": r90, "rank_99": r99, "centred_rank_90": c90, "centred_rank_99": c99}
