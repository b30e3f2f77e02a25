"""Aggregate steps/s of 1, 2 and 4 concurrent siren_txy 256×4 trials sharing one device.

    python benchmarks/gpu_packing.py [--quick] [--device cuda|cpu] [--steps N]

Each trial is a separate process (as Ray runs them) training the same config through the
Lightning module on a 9000-point synthetic field, one frame per step. Small SIRENs leave
a GPU mostly idle, so packing several trials on it multiplies throughput; the last line
is ``speedup 4/1: X`` (aggregate steps/s of 4 concurrent trials over 1). On a CPU it runs
too (``--quick``), but then the trials share the cores and the number says nothing
about GPUs — the output says so.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path


def _worker(device: str, steps: int, threads: int, start: mp.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import trainer_overhead as T

    class Args:
        frames = 400

    values, positions = T._window(Args, n_points=9000)
    T.quiet_lightning()
    module = T.INRModule(T._config(256, 4, steps, 1, device), values, positions, 1.0)
    T.lightning_loop(module, max(16, steps // 20))  # warm-up (allocator, kernels)
    module = T.INRModule(T._config(256, 4, steps, 1, device), values, positions, 1.0)
    start.wait()
    t0 = time.perf_counter()
    T.lightning_loop(module, steps)
    out.put((steps, time.perf_counter() - t0))


def run(concurrent: int, device: str, steps: int, threads: int) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(concurrent)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(device, steps, threads, barrier, queue))
        for _ in range(concurrent)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(seconds for _, seconds in results)
    return sum(n for n, _ in results) / wall


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    p.add_argument("--quick", action="store_true", help="few steps (CPU smoke run)")
    p.add_argument("--steps", type=int, default=None, help="steps per trial")
    args = p.parse_args(argv)
    steps = args.steps or (32 if args.quick else 3000)
    if args.device == "cpu":
        print(
            "note: CPU run — the trials share the CPU cores; this measures CPU contention, not GPU packing"
        )
    rates = {}
    for k in (1, 2, 4):
        threads = 1 if args.device == "cuda" else max(1, (torch.get_num_threads()) // k)
        rates[k] = run(k, args.device, steps, threads)
        print(
            f"{k} concurrent: {rates[k]:8.1f} steps/s aggregate ({rates[k] / k:7.1f} per trial)",
            flush=True,
        )
    print(f"speedup 4/1: {rates[4] / rates[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
