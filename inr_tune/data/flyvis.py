"""Photoreceptor stimulus of the fruit-fly eye: natural-like grey video on a hex lattice.

The lattice (flyvis's ``get_hex_coords`` order, extent 8): 217 columns at
``x = u + v/2, y = v·√3/2`` (unit spacing), 8 photoreceptor types per column, so 1736
input neurons in type-major order (neurons 0–216 are R1 at every column, then R2, …);
all 8 types of a column see the same value.

The video is a sequence of clips (50–80 frames, uniform) with hard cuts between them,
one frame per 20 ms. A clip is built from one image:

1. a periodic Gaussian random field ``g`` on a ``image_size``² pixel grid with amplitude
   spectrum ∝ 1/f (power ∝ 1/f², as natural images), made by one inverse FFT;
2. the lattice moves over it: a constant drift (random heading, 1.2–3.5 px/frame) and a
   constant rotation about the lattice centre (up to ±0.03 rad/frame);
3. ``g`` is standardised over the pixels the lattice visits and made into log-normal
   luminance ``L = exp(μ + σ·g)`` (clip brightness μ ~ N(−2.2, 0.2²), contrast σ ~
   U(2.5, 3.5)), mapped into [0, 1] by the saturating ``L / (1 + L)``;
4. a 13×13 pixel box blur (integral image): a column's value is the mean of the 13×13
   pixel patch centred on it, read by bilinear interpolation of the blurred image at the
   column's moved position. Pixel scale: columns are 11 px apart, so horizontal
   neighbours' patches share a 2-px strip and diagonal neighbours' a 7.5×3.5 px corner;
   the box's equivalent-Gaussian width (FWHM 2.355·13/√12 = 8.8 px = 0.8 spacing) is
   close to one spacing, as the fly's acceptance angle is close to its interommatidial
   angle. (flyvis's BoxEye puts its 13-px boxes 13 px apart on a sheared lattice.) The
   lattice spans 189 px with the blur, the longest drift 280 px: no clip wraps around
   the 512-px periodic image onto pixels it has already shown.

The original data had 8 flip/rotation copies of each clip; here every clip is a new
image (rotation gives orientation variety), which matches the target statistics.

Every clip has its own random generator derived from (seed, clip index), so a seed gives
the same video however it is chunked, and a shorter video is a prefix of a longer one.
Optional additive Gaussian noise σ (its own stream per clip) is added to the column
values, which are then clipped to [0, 1].

Statistics (``stimulus_statistics``) of the first 1000 frames match the fly-eye study's
stimulus: rank_90 ≈ 12 (10–14 over 30 seeds), rank_99 41–43 (top-50 singular values of
the uncentred ``[T, 1736]`` matrix, the older tool's way), lag-1 temporal correlation
0.95–0.97 (Pearson correlation of frame t with frame t+1 over all (t, neuron) pairs).
The constants in ``VideoParams`` were tuned for this.

How a clip is made (steps 1–4, ``VideoParams``) is in ``flyvis_clip.py``; this module
holds the lattice, the video made of clips, the dataset writer and the statistics.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inr_tune.data.flyvis_clip import (
    DEFAULT_PARAMS,
    VideoParams,
    _iter_clip_lengths,
    _render_clip,
    clip_lengths,
)
from inr_tune.data.store import CHUNK_FRAMES, DatasetWriter, FrameArray
from inr_tune.errors import DataError

__all__ = [
    "EXTENT",
    "FRAME_DT",
    "N_COLUMNS",
    "N_NEURONS",
    "N_TYPES",
    "VideoParams",
    "clip_lengths",
    "generate_flyvis",
    "generate_stimulus",
    "hex_columns",
    "lag1_correlation",
    "neuron_positions",
    "stimulus_statistics",
]

EXTENT = 8
N_TYPES = 8
N_COLUMNS = 3 * EXTENT * (EXTENT + 1) + 1  # 217
N_NEURONS = N_TYPES * N_COLUMNS  # 1736
FRAME_DT = 0.02  # seconds per frame
GENERATOR_NAME = "flyvis.natural_video"


# ----- lattice ---------------------------------------------------------------------------


def _hex_uv(extent: int) -> np.ndarray:
    """Axial coordinates ``[n, 2]`` (u, v) in flyvis's ``get_hex_coords`` order."""
    uv = [
        (q, r)
        for q in range(-extent, extent + 1)
        for r in range(max(-extent, -extent - q), min(extent, extent - q) + 1)
    ]
    return np.asarray(uv, dtype=np.int64).reshape(-1, 2)


