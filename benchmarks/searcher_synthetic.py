"""The searchers on synthetic landscapes: best R² after 8/16/32 trials, in seconds, no training.

    python benchmarks/searcher_synthetic.py [--landscapes 12] [--seeds 3] [--trials 32]
        [--parallel 2] [--searchers ucb,greedy,random,tpe] [--ucb-c C] [--out FILE.md]

For developing the proposers without waiting for trainings. A landscape is a seeded random
function of a config: per numeric param a log-quadratic bowl around a random optimum near
the starting value (its depth drawn per param), per choice param a random effect per value,
a gain with the model's parameter count (configs stay inside the experiment's size budget,
as in a real block) and Gaussian noise; a model key the config's variant does not read
(``used_model_keys``: rank for siren_id, …) adds nothing, as in a real training. The
score s reads as R² = 1 − 10^−s. Each searcher runs the same ``BlockSession`` a block runs (the real proposers, checks, size budget and
journal; no seed reruns), with the flyvis stimulus@100 and the MPM F@100 starting configs
and spaces. These are not the tasks of ``search_efficiency.py`` and nothing is tuned to
them. They are additive, where greedy coordinate ascent is at its best; real landscapes
have interactions. Reported per experiment and searcher: the median and mean nines
(−log10(1 − R²)) of the best R² after each budget over landscapes × seeds, and the paired
win rate against greedy and random (mean sign of the difference on the same landscape and
seed: +1 always better, −1 always worse).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TASKS = (("flyvis", "stimulus", 1736, 1), ("mpm", "F", 3000, 4))  # experiment, field, N, C
N_FRAMES = 100


def _key(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def landscape(space: Any, root: Any, seed: int) -> Callable[[Any, Any], float]:
    """``score(config, budget)`` of landscape ``seed`` around ``root`` (module docstring)."""
    from inr_tune.model_keys import used_model_keys

    rng = random.Random(seed)
    terms: list[tuple[str, str, Any]] = []
    for name in space.search_params:
        p = space.param(name)
        depth = rng.expovariate(1.0) * 0.15
        start = root.get(p.key)
        if p.is_choice:
            effects = {_key(v): rng.gauss(0.0, depth) for v in p.values}
            if rng.random() < 0.5:
                effects[_key(start)] = 0.0
            terms.append(("choice", p.key, effects))
        elif isinstance(start, (int, float)) and start > 0 and name != "total_steps":
            terms.append(("bowl", p.key, (math.log(start) + rng.gauss(0.0, 1.0), depth)))

    def score(cfg: Any, budget: Any) -> float:
        s = 0.45
        used = used_model_keys(cfg.model)
        for kind, key, arg in terms:
            if key.startswith("model.") and key[len("model.") :] not in used:
                continue  # the variant does not read it: the same model
            value = cfg.get(key)
            if kind == "choice":
                s += arg.get(_key(value), 0.0)
            elif not isinstance(value, (int, float)) or value <= 0:
                s -= 0.3
            else:
                centre, depth = arg
                s -= depth * (math.log(value) - centre) ** 2
        allowed = budget.n_values / (budget.min_ratio or 1.0)
        return s + 0.15 * math.log(budget.params(cfg)) / math.log(allowed)

    return score


def run_block(experiment: str, proposer: Any, land: int, args: argparse.Namespace) -> list[float]:
    """Best R² so far after each trial of one block of ``args.trials`` on landscape ``land``."""
    from inr_tune.config import config_from_dict
    from inr_tune.journal import Journal
    from inr_tune.runner.searcher import UCBTreeSearcher
    from inr_tune.search.budget import Budget, fit_root
    from inr_tune.search.experiment import BlockSpec, load_experiment
    from inr_tune.search.session import BlockSession, RunContext
    from inr_tune.search.tree import Tree

    exp_name, field, n_points, n_comp = next(t for t in TASKS if t[0] == experiment)
    exp = load_experiment(exp_name)
    spec = BlockSpec(field, N_FRAMES)
    min_ratio = float(exp.root_config(spec, gpu=False).search.min_ratio or 20.0)
    budget = Budget("budget", min_ratio, N_FRAMES, n_points, n_comp)
    root, _ = fit_root(exp.root_config(spec, gpu=False), exp.space, budget)
    score = landscape(exp.space, root, land)
    noise = np.random.default_rng(land * 7 + 1)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(
            run_dir=Path(tmp),
            journal=Journal(Path(tmp) / "journal.jsonl"),
            tree=Tree(),
            experiment=exp,
            proposer=proposer,
            parallel=args.parallel,
            n_iter=args.trials,
            reward="nines",
            overrides={"search.seed_reruns": 0},
        )
        session = BlockSession(
            ctx, block=1, spec=spec, root_config=root, ucb_c=args.ucb_c, budget=budget
        )
        searcher = UCBTreeSearcher(session, lambda node: {"cfg": node.config})
        running: list[tuple[str, dict[str, Any]]] = []
        n = 0
        while True:
            got = searcher.suggest(f"t{n}")
            if isinstance(got, dict):
                running.append((f"t{n}", got))
                n += 1
                if len(running) < args.parallel:
                    continue
            elif not running:
                break
            for trial_id, trial in running:  # the batch finishes
                s = score(config_from_dict(trial["cfg"]), budget) + noise.normal(0.0, 0.01)
                result = {"status": "ok", "final_r2": 1.0 - 10.0 ** (-s)}
                searcher.on_trial_complete(trial_id, {"metrics_json": json.dumps(result)})
            running = []
        r2s = [node.r2 for node in sorted(session.tree.nodes, key=lambda x: x.id)]
    return list(np.maximum.accumulate([-1.0 if r is None else r for r in r2s]))


def make_proposer(name: str, seed: int) -> Any:
    from inr_tune.search.proposers import GreedyProposer, RandomProposer, RuleProposer

    if name == "tpe":
        from inr_tune.search.proposers.tpe import TPEProposer

        return TPEProposer(seed=seed)
    return {"ucb": RuleProposer, "greedy": GreedyProposer, "random": RandomProposer}[name](seed)


def nines(r2: np.ndarray) -> np.ndarray:
    return -np.log10(1.0 - np.clip(r2, -1.0, 1.0 - 1e-6))


def report(best: dict[tuple[str, str], np.ndarray], args: argparse.Namespace) -> list[str]:
    """Markdown rows: per experiment and searcher, nines at each budget and win rates."""
    budgets = [b for b in (8, 16, 32) if b <= args.trials] or [args.trials]
    head = " | ".join(f"@{b} median (mean)" for b in budgets)
    lines = [
        f"| experiment | searcher | {head} | @{budgets[-1]} vs greedy | vs random |",
        "| --- | --- | " + " | ".join("---" for _ in budgets) + " | --- | --- |",
    ]
    for experiment, *_ in TASKS:
        for name in args.searchers:
            a = best.get((experiment, name))
            if a is None:
                continue
            cells = []
            for b in budgets:
                v = nines(a[:, min(b, a.shape[1]) - 1])
                cells.append(f"{np.median(v):.3f} ({np.mean(v):.3f})")
            wins = []
            for other in ("greedy", "random"):
                o = best.get((experiment, other))
                if o is None or other == name:
                    wins.append("–")
                    continue
                k = min(budgets[-1], a.shape[1], o.shape[1]) - 1
                wins.append(f"{np.mean(np.sign(nines(a[:, k]) - nines(o[:, k]))):+.2f}")
            lines.append(f"| {experiment} | {name} | " + " | ".join(cells + wins) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--landscapes", type=int, default=12)
    p.add_argument("--seeds", type=int, default=3, help="searcher seeds per landscape")
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--searchers", default="ucb,greedy,random,tpe")
    p.add_argument("--ucb-c", type=float, default=None, help="default: search.ucb_c's default")
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    if args.ucb_c is None:
        from inr_tune.config import Config

        args.ucb_c = Config().search.ucb_c
    args.searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    unknown = set(args.searchers) - {"ucb", "greedy", "random", "tpe"}
    if unknown or args.landscapes < 1 or args.seeds < 1 or args.trials < args.parallel:
        print(f"error: bad arguments ({', '.join(sorted(unknown)) or 'counts'})", file=sys.stderr)
        return 2
    if "tpe" in args.searchers:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("optuna is not installed: tpe left out", file=sys.stderr)
            args.searchers.remove("tpe")
    t0 = time.perf_counter()
    best: dict[tuple[str, str], np.ndarray] = {}
    total = len(TASKS) * len(args.searchers) * args.landscapes * args.seeds
    done = 0
    for experiment, *_ in TASKS:
        for name in args.searchers:
            rows = []
            for land in range(args.landscapes):
                for seed in range(args.seeds):
                    rows.append(run_block(experiment, make_proposer(name, seed), land, args))
                    done += 1
                    print(f"\r{done}/{total} blocks", end="", file=sys.stderr, flush=True)
            width = min(len(r) for r in rows)
            best[(experiment, name)] = np.array([r[:width] for r in rows])
    print(file=sys.stderr)
    minutes = (time.perf_counter() - t0) / 60
    lines = [
        "# Searchers on synthetic landscapes (benchmarks/searcher_synthetic.py)",
        "",
        f"- Command: `python benchmarks/searcher_synthetic.py {' '.join(argv or sys.argv[1:])}`",
        f"- {args.landscapes} landscapes × {args.seeds} seeds × {args.trials} trials, "
        f"{args.parallel} at a time, ucb_c {args.ucb_c}; {minutes:.1f} min on "
        f"{platform.machine()}, Python {platform.python_version()}",
        "- Numbers: nines of the best R² so far (−log10(1 − R²)); win rate: mean sign of "
        "the difference on the same landscape and seed",
        "",
        *report(best, args),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        from inr_tune.fileio import write_durable

        write_durable(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
