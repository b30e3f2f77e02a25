"""Seconds per metric of ``inr_tune.metrics`` at a training-window and a full fly-eye size.

    python benchmarks/metrics_speed.py            # 400×9000×4 and 64000×1736×1 (~2 GB RAM)
    python benchmarks/metrics_speed.py --quick    # 400×9000×4 and 4000×1736×1
    python benchmarks/metrics_speed.py --skimage  # also time skimage's SSIM (large: ~7 GB, 30 s)

Inputs are float32: a smooth random field and a prediction with 1 % noise and a small gain
error. Each line is one metric called on its own (so each includes its input validation);
``evaluate`` computes them all with one statistics pass and one SSIM pass.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np

from inr_tune import _chunks, metrics

SIZES = {"window": (400, 9000, 4), "flyvis": (64000, 1736, 1)}
QUICK_FLYVIS = (4000, 1736, 1)


def make_pair(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """gt: a sum of a few separable waves plus noise; pred: 1.01·gt + 1 % noise."""
    rng = np.random.default_rng(seed)
    t_count, n_count, c_count = shape
    gt = np.empty(shape, dtype=np.float32)
    pred = np.empty(shape, dtype=np.float32)
    t = np.linspace(0.0, 1.0, t_count, dtype=np.float32)[:, None]
    x = rng.uniform(0.0, 1.0, n_count).astype(np.float32)[None, :]
    for c in range(c_count):
        field = np.sin(7.0 * t + 5.0 * x + c) + 0.5 * np.cos(31.0 * t * x)
        field += 0.1 * rng.standard_normal(field.shape, dtype=np.float32)
        gt[:, :, c] = field
        pred[:, :, c] = 1.01 * field + 0.01 * rng.standard_normal(field.shape, dtype=np.float32)
    return pred, gt


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process (all threads) and the value."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - start, time.process_time() - cpu, value


def run(shape: tuple[int, int, int], with_ranks: bool, with_skimage: bool) -> None:
    pred, gt = make_pair(shape)
    print(f"\n[T, N, C] = {list(shape)} float32, {gt.nbytes / 2**20:.0f} MiB per array")
    calls: dict[str, Callable[[], object]] = {
        "final_mse": lambda: metrics.final_mse(pred, gt),
        "r2_components": lambda: metrics.r2_components(pred, gt),
        "final_r2": lambda: metrics.final_r2(pred, gt),
        "pearson_r2": lambda: metrics.pearson_r2(pred, gt),
        "slope": lambda: metrics.slope(pred, gt),
        "kinograph_r2": lambda: metrics.kinograph_r2(pred, gt),
        "kinograph_ssim": lambda: metrics.kinograph_ssim(pred, gt),
        "evaluate": lambda: metrics.evaluate(pred, gt),
    }
    if with_ranks:
        calls["data_ranks"] = lambda: metrics.data_ranks(gt)
        calls["evaluate(ranks=True)"] = lambda: metrics.evaluate(pred, gt, ranks=True)
    if with_skimage:
        from skimage.metrics import structural_similarity

        def skimage_ssim() -> float:
            scores = []
            for c in range(shape[2]):
                k_gt, k_pred = gt[:, :, c], pred[:, :, c]
                data_range = float(k_gt.max()) - float(k_gt.min())
                scores.append(structural_similarity(k_gt, k_pred, data_range=data_range))
            return float(np.mean(scores))

        calls["skimage SSIM (float32)"] = skimage_ssim
    for name, fn in calls.items():
        seconds, cpu, value = timed(fn)
        shown = value if not isinstance(value, list) else f"list of {len(value)}"
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v:.6g}" for k, v in value.items() if not isinstance(v, list))
        elif isinstance(value, float):
            shown = f"{value:.6g}"
        print(f"  {name:24s} {seconds:8.3f} s wall {cpu:8.3f} s cpu   {shown}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"use {list(QUICK_FLYVIS)} as the large size"
    )
    parser.add_argument("--no-ranks", action="store_true", help="skip rank_90/rank_99 timings")
    parser.add_argument(
        "--skimage", action="store_true", help="also time skimage's structural_similarity"
    )
    args = parser.parse_args(argv)
    sizes = dict(SIZES)
    if args.quick:
        sizes["flyvis"] = QUICK_FLYVIS
    print(f"threads used by inr_tune.metrics: {_chunks.workers()}")
    for shape in sizes.values():
        run(shape, with_ranks=not args.no_ranks, with_skimage=args.skimage)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak resident memory: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
