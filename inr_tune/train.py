"""``python -m inr_tune.train CONFIG.yaml [--set k=v ...] [--out DIR]``: one training."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from inr_tune.cli import EXIT_INTERNAL, EXIT_OK, run_cli
from inr_tune.config_files import load_config
from inr_tune.errors import ConfigError
from inr_tune.settings import describe, search_keys_set

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inr_tune.train",
        description=(
            "Train one INR config on one field window and write metrics.json, field.png, "
            "checkpoint.ckpt and TensorBoard events to --out."
        ),
        epilog="config keys (section.key = default  # meaning):\n" + describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config",
        nargs="?",
        help="YAML config (ours or the older tools' format); omitted = defaults",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one key, e.g. training.lr=1e-4 (repeatable)",
    )
    p.add_argument("--out", default=None, help="output directory (default runs/train/<timestamp>)")
    p.add_argument("--data", default=None, help="dataset path (overrides data.path)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    notes: list[str] = []
    sets = list(args.set) + ([f"data.path={args.data}"] if args.data else [])
    cfg = load_config(args.config, sets, notes=notes)
    search_keys = search_keys_set(args.config, sets)
    if search_keys:
        block = " ".join(["python -m inr_tune.block", *([args.config] if args.config else [])])
        raise ConfigError(
            f"{search_keys[0]} configures a search, not a training: run {block} "
            f"--set {search_keys[0]}=… instead, or remove it"
        )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    out = Path(args.out) if args.out else Path("runs") / "train" / time.strftime("%Y%m%d-%H%M%S")

    from inr_tune.training.fit import run_trial

    r = run_trial(cfg, out, progress=not args.quiet)
    where = f"wrote {out}/ (metrics.json, field.png, checkpoint.ckpt, tb/)"
    if r.status == "failed":
        print(f"failed after {r.steps_done} steps: {r.error}; {where}", file=sys.stderr)
        return EXIT_INTERNAL
    if r.status == "diverged":
        print(f"diverged: {r.error}; {where}")
        return EXIT_OK
    m = r.metrics
    cut = " (cut by training.max_minutes)" if r.budget_cut else ""
    print(
        f"{cfg.data.field} {cfg.model.inr_type} {cfg.model.hidden_dim}×{cfg.model.n_layers}: "
        f"R²={m['final_r2']:.6f} kinograph R²={m['kinograph_R2']:.5f} SSIM={m['kinograph_SSIM']:.4f} "
        f"MSE={m['final_mse']:.4g} in {r.training_time:.1f} s, {r.steps_done} steps{cut}; {where}"
    )
    print(f"compare runs: tensorboard --logdir {out.parent}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