def hex_columns(extent: int = EXTENT) -> np.ndarray:
    """Column positions ``[3·e·(e+1)+1, 2]`` float32 (217 for extent 8), unit spacing.

    ``x = u + v/2``, ``y = v·√3/2`` in flyvis's ``get_hex_coords`` order.
    """
    if extent < 0:
        raise DataError(f"hex lattice extent {extent} is not allowed; use extent ≥ 0")
    uv = _hex_uv(extent).astype(np.float64)
    xy = np.stack([uv[:, 0] + uv[:, 1] / 2, uv[:, 1] * math.sqrt(3) / 2], axis=1)
    return xy.astype(np.float32)


def neuron_positions(extent: int = EXTENT, n_types: int = N_TYPES) -> np.ndarray:
    """Neuron positions ``[n_types·n_columns, 2]`` float32 (1736 × 2), type-major.

    Neuron ``k·n_columns + c`` is type k at column c, so the array is ``n_types`` copies of
    ``hex_columns(extent)``.
    """
    if n_types < 1:
        raise DataError(f"n_types={n_types} is not allowed; use n_types ≥ 1")
    return np.tile(hex_columns(extent), (n_types, 1))


def _iter_clips(seed: int, noise: float, extent: int, params: VideoParams) -> Iterator[np.ndarray]:
    """Endless stream of clips ``[L, n_columns]`` float32 in [0, 1]."""
    columns = hex_columns(extent).astype(np.float64)
    for index, length in enumerate(_iter_clip_lengths(seed, params)):
        rng = np.random.default_rng([int(seed), index, 0])
        clip = _render_clip(length, rng, columns, params)
        if noise > 0:
            noise_rng = np.random.default_rng([int(seed), index, 1])
            clip = clip + noise * noise_rng.standard_normal(clip.shape)
        yield np.clip(clip, 0.0, 1.0).astype(np.float32)


def _iter_blocks(
    n_frames: int, block: int, seed: int, noise: float, extent: int, params: VideoParams
) -> Iterator[np.ndarray]:
    """Frames ``[≤block, n_columns]`` in order until ``n_frames`` have been yielded."""
    pending: list[np.ndarray] = []
    have = 0
    done = 0
    clips = _iter_clips(seed, noise, extent, params)
    while done < n_frames:
        want = min(block, n_frames - done)
        while have < want:
            clip = next(clips)
            pending.append(clip)
            have += len(clip)
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        yield joined[:want]
        rest = joined[want:]
        pending = [rest] if len(rest) else []
        have = len(rest)
        done += want


