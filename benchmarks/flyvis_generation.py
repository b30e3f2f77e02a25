"""Time the fly-eye stimulus generator and print the statistics of its first 1000 frames.

    python benchmarks/flyvis_generation.py                # 64000 frames (the study's size)
    python benchmarks/flyvis_generation.py --quick        # 2000 frames, a smoke run

Writes the dataset into a temporary directory (removed afterwards), prints the seconds,
frames per second and ``stimulus_statistics`` of the first 1000 frames (ranks over the
top-50 singular values of the uncentred [T, 1736] matrix; target rank_90 ≈ 12,
rank_99 ≈ 40–45, lag-1 correlation ≈ 0.96).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from inr_tune.data.flyvis import generate_flyvis, stimulus_statistics
from inr_tune.data.store import open_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time generate_flyvis into a temp dir; print s, frames/s and statistics."
    )
    parser.add_argument("--frames", type=int, default=64000, help="frames (default 64000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--noise", type=float, default=0.0, help="noise std (default 0)")
    parser.add_argument("--quick", action="store_true", help="2000 frames: a smoke run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    frames = 2000 if args.quick else args.frames

    with tempfile.TemporaryDirectory(prefix="flyvis_bench_") as tmp:
        out = Path(tmp) / "flyvis.zarr"
        t0 = time.perf_counter()
        generate_flyvis(
            out, frames=frames, seed=args.seed, noise=args.noise, progress=not args.no_progress
        )
        seconds = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        ds = open_dataset(out)
        first = ds.read("fields/stimulus", 0, min(1000, frames))[:, :, 0]
    stats = stimulus_statistics(first)

    print(f"frames          {frames}")
    print(f"seconds         {seconds:.2f}")
    print(f"frames/s        {frames / seconds:.0f}")
    print(f"store size      {size / 2**20:.1f} MiB")
    print(f"cpu cores       {os.cpu_count()}")
    print(f"statistics of the first {len(first)} frames × {first.shape[1]} neurons:")
    for key, value in stats.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<12}  {shown}")
    if not np.all((first >= 0) & (first <= 1)):
        print("  WARNING: values outside [0, 1]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
