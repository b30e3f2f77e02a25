"""Search efficiency: the UCB tree against seeded random search, TPE and greedy at equal budget.

    python benchmarks/search_efficiency.py                     # 3 tasks × 4 searchers × 5 seeds × 32 trials
    python benchmarks/search_efficiency.py --quick             # smoke run: stimulus@100, 2 seeds, 8 trials, tiny trainings
    python benchmarks/search_efficiency.py --tasks F@100 --seeds 3
    python benchmarks/search_efficiency.py --proposer llm      # adds the UCB tree with Claude (ANTHROPIC_API_KEY)
    python benchmarks/search_efficiency.py --runs DIR --reuse  # re-read finished runs, run only the missing ones
    python benchmarks/search_efficiency.py --runs DIR --no-run # the table of the finished runs only

Issue 14 §2. For each task (F and S of the default MPM dataset at 100 frames, the fly-eye
stimulus at 100 frames), each searcher (``search.searcher`` = ucb | random | tpe | greedy)
and each seed (``search.seed``: the rule proposer's, random search's and TPE's seed), ONE
block of ``--trials`` trials runs in this process through ``inr_tune.run_search`` — the block
a user runs — with::

    run_search(experiment=…, field=…, frames=100, iterations=32, parallel=2, blocks=1,
               proposer="rule", seed=SEED, quiet=True, out=<runs>/<task>/<searcher>/seed<SEED>,
               set=["search.searcher=…", "search.seed_reruns=0", "training.total_steps=…",
                    "training.eval_every=…", "training.max_minutes=…", "search.space=…"])

``search.seed_reruns=0``: every trial is the searcher's. The size budget is the
experiment's (MPM ≥ 50×, fly-eye ≥ 20×; ``search.min_ratio`` is not touched), so every
trial that trains is inside it. The rule proposer is used as shipped (not tuned to these
tasks); the LLM row (``--proposer llm``) runs only with ``ANTHROPIC_API_KEY`` set, otherwise
it is skipped with a line saying so. Every other row uses ``search.proposer=rule``, so
nothing leaves this machine (Ray's usage statistics are switched off too).

Short trainings: every trial trains ``--steps`` optimizer steps (``training.total_steps``)
with a wall-clock cap of ``--max-minutes``. By default the search space is the experiment's
space without its ``total_steps`` parameter (written to ``<runs>/spaces/``), so every
trial gets the same short schedule and the searchers compete on configs, not on compute;
``--search-steps`` keeps the experiment's space as it is (then the cap bounds long trials).

Objective of a trial: held-out R² (``holdout_r2``) of a trial with status ok or
early_stopped; failed or diverged trials use budget but reach nothing. From each run's
DataFrame, in node order: the best objective after the first 8, 16 and 32 trials, and the
trials needed to reach the task's target. The target of a task is the median over all its
runs (every searcher and seed) of the best after the largest budget. Reported per task
and searcher: median and IQR (25th–75th percentile) over seeds, and the median trials to
target (a run that never reaches it counts as beyond the budget; "reached k/n").

Writes, in ``--results`` (default benchmarks/results): ``search_efficiency.md`` (machine,
date, command, grid, wall time, per-trial cost, the table), ``search_efficiency.png``
(best-so-far vs trials, median and IQR band per searcher, one panel per task) and
``search_efficiency.csv`` (one row per run with its per-trial objectives, so everything
can be recomputed); ``--quick`` writes ``search_efficiency_quick.*``. The CSV is rewritten
after every run, so an interrupted benchmark keeps what it measured. Run directories stay
in ``--runs`` (default: a new temporary directory, printed at the end); never commit them.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "SEARCHERS",
    "TASKS",
    "Task",
    "best_at",
    "best_so_far",
    "objective_trace",
    "read_csv_runs",
    "summarise",
    "trials_to_target",
]

sys.path.insert(0, str(Path(__file__).resolve().parent))  # search_efficiency_report
from pareto_rows import machine  # the same machine line as benchmarks/pareto.py's
from search_efficiency_report import (  # the pure functions, re-exported
    SEARCHERS,
    _fmt,
    _quantiles,
    best_at,
    best_so_far,
    code_state,
    csv_rows,
    figure,
    fmt_r2,
    markdown,
    objective_trace,
    read_csv_runs,
    rerender,
    summarise,
    trials_to_target,
)
from search_efficiency_runs import (  # the tasks and one run, re-exported
    TASKS,
    Task,
    benchmark_space,
    run_one,
    searcher_problem,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


# ---------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].rstrip("."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1]
        + "\n\nWrites search_efficiency.md/.png/.csv in --results (details: the module docstring).",
    )
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    p.add_argument(
        "--searchers", default=",".join(SEARCHERS), help="comma list of ucb, random, tpe, greedy"
    )
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per searcher (default 5)")
    p.add_argument("--trials", type=int, default=32, help="trials per block (default 32)")
    p.add_argument("--budgets", default="8,16,32", help="trial counts to report (default 8,16,32)")
    p.add_argument("--parallel", type=int, default=2, help="concurrent trials (default 2)")
    p.add_argument(
        "--steps", type=int, default=300, help="training.total_steps per trial (default 300)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.25,
        help="training.max_minutes per trial (default 0.25)",
    )
    p.add_argument(
        "--search-steps", action="store_true", help="keep total_steps in the search space"
    )
    p.add_argument(
        "--proposer",
        choices=("rule", "llm"),
        default="rule",
        help="llm: also the UCB tree with Claude (needs ANTHROPIC_API_KEY)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: stimulus@100, 2 seeds, 8 trials of 100 steps, writes *_quick.*",
    )
    p.add_argument(
        "--runs", type=Path, default=None, help="run directories (default: a new temp dir)"
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="re-read finished runs in --runs instead of running them",
    )
    p.add_argument(
        "--no-run",
        action="store_true",
        help="run nothing: the table of the finished runs in --runs (the others: 'not run')",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where the .md/.png/.csv go")
    p.add_argument(
        "--rerender",
        action="store_true",
        help="run nothing: rebuild the .md and .png from the .csv in --results (header kept)",
    )
    p.add_argument("--note", default=None, help="a Note line for the .md header")
    a = p.parse_args(argv)
    if a.quick:
        a.tasks = "stimulus@100" if a.tasks == ",".join(TASKS) else a.tasks
        a.seeds, a.trials, a.budgets, a.steps, a.max_minutes = 2, 8, "4,8", 100, 0.1
    try:
        a.task_list = [TASKS[t] for t in a.tasks.split(",") if t]
        a.budget_list = sorted({int(b) for b in a.budgets.split(",") if b})
    except (KeyError, ValueError) as err:
        p.error(f"bad --tasks or --budgets: {err}")
    a.searcher_list = [s for s in a.searchers.split(",") if s]
    bad = [s for s in a.searcher_list if s not in SEARCHERS]
    if bad:
        p.error(f"unknown searcher {bad[0]!r}; allowed: {', '.join(SEARCHERS)}")
    if max(a.budget_list) > a.trials:
        a.budget_list = [b for b in a.budget_list if b <= a.trials] or [a.trials]
    return a


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray talks to nothing outside
    a = parse_args(argv)
    if a.rerender:
        return rerender(a)
    cmd = "python benchmarks/search_efficiency.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    if a.no_run and (a.runs is None or not a.runs.is_dir()):
        print("error: --no-run needs --runs DIR with finished runs", file=sys.stderr)
        return 2
    runs_dir = a.runs or Path(tempfile.mkdtemp(prefix="search_efficiency_"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    stem = "search_efficiency_quick" if a.quick else "search_efficiency"
    a.results.mkdir(parents=True, exist_ok=True)
    md_path, png_path, csv_path = (a.results / f"{stem}.{x}" for x in ("md", "png", "csv"))

    rows: list[tuple[str, str]] = [(s, "rule") for s in a.searcher_list]
    if a.proposer == "llm":
        if os.environ.get("ANTHROPIC_API_KEY"):
            rows.append(("ucb", "llm"))
        else:
            print("--proposer llm: ANTHROPIC_API_KEY is not set; skipping the UCB + Claude row")
    key_problem = searcher_problem("ucb")
    if key_problem:
        print(f"search.searcher is not a setting here ({key_problem}); ucb runs without it")
    skip: dict[str, str] = {}
    for s in {s for s, _ in rows if s != "ucb"}:
        problem = searcher_problem(s)
        if problem:
            skip[s] = f"searcher not available: skipped ({problem})"
            print(f"{s}: {skip[s]}")

    sets = [
        f"training.total_steps={a.steps}",
        f"training.eval_every={max(50, a.steps // 2)}",
        f"training.max_minutes={a.max_minutes}",
    ]
    spaces = {}
    if not a.search_steps:
        for t in a.task_list:
            if t.experiment not in spaces:
                spaces[t.experiment] = benchmark_space(t.experiment, runs_dir)

    # seeds outside searchers: a benchmark stopped early has the same seeds for every searcher
    plan = [(t, s, p, seed) for t in a.task_list for seed in range(a.seeds) for s, p in rows]
    results: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    def write() -> None:
        wall = time.perf_counter() - t_start
        done = [r for r in results if r.get("trace") is not None]
        trial_cost = _quantiles([r.get("trial_wall_s", math.nan) for r in done])
        train_cost = _quantiles([r.get("training_time_s", math.nan) for r in done])
        grid = (
            f"{len(a.task_list)} task(s) ({', '.join(t.name for t in a.task_list)}) × "
            f"{len(rows)} searcher row(s) ({', '.join(s if p == 'rule' else s + '+' + p for s, p in rows)}) × "
            f"{a.seeds} seed(s) (0..{a.seeds - 1}) × {a.trials} trials; {len(done)} of {len(plan)} runs "
            "finished with a result"
            + ("" if len(plan) == len(results) else f" ({len(plan) - len(results)} not run yet)")
        )
        full = (
            len(a.task_list) == 3
            and a.seeds >= 5
            and a.trials >= 32
            and set(a.searcher_list) == set(SEARCHERS)
        )
        header = {
            "Machine": machine(),
            "Date": f"{started} → {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "Command": f"`{cmd}`",
            "Grid": grid
            + (
                ""
                if full and len(done) == len(plan)
                else " — a REDUCED grid, not the full 3 tasks × 4 searchers × 5 seeds × 32 trials"
            ),
            "Wall time": f"{wall / 60:.1f} min in all",
            "Per-trial cost": (
                f"median trial wall time {_fmt(trial_cost[0], '.1f')} s (IQR {_fmt(trial_cost[1], '.1f')}–"
                f"{_fmt(trial_cost[2], '.1f')}), of which optimisation {_fmt(train_cost[0], '.1f')} s; "
                f"{a.parallel} trials at a time"
            ),
            "Trials": (
                f"{a.steps} steps (`training.total_steps`), `training.eval_every={max(50, a.steps // 2)}`, "
                f"cap `training.max_minutes={a.max_minutes}`, `search.seed_reruns=0`, rule proposer, "
                "the experiment's size budget (MPM ≥ 50×, fly-eye ≥ 20×)"
            ),
            "Space": (
                "the experiment's search space as shipped"
                if a.search_steps
                else "the experiment's search space without `total_steps` (every trial trains the same schedule)"
            ),
            "Objective": "held-out R² (`holdout_r2`) of trials with status ok / early_stopped, best so far in node order",
            "Target": "per task, the median over all its runs of the best after "
            f"{max(a.budget_list)} trials; trials to target = first trial whose best reaches it",
            "Code": code_state(),
            "Runs": f"{runs_dir} (not committed)",
        }
        md_path.write_text(markdown(results, a.budget_list, header=header))
        csv_path.write_text(csv_rows(results))
        if done:
            from inr_tune.plots import save_figure

            save_figure(figure(results, a.trials), png_path, dpi=90)

    print(f"{len(plan)} runs of {a.trials} trials; run directories in {runs_dir}", flush=True)
    try:
        for i, (task, searcher, proposer, seed) in enumerate(plan, 1):
            label = searcher if proposer == "rule" else f"{searcher}+{proposer}"
            if searcher in skip:
                r = {
                    "task": task.name,
                    "searcher": label,
                    "proposer": proposer,
                    "seed": seed,
                    "trace": None,
                    "note": skip[searcher],
                }
            else:
                extra = [*sets]
                if task.experiment in spaces:
                    extra.append(f"search.space={spaces[task.experiment]}")
                r = run_one(
                    task,
                    searcher,
                    seed,
                    proposer=proposer,
                    trials=a.trials,
                    parallel=a.parallel,
                    sets=extra,
                    run_dir=runs_dir / task.name / label / f"seed{seed}",
                    with_key=key_problem is None,
                    reuse=a.reuse or a.no_run,
                    run_missing=not a.no_run,
                )
            results.append(r)
            if r.get("trace") is None:
                print(f"[{i}/{len(plan)}] {task.name} {label} seed {seed}: {r['note']}", flush=True)
            else:
                tr = r["trace"]
                bests = ", ".join(
                    f"@{k} {fmt_r2(best_at(tr, k))}" for k in a.budget_list if k <= len(tr)
                )
                print(
                    f"[{i}/{len(plan)}] {task.name} {label} seed {seed}: {r['trials']} trials "
                    f"({r['ok_trials']} ok), best {bests}; block {_fmt(r['block_wall_s'], '.0f')} s, "
                    f"trial {_fmt(r['trial_wall_s'], '.1f')} s (median)",
                    flush=True,
                )
            write()
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", flush=True)
        write()
        return 130
    write()
    wall = time.perf_counter() - t_start
    print(f"done in {wall / 60:.1f} min: {md_path}, {png_path}, {csv_path}; runs in {runs_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