def _check_args(n_frames: Any, seed: Any, noise: Any, extent: Any = EXTENT) -> None:
    """Raise ``DataError`` (one line) on a bad frame count, seed, noise std or extent."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, numbers.Integral) or n_frames < 1:
        raise DataError(f"frames={n_frames!r} is not allowed; use an integer ≥ 1")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"seed={seed!r} is not allowed; use an integer ≥ 0")
    if (
        isinstance(noise, bool)
        or not isinstance(noise, numbers.Real)
        or not (math.isfinite(noise) and noise >= 0)
    ):
        raise DataError(f"noise={noise!r} is not allowed; use a noise std ≥ 0 (0 = off)")
    if isinstance(extent, bool) or not isinstance(extent, numbers.Integral) or extent < 1:
        raise DataError(f"extent={extent!r} is not allowed; use an integer ≥ 1")


def generate_stimulus(
    n_frames: int,
    seed: int = 0,
    noise: float = 0.0,
    extent: int = EXTENT,
    params: VideoParams = DEFAULT_PARAMS,
) -> np.ndarray:
    """Column values ``[n_frames, n_columns]`` float32 in [0, 1], deterministic per seed.

    ``n_columns`` is 217 for extent 8; column order is ``hex_columns(extent)``. ``noise``
    is the std of additive Gaussian noise on the values (0: none), clipped to [0, 1] after.
    """
    _check_args(n_frames, seed, noise, extent)
    out = np.empty((int(n_frames), len(_hex_uv(extent))), dtype=np.float32)
    start = 0
    blocks = _iter_blocks(int(n_frames), CHUNK_FRAMES, int(seed), float(noise), int(extent), params)
    for block in blocks:
        out[start : start + len(block)] = block
        start += len(block)
    return out


def generate_flyvis(
    out: str | os.PathLike[str],
    frames: int = 64000,
    seed: int = 0,
    noise: float = 0.0,
    progress: bool = True,
) -> Path:
    """Write a fly-eye dataset of ``frames`` frames × 1736 neurons to ``out``.

    ``fields/stimulus`` is ``[frames, 1736, 1]`` float32 (each column's value tiled over the
    8 types, type-major), ``positions`` ``[1736, 2]``; see DESIGN.md. A tqdm bar on stderr
    shows frames, rate and ETA unless ``progress`` is False.
    """
    _check_args(frames, seed, noise)
    params = DEFAULT_PARAMS
    frames = int(frames)
    writer = DatasetWriter(
        out,
        kind="flyvis",
        n_frames=frames,
        n_points=N_NEURONS,
        frame_dt=FRAME_DT,
        frame_arrays={"fields/stimulus": FrameArray((N_NEURONS, 1))},
        static={"positions": neuron_positions(EXTENT, N_TYPES)},
        components={"stimulus": ["stimulus"]},
        attrs={
            "n_columns": N_COLUMNS,
            "n_types": N_TYPES,
            "generator": {
                "name": GENERATOR_NAME,
                "parameters": {
                    "frames": frames,
                    "seed": int(seed),
                    "noise": float(noise),
                    "extent": EXTENT,
                    **params.as_dict(),
                },
            },
        },
    )
    from tqdm.auto import tqdm

    start = 0
    with (
        writer,
        tqdm(
            total=frames, desc="generate flyvis", unit="frame", disable=not progress, leave=False
        ) as bar,
    ):
        for block in _iter_blocks(frames, CHUNK_FRAMES, int(seed), float(noise), EXTENT, params):
            tiled = np.tile(block, (1, N_TYPES))[:, :, None]
            writer.write(start, {"fields/stimulus": tiled})
            start += len(block)
            bar.update(len(block))
    return Path(out)


# ----- statistics ------------------------------------------------------------------------


def lag1_correlation(values: np.ndarray) -> float:
    """Pearson correlation of ``values[t, n]`` with ``values[t+1, n]`` over all (t, n)."""
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] < 2:
        return float("nan")
    a = x[:-1].ravel()
    b = x[1:].ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else float("nan")


def stimulus_statistics(values: np.ndarray) -> dict[str, float]:
    """Statistics of a stimulus matrix ``[T, N]`` (columns or neurons).

    ``rank_90``/``rank_99``: smallest k whose top-k singular values hold ≥ 90 % / 99 % of
    Σσ² over the top 50 singular values of the uncentred matrix (the older tool's way).
    ``lag1_corr``: ``lag1_correlation``. ``min``, ``max``, ``mean``, ``std`` of all values.
    """
    from inr_tune.metrics import effective_ranks

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"stimulus statistics need a [T, N] matrix, got shape {list(x.shape)}")
    r90, r99 = effective_ranks(x, (0.9, 0.99), top=50)
    return {
        "rank_90": int(r90),
        "rank_99": int(r99),
        "lag1_corr": lag1_correlation(x),
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
        "std": float(x.std()),
    }
