"""``python -m inr_tune.block``: run search blocks — trials in parallel on Ray Tune, each a
parent config plus one mutation chosen on a UCB tree by Claude or the rule proposer.

The run directory holds ``journal.jsonl`` (the source of truth), ``analysis.md``,
``memory.md``, ``ucb_scores.txt``, ``configs/iter_NNN.yaml``, ``trials/iter_NNN/`` and
``tree.png``. ``--resume`` continues a run killed at any point: finished trials are
kept, the trials that were running are run again from an empty directory, and every file
derived from the journal is written again (``reports/run_dir.py``). Ctrl-C and SIGTERM stop
the run cleanly (exit 130 / 143, with the resume command); after a SIGKILL nothing of the
run keeps running (``signals.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from inr_tune.cli import run_cli
from inr_tune.config import parse_set
from inr_tune.errors import ConfigError
from inr_tune.reports.run_dir import (
    Reports,
    read_options,
)

__all__ = ["Reports", "main"]

OPTION_DEFAULTS: dict[str, Any] = {
    "experiment": "mpm",
    "frames": None,
    "field": None,
    "iterations": 8,
    "blocks": 1,
    "parallel": 4,
    "proposer": "auto",
    "ucb_c": 1.414,
    "reward": "nines",
    "seed": 0,
    "address": None,
    "set": [],
    "llm_model": None,
    "early_stop": "none",
    "storage": None,
    "objective": None,
    "min_ratio": None,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inr_tune.block",
        description=(
            "Run search blocks: trials in parallel (Ray Tune), each a parent config plus one "
            "mutation chosen on a UCB tree by Claude (ANTHROPIC_API_KEY set) or a deterministic "
            "rule proposer. Writes a run directory you can read, resume and open in TensorBoard."
        ),
    )
    a = p.add_argument
    a("--experiment", default=None, help="mpm | flyvis | experiment name or path (default mpm)")
    a(
        "--frames",
        type=int,
        default=None,
        help="frames of the first block (default: the schedule's first)",
    )
    a("--field", default=None, help="field of the first block (default: the schedule's first)")
    a("--iterations", type=int, default=None, help="trials per block (default 8)")
    a("--blocks", type=int, default=None, help="blocks to run, following the schedule (default 1)")
    a("--parallel", type=int, default=None, help="concurrent trials (default 4)")
    a(
        "--proposer",
        choices=("auto", "rule", "llm"),
        default=None,
        help="auto: Claude when ANTHROPIC_API_KEY/ANTHROPIC_AUTH_TOKEN is set, else rule",
    )
    a("--llm-model", default=None, help="Anthropic model name (default: search.llm_model)")
    a(
        "--ucb-c",
        type=float,
        default=None,
        help="UCB exploration constant of the first block (default 1.414)",
    )
    a("--reward", choices=("r2", "nines"), default=None, help="node reward (default nines)")
    a(
        "--objective",
        choices=("budget", "pareto", "r2"),
        default=None,
        help="budget (default): best held-out R² among configs at compression ratio ≥ "
        "--min-ratio, others refused before they run; pareto: reward a trial by its share of "
        "the (ratio, held-out R²) front, budget still applies; r2: size ignored "
        "(same as --set search.objective=…)",
    )
    a(
        "--min-ratio",
        type=float,
        default=None,
        help="size budget: least compression ratio (window values / parameters) a config may "
        "have (default: the experiment's; same as --set search.min_ratio=…)",
    )
    a("--seed", type=int, default=None, help="seed of the rule proposer (default 0)")
    a("--out", default=None, help="run directory (default runs/<experiment>-<time>)")
    a("--resume", action="store_true", help="continue the run in --out with its saved options")
    a("--address", default=None, help="join an existing Ray cluster (auto or HOST:PORT)")
    a(
        "--storage",
        default=None,
        help="where trial results go (default: inside --out): a directory every node sees, "
        "or an fsspec URL (s3://bucket/runs needs s3fs, gs:// gcsfs); credentials come "
        "from each node's environment",
    )
    a(
        "--early-stop",
        choices=("none", "asha"),
        default=None,
        help="asha: stop hopeless trials early on their reported R² (Ray's ASHA scheduler)",
    )
    a(
        "--set",
        action="append",
        default=None,
        metavar="SECTION.KEY=VALUE",
        help="override a key of every block's starting config (repeatable)",
    )
    return p


# ----------------------------------------------------------------------------- options
def resolve_options(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    given = {k: v for k, v in vars(args).items() if k not in ("out", "resume") and v is not None}
    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out DIR of the run to continue")
        out = Path(args.out)
        saved = read_options(out)
        if given:
            raise ConfigError(
                f"--resume continues with the run's saved options; drop --{next(iter(given)).replace('_', '-')}"
            )
        return {**OPTION_DEFAULTS, **saved}, out
    opts = {**OPTION_DEFAULTS, **given}
    for key in ("iterations", "blocks", "parallel"):
        if opts[key] < 1:
            raise ConfigError(f"--{key} must be ≥ 1, got {opts[key]}")
    if opts["frames"] is not None and opts["frames"] < 1:
        raise ConfigError(f"--frames must be ≥ 1, got {opts['frames']}")
    if not 0 <= opts["ucb_c"] <= 10:
        raise ConfigError(f"--ucb-c must be in [0, 10], got {opts['ucb_c']}")
    # --objective and --min-ratio are sugar for --set search.objective / search.min_ratio
    sugar = [f"search.{k}={opts[k]}" for k in ("objective", "min_ratio") if opts[k] is not None]
    opts["set"] = [*opts["set"], *sugar]
    for item in opts["set"]:
        parse_set(item)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"{opts['experiment'].replace('/', '_')}-{stamp}"
    )
    if (out / "journal.jsonl").exists():
        raise ConfigError(
            f"{out} already holds a run; use --resume to continue it or another --out"
        )
    return opts, out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts, run_dir = resolve_options(args)
    from inr_tune.driver import execute

    return execute(opts, run_dir, args.resume)


if __name__ == "__main__":
    sys.exit(run_cli(main))
