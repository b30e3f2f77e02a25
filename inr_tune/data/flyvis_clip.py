"""How one clip of the fly-eye stimulus is made (the module docstring of ``flyvis.py``,
steps 1–4): the clip lengths, the 1/f random field, the drifting and rotating lattice
and the box blur read by bilinear interpolation. ``VideoParams`` holds the constants.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["DEFAULT_PARAMS", "VideoParams", "clip_lengths"]


@dataclass(frozen=True)
class VideoParams:
    """Constants of the natural-video model (tuned to the study's statistics)."""

    image_size: int = 512
    """Side of the periodic pixel image (lattice + blur 189 px, longest drift 280 px)."""
    pixels_per_column: float = 11.0
    """Column spacing in pixels; neighbouring 13-px patches overlap by 2 px (see flyvis.py)."""
    blur: int = 13
    """Box-blur side in pixels (odd): the photon-collection patch of one column."""
    spectrum_exponent: float = 1.0
    """Amplitude spectrum ∝ 1/f^exponent (1: power ∝ 1/f², natural images)."""
    clip_min: int = 50
    """Shortest clip, frames."""
    clip_max: int = 80
    """Longest clip, frames."""
    log_mean: float = -2.2
    """Mean over clips of the clip brightness μ (mean log-luminance the lattice sees)."""
    log_mean_std: float = 0.2
    """Spread over clips of μ (normal)."""
    contrast_min: float = 2.5
    """Smallest clip contrast σ (std of log-luminance; uniform in [min, max])."""
    contrast_max: float = 3.5
    """Largest clip contrast σ."""
    speed_min: float = 1.2
    """Slowest drift, pixels per frame (uniform in [speed_min, speed_max], random heading)."""
    speed_max: float = 3.5
    """Fastest drift, pixels per frame (3.5 px = 0.32 column spacings)."""
    rotation_max: float = 0.03
    """Fastest rotation, radians per frame (uniform in ±rotation_max)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_PARAMS = VideoParams()


def _clip_length_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x11E0])


def _iter_clip_lengths(seed: int, params: VideoParams) -> Iterator[int]:
    rng = _clip_length_rng(seed)
    while True:
        yield int(rng.integers(params.clip_min, params.clip_max + 1))


def clip_lengths(n_frames: int, seed: int = 0, params: VideoParams = DEFAULT_PARAMS) -> np.ndarray:
    """Lengths ``[n_clips]`` of the clips that make up the first ``n_frames`` frames.

    All are in ``[clip_min, clip_max]`` except perhaps the last, cut short by ``n_frames``.
    A hard cut lies between frame ``s − 1`` and ``s`` for ``s`` in ``cumsum(lengths)[:-1]``.
    """
    out: list[int] = []
    total = 0
    for length in _iter_clip_lengths(seed, params):
        if total >= n_frames:
            break
        out.append(min(length, n_frames - total))
        total += length
    return np.asarray(out, dtype=np.int64)


@lru_cache(maxsize=4)
def _amplitude_filter(size: int, exponent: float) -> np.ndarray:
    """1/f^exponent amplitude on the ``rfft2`` grid ``[size, size//2+1]`` float32, DC 0."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amp = f**-exponent
    amp[0, 0] = 0.0
    return amp.astype(np.float32)


def _random_field(rng: np.random.Generator, params: VideoParams) -> np.ndarray:
    """Periodic Gaussian field ``[S, S]`` float32 with 1/f amplitude spectrum, zero mean.

    White complex noise on the half-spectrum, shaped by 1/f, then one inverse FFT (its
    scale is arbitrary: ``_render_clip`` standardises what the lattice sees).
    """
    s = params.image_size
    amp = _amplitude_filter(s, params.spectrum_exponent)
    re = rng.standard_normal(amp.shape, dtype=np.float32)
    im = rng.standard_normal(amp.shape, dtype=np.float32)
    return np.fft.irfft2((re + 1j * im) * amp, s=(s, s)).astype(np.float32, copy=False)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``img[y, x]`` at float pixel coordinates (any shape, inside the image)."""
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    i = x0.astype(np.intp)
    j = y0.astype(np.intp)
    # Coordinates on the last row/column have weight 0 on the next one: clamp the index.
    i1 = np.minimum(i + 1, img.shape[1] - 1)
    j1 = np.minimum(j + 1, img.shape[0] - 1)
    top = img[j, i] * (1 - fx) + img[j, i1] * fx
    bottom = img[j1, i] * (1 - fx) + img[j1, i1] * fx
    return top * (1 - fy) + bottom * fy


def _render_clip(
    length: int, rng: np.random.Generator, columns: np.ndarray, params: VideoParams
) -> np.ndarray:
    """One clip's column values ``[length, n_columns]`` float64 in [0, 1].

    Only the window of the periodic image that the moving lattice visits (plus the blur
    margin) is made into luminance and blurred: a few times less work than the whole image.
    """
    g = _random_field(rng, params)
    mu = params.log_mean + params.log_mean_std * rng.standard_normal()
    sigma = rng.uniform(params.contrast_min, params.contrast_max)
    speed = rng.uniform(params.speed_min, params.speed_max)
    heading = rng.uniform(0.0, 2 * math.pi)
    omega = rng.uniform(-params.rotation_max, params.rotation_max)
    theta0 = rng.uniform(0.0, 2 * math.pi)
    start = rng.uniform(0.0, params.image_size, size=2)

    # Column centres in image pixels at each frame: rotate about the lattice centre, drift.
    t = np.arange(length, dtype=np.float64)[:, None]
    theta = theta0 + omega * t
    cos, sin = np.cos(theta), np.sin(theta)
    px = columns[None, :, 0] * params.pixels_per_column
    py = columns[None, :, 1] * params.pixels_per_column
    x = start[0] + speed * math.cos(heading) * t + cos * px - sin * py
    y = start[1] + speed * math.sin(heading) * t + sin * px + cos * py

    # Crop (wrapping) the pixels that bilinear taps of the blurred image need: the box of
    # side k around every tap. Blurred pixel b of the crop is centred on pixel floor(min)+b.
    k, h = params.blur, params.blur // 2
    x_lo, y_lo = math.floor(x.min()), math.floor(y.min())
    x_hi, y_hi = math.floor(x.max()), math.floor(y.max())
    rows = np.arange(y_lo - h, y_hi + 2 + h) % params.image_size
    cols = np.arange(x_lo - h, x_hi + 2 + h) % params.image_size
    crop = g[np.ix_(rows, cols)].astype(np.float64)
    xb, yb = x - x_lo, y - y_lo  # tap coordinates in the blurred crop

    # Standardise the field over what the lattice sees, so μ and σ are the brightness and
    # contrast the eye gets (a 1/f field's local mean and spread wander a lot).
    seen = _bilinear(crop, xb + h, yb + h)
    z = mu + sigma * (crop - seen.mean()) / seen.std()
    image = 1.0 / (1.0 + np.exp(-z))  # L / (1 + L) with log-normal L = exp(z)

    # k×k box mean by an integral image: blurred[b] = mean of image[b : b+k] (both axes).
    integral = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    np.cumsum(image, axis=0, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    blurred = (integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]) / (
        k * k
    )
    return _bilinear(blurred, xb, yb)
