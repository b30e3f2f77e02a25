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
from pathlib import Path

from inr_tune.cli import run_cli
from inr_tune.errors import ConfigError
from inr_tune.settings import (
    FLAG_KEYS,
    Settings,
    describe,
    new_run_dir,
    resumed_settings,
    settings_from,
)

__all__ = ["build_parser", "main", "resolve"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inr_tune.block",
        description=(
            "Run search blocks: trials in parallel (Ray Tune), each a parent config plus one "
            "mutation chosen on a UCB tree by Claude (ANTHROPIC_API_KEY set) or a deterministic "
            "rule proposer. Writes a run directory you can read, resume and open in TensorBoard. "
            "Settings, later wins: CONFIG, --set, flags."
        ),
        epilog="search and block keys (section.key = default  # meaning):\n"
        + describe(("search", "block")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a(
        "config",
        nargs="?",
        help="YAML of sections to override (search, block, and the data/model/training keys "
        "of every block's starting config; ours or the older tools' format)",
    )
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
        "--searcher",
        choices=("ucb", "random", "tpe", "greedy"),
        default=None,
        help="how configs are chosen (default ucb: the UCB tree with --proposer); random: "
        "seeded configs from the space YAML; tpe: Optuna's TPE sampler (pip install -e "
        '".[tpe]"); greedy: one move from the best node so far. Same trainable, size budget, '
        "reports (same as --set search.searcher=…)",
    )
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
        help="UCB exploration constant of the first block (default 0.5)",
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
    a(
        "--seed",
        type=int,
        default=None,
        help="seed of the rule proposer and the random/tpe/greedy searchers (default 0)",
    )
    a("--out", default=None, help="run directory (default runs/<experiment>-<time>)")
    a(
        "--resume",
        action="store_true",
        help="continue the run in --out with its saved settings; with --blocks N, a finished "
        "run gets more blocks of the schedule (N in all)",
    )
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
        help="override one key (repeatable): search.* and block.* configure the search, "
        "data/model/training keys every block's starting config; every flag above is "
        "sugar for one of these (config keys: python -m inr_tune.block --help)",
    )
    return p


def resolve(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The run's settings and directory from the command line (one line when bad)."""
    flags = {k: getattr(args, k) for k in FLAG_KEYS}
    if args.resume:
        given = [k for k, v in flags.items() if v is not None and k != "blocks"]
        if given or args.set or args.config:
            what = (
                f"--{given[0].replace('_', '-')}" if given else ("--set" if args.set else "CONFIG")
            )
            raise ConfigError(
                f"--resume continues with the run's saved settings; drop {what} "
                "(only --blocks may change, to add blocks)"
            )
        if not args.out:
            raise ConfigError("--resume needs --out DIR of the run to continue")
        return resumed_settings(Path(args.out), args.blocks), Path(args.out)
    settings = settings_from(args.config, args.set or [], flags)
    return settings, new_run_dir(settings, args.out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings, run_dir = resolve(args)
    from inr_tune.driver import execute

    return execute(settings, run_dir, resume=args.resume, freeze_gc=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
