"""Time MPM dataset generation: the default dataset end to end, and a 9000-particle run.

    python benchmarks/mpm_generation.py            # the default dataset (9000 particles,
                                                   # 5500 substeps) + a 9000-particle run
    python benchmarks/mpm_generation.py --quick    # 200 frames and 100 substeps instead

Prints substeps/s, frames/s and seconds for each case. The dataset goes to a temporary
directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from inr_tune.data.defaults import DEFAULTS
from inr_tune.data.mpm import MPMParams, simulate
from inr_tune.data.mpm_scene import discs_3types, generate_mpm
from inr_tune.data.store import open_dataset


def _dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def bench_generate(frames: int, substeps: int, particles: int, device: str) -> dict[str, float]:
    """Generate a dataset (simulation + zarr write) into a temp dir; return timings."""
    with tempfile.TemporaryDirectory(prefix="mpm_bench_") as tmp:
        out = Path(tmp) / "mpm.zarr"
        t0 = time.perf_counter()
        generate_mpm(
            out,
            particles_per_disc=particles,
            frames=frames,
            substeps_per_frame=substeps,
            device=device,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        ds = open_dataset(out)
        assert ds.n_frames == frames
        size = _dir_mib(out)
    n_sub = frames * substeps
    return {
        "seconds": seconds,
        "substeps_per_s": n_sub / seconds,
        "frames_per_s": frames / seconds,
        "mib": size,
    }


def bench_simulate(substeps: int, particles: int, device: str) -> dict[str, float]:
    """Simulation only (no recording) of the discs scene; return timings."""
    params = MPMParams()
    state, _ = discs_3types(particles, device=device)
    simulate(state, params, 5)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = simulate(state, params, substeps)
    float(out.x.sum())  # wait for the device
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "substeps_per_s": substeps / seconds}


def main(argv: list[str] | None = None) -> int:
    d = DEFAULTS["mpm"]
    p = argparse.ArgumentParser(
        description="Time MPM dataset generation (default dataset) and a 9000-particle run."
    )
    p.add_argument("--quick", action="store_true", help="200 frames and 100 substeps (smoke run)")
    p.add_argument("--frames", type=int, default=None, help=f"frames (default {d['frames']})")
    p.add_argument(
        "--substeps-per-frame",
        type=int,
        default=d["substeps_per_frame"],
        help="substeps per frame (default %(default)s)",
    )
    p.add_argument(
        "--particles-per-disc",
        type=int,
        default=d["particles_per_disc"],
        help="particles per disc of the dataset run (default %(default)s)",
    )
    p.add_argument(
        "--large-substeps",
        type=int,
        default=None,
        help="substeps of the 1000-particles/disc run (default 300, --quick 100)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default cpu")
    args = p.parse_args(argv)
    frames = args.frames or (200 if args.quick else d["frames"])
    large = args.large_substeps or (100 if args.quick else 300)

    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    n = 9 * args.particles_per_disc
    r = bench_generate(frames, args.substeps_per_frame, args.particles_per_disc, args.device)
    print(
        f"generate: {n} particles, {frames} frames × {args.substeps_per_frame} substeps: "
        f"{r['seconds']:.1f} s total, {r['substeps_per_s']:.0f} substeps/s, "
        f"{r['frames_per_s']:.1f} frames/s, {r['mib']:.1f} MiB on disk"
    )
    r = bench_simulate(large, 1000, args.device)
    print(
        f"simulate: 9000 particles, {large} substeps: {r['seconds']:.1f} s, "
        f"{r['substeps_per_s']:.0f} substeps/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
