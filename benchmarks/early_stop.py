"""Compute saved by ``--early-stop asha`` on a CPU-sized block, and the best R² of each.

    python benchmarks/early_stop.py [--iterations 8] [--steps 3000] [--quick]

Runs the same block (rule proposer, same seed) twice on the default MPM data, without and
with Ray's ASHA scheduler, and prints the optimizer steps and training seconds spent by
all trials, the block's wall time and its best R².
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inr_tune.journal import read_events


def run_block(out: Path, iterations: int, steps: int, early: str) -> dict[str, float]:
    sets = [
        f"training.total_steps={steps}",
        f"training.eval_every={max(50, steps // 10)}",
        "training.max_minutes=null",
    ]
    cmd = [
        sys.executable,
        "-m",
        "inr_tune.block",
        "--frames",
        "400",
        "--iterations",
        str(iterations),
        "--parallel",
        "4",
        "--early-stop",
        early,
        "--out",
        str(out),
        *[a for s in sets for a in ("--set", s)],
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    events = read_events(out / "journal.jsonl")
    done = [e for e in events if e["event"] == "node_completed"]
    steps_done = sum(e["metrics"].get("steps_done") or 0 for e in done)
    train_s = sum(e["metrics"].get("training_time") or 0 for e in done)
    r2 = [
        e["metrics"].get("final_r2")
        for e in done
        if e["status"] == "ok" and e["metrics"].get("final_r2") is not None
    ]
    stopped = sum(e["status"] == "early_stopped" for e in done)
    return {
        "wall_s": wall,
        "steps": steps_done,
        "train_s": train_s,
        "best_r2": max(r2, default=float("nan")),
        "stopped": stopped,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--quick", action="store_true", help="4 trials of 600 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.steps = 4, 600
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            mode: run_block(Path(tmp) / mode, args.iterations, args.steps, mode)
            for mode in ("none", "asha")
        }
    for mode, r in rows.items():
        print(
            f"early-stop {mode:>4}: {r['steps']:8.0f} steps, {r['train_s']:7.1f} s training, "
            f"wall {r['wall_s']:6.1f} s, {r['stopped']:.0f} stopped, best R² {r['best_r2']:.6f}"
        )
    saved = 1 - rows["asha"]["steps"] / max(rows["none"]["steps"], 1)
    print(f"compute saved by asha: {100 * saved:.1f} % of optimizer steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
