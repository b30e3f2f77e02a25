"""The default MPM scene (nine discs of three materials) and its dataset writer.

``discs_3types`` builds the initial state, ``iter_frames`` runs the simulator of
``inr_tune.data.mpm`` frame by frame, ``generate_mpm`` writes a dataset (DESIGN.md layout).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inr_tune.data.mpm import (
    COMPONENTS,
    MPMParams,
    MPMState,
    _check_state,
    _single_cpu_thread,
    _Stepper,
    simulate,
)
from inr_tune.data.mpm_state import _frame_dict
from inr_tune.data.store import CHUNK_FRAMES, DatasetWriter, FrameArray
from inr_tune.errors import DataError

__all__ = [
    "DISC_CENTRES_X",
    "DISC_CENTRES_Y",
    "DISC_RADIUS",
    "discs_3types",
    "generate_mpm",
    "iter_frames",
]


def _frames(
    state: MPMState, params: MPMParams, n_frames: int, substeps_per_frame: int
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Device tensors ``(x, v, F, C, Jp, S)`` after each frame; raises on non-finite values."""
    for name, value in (("n_frames", n_frames), ("substeps_per_frame", substeps_per_frame)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be a positive integer, got {value!r}")
    _check_state(state, params)
    stepper = _Stepper(state.material, params, state.x.dtype)
    x, v, F, C, Jp = state.x, state.v, state.F, state.C, state.Jp
    for frame in range(n_frames):
        with _single_cpu_thread(x.device):
            for _ in range(substeps_per_frame):
                x, v, F, C, Jp, S = stepper.step(x, v, F, C, Jp)
        finite = torch.isfinite(
            torch.stack([x.sum(), v.sum(), F.sum(), C.sum(), Jp.sum(), S.sum()])
        ).all()
        if not bool(finite):
            raise DataError(
                f"the MPM simulation blew up (NaN or inf) at frame {frame} "
                f"(substep {(frame + 1) * substeps_per_frame}); reduce dt or check the scene"
            )
        yield x, v, F, C, Jp, S


def iter_frames(
    state: MPMState, params: MPMParams, n_frames: int, substeps_per_frame: int
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``n_frames`` frames of float32 arrays, each after ``substeps_per_frame`` substeps.

    Frame 0 is the state *after* the first frame's substeps (the reference data recorded
    after each substep), not the initial state. Keys and shapes: ``positions`` [N, 2],
    ``velocity`` [N, 2], ``F``, ``C``, ``S`` [N, 4] (row-major 2×2), ``Jp`` [N, 1].
    Raises ``DataError`` naming the frame if a value becomes NaN or inf.
    """
    for x, v, F, C, Jp, S in _frames(state, params, n_frames, substeps_per_frame):
        yield _frame_dict(x, v, F, C, S, Jp)


#: Scene geometry of ``discs_3types``.
DISC_RADIUS = 0.075
DISC_CENTRES_X = (0.2, 0.45, 0.7)
DISC_CENTRES_Y = (0.375, 0.625, 0.875)


def discs_3types(
    particles_per_disc: int = 200,
    seed: int = 42,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[MPMState, np.ndarray]:
    """Nine discs (3 liquid, 3 jelly, 3 snow), each with one random velocity.

    Centres ``x ∈ {0.2, 0.45, 0.7} × y ∈ {0.375, 0.625, 0.875}`` (x-major), radius 0.075;
    materials by a seeded permutation; particles uniform in each disc; velocities from
    U[−2, 2]². Drawn with NumPy in float64, so the scene is identical on every device.
    Returns the state (N = 9·particles_per_disc particles, disc-major order) and disc ids
    [N] int16.
    """
    if isinstance(particles_per_disc, bool) or not isinstance(particles_per_disc, int):
        raise DataError(
            f"particles_per_disc must be a positive integer, got {particles_per_disc!r}"
        )
    if particles_per_disc < 1:
        raise DataError(f"particles_per_disc must be a positive integer, got {particles_per_disc}")
    rng = np.random.default_rng(seed)
    materials = rng.permutation(np.repeat(np.arange(3), 3))
    xs, vs, mats, discs = [], [], [], []
    centres = [(cx, cy) for cx in DISC_CENTRES_X for cy in DISC_CENTRES_Y]
    for d, (cx, cy) in enumerate(centres):
        r = DISC_RADIUS * np.sqrt(rng.random(particles_per_disc))
        theta = 2 * np.pi * rng.random(particles_per_disc)
        xs.append(np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1))
        vs.append(np.broadcast_to(rng.uniform(-2.0, 2.0, size=2), (particles_per_disc, 2)))
        mats.append(np.full(particles_per_disc, materials[d]))
        discs.append(np.full(particles_per_disc, d, dtype=np.int16))
    x = torch.as_tensor(np.concatenate(xs), dtype=dtype, device=device)
    v = torch.as_tensor(np.concatenate(vs), dtype=dtype, device=device)
    mat = torch.as_tensor(np.concatenate(mats), dtype=torch.int64, device=device)
    return MPMState.at_rest(x, mat, v=v), np.concatenate(discs)


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DataError(f"device {device!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {device!r} was asked for but CUDA is not available; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise DataError(f"device {device!r} is not supported; use cpu or cuda")
    return dev


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def generate_mpm(
    out: str | os.PathLike[str],
    particles_per_disc: int = 200,
    frames: int = 1000,
    substeps_per_frame: int = 5,
    seed: int = 42,
    device: str | torch.device = "cpu",
    progress: bool = True,
    params: MPMParams | None = None,
    skip_substeps: int = 0,
) -> Path:
    """Simulate ``discs_3types`` and write an MPM dataset (DESIGN.md layout) at ``out``.

    Frame k holds the state after ``(k + 1)·substeps_per_frame`` substeps;
    ``frame_dt = substeps_per_frame·dt``. Fields F, C, S [T, N, 4] and Jp [T, N, 1],
    positions and velocity [T, N, 2] (float32), static ``material`` int8 and ``disc``
    int16 [N]. Frames are buffered in blocks of up to 256 and written as they are done;
    a blow-up (``DataError`` naming the frame) or any other exception leaves nothing at
    ``out``. Progress (frames, rate, ETA) goes to stderr unless ``progress=False``.
    ``skip_substeps`` substeps are simulated before frame 0 and not stored (the reference
    data's centred windows lie thousands of substeps into the run).
    """
    particles_per_disc = _positive_int("particles_per_disc", particles_per_disc)
    frames = _positive_int("frames", frames)
    substeps_per_frame = _positive_int("substeps_per_frame", substeps_per_frame)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be an integer ≥ 0, got {seed!r}")
    params = MPMParams() if params is None else params
    if not isinstance(params, MPMParams):
        raise DataError(f"params must be an MPMParams, got {type(params).__name__}")
    dev = _resolve_device(device)
    out = Path(out)
    if isinstance(skip_substeps, bool) or not isinstance(skip_substeps, int) or skip_substeps < 0:
        raise DataError(f"skip_substeps must be an integer ≥ 0, got {skip_substeps!r}")

    state, disc = discs_3types(particles_per_disc, int(seed), device=dev, dtype=torch.float32)
    n = state.n
    material = state.material.cpu().numpy().astype(np.int8)
    widths = {"positions": 2, "velocity": 2, "fields/F": 4, "fields/C": 4, "fields/S": 4}
    widths["fields/Jp"] = 1
    writer = DatasetWriter(
        out,
        kind="mpm",
        n_frames=frames,
        n_points=n,
        frame_dt=substeps_per_frame * params.dt,
        frame_arrays={name: FrameArray((n, k)) for name, k in widths.items()},
        static={"material": material, "disc": disc.astype(np.int16)},
        components=COMPONENTS,
        attrs={
            "generator": {
                "name": "mpm.discs_3types",
                "parameters": {
                    "particles_per_disc": particles_per_disc,
                    "frames": frames,
                    "substeps_per_frame": substeps_per_frame,
                    "skip_substeps": skip_substeps,
                    "t_first_frame": (skip_substeps + substeps_per_frame) * params.dt,
                    "seed": int(seed),
                    "device": dev.type,
                    "dtype": "float32",
                    "n_particles": n,
                    "recorded": "after the last substep of each frame (initial state not stored)",
                    "physics": params.to_dict(),
                },
            }
        },
    )
    from tqdm import tqdm

    block = min(CHUNK_FRAMES, frames)
    buffers = {name: np.empty((block, n, k), dtype=np.float32) for name, k in widths.items()}
    order = ("positions", "velocity", "fields/F", "fields/C", "fields/S", "fields/Jp")
    with (
        writer,
        tqdm(
            total=frames, desc="mpm", unit="frame", disable=not progress, leave=False, smoothing=0.1
        ) as bar,
    ):
        if skip_substeps:
            bar.set_description(f"mpm (skipping {skip_substeps} substeps)")
            state = simulate(state, params, skip_substeps)
            bar.set_description("mpm")
        start, fill = 0, 0
        for x, v, F, C, Jp, S in _frames(state, params, frames, substeps_per_frame):
            for name, t in zip(order, (x, v, F, C, S, Jp), strict=True):
                buffers[name][fill] = t.reshape(n, -1).to("cpu", torch.float32).numpy()
            fill += 1
            bar.update(1)
            if fill == block or start + fill == frames:
                writer.write(start, {name: buf[:fill] for name, buf in buffers.items()})
                start, fill = start + fill, 0
    return out
