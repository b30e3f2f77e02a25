"""Search efficiency: the UCB tree against seeded random search, TPE and greedy at equal budget.

    python benchmarks/search_efficiency.py                     # 3 tasks × 4 searchers × 5 seeds × 32 trials
    python benchmarks/search_efficiency.py --quick             # smoke run: stimulus@100, 2 seeds, 8 trials, tiny trainings
    python benchmarks/search_efficiency.py --tasks F@100 --seeds 3
    python benchmarks/search_efficiency.py --proposer llm      # adds the UCB tree with Claude (ANTHROPIC_API_KEY)
    python benchmarks/search_efficiency.py --runs DIR --reuse  # re-read finished runs, run only the missing ones

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
import gc
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SEARCHERS",
    "TASKS",
    "Task",
    "best_at",
    "best_so_far",
    "objective_trace",
    "summarise",
    "trials_to_target",
]

SEARCHERS = ("ucb", "random", "tpe", "greedy")
OK_STATUSES = ("ok", "early_stopped")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Task:
    """One window of one experiment, searched under the experiment's size budget."""

    name: str
    experiment: str
    field: str
    frames: int


TASKS = {
    t.name: t
    for t in (
        Task("F@100", "mpm", "F", 100),
        Task("S@100", "mpm", "S", 100),
        Task("stimulus@100", "flyvis", "stimulus", 100),
    )
}


# ---------------------------------------------------------------------------- pure functions


def objective_trace(df: Any) -> np.ndarray:
    """Objective of each trial of a run's DataFrame in node order: ``holdout_r2`` of trials
    with status ok or early_stopped, NaN for the others (failed, diverged, no number)."""
    if df is None or len(df) == 0:
        return np.zeros(0)
    d = df.sort_values("node")
    held = d["holdout_r2"] if "holdout_r2" in d else np.full(len(d), np.nan)
    vals = np.asarray(
        [
            float(v) if s in OK_STATUSES and _finite(v) else np.nan
            for s, v in zip(d["status"], held, strict=True)
        ],
        dtype=float,
    )
    return vals


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def best_so_far(trace: Sequence[float], n: int | None = None) -> np.ndarray:
    """Running best of ``trace`` (NaN until the first finite value). With ``n``: length
    ``n``, a run that stopped early keeps its last best for the trials it did not run."""
    t = np.asarray(trace, dtype=float)
    out = np.full(len(t), np.nan)
    best = np.nan
    for i, v in enumerate(t):
        if math.isfinite(v) and not (best >= v):  # NaN best: take v
            best = v
        out[i] = best
    if n is not None:
        if len(out) >= n:
            out = out[:n]
        else:
            fill = out[-1] if len(out) else np.nan
            out = np.concatenate([out, np.full(n - len(out), fill)])
    return out


def best_at(trace: Sequence[float], k: int) -> float:
    """Best objective among the first ``k`` trials (NaN when none reached one)."""
    head = np.asarray(trace, dtype=float)[:k]
    head = head[np.isfinite(head)]
    return float(head.max()) if head.size else float("nan")


def trials_to_target(trace: Sequence[float], target: float) -> int | None:
    """Trials (1-based, node order) until the best reaches ``target``; None if never."""
    for i, v in enumerate(np.asarray(trace, dtype=float)):
        if math.isfinite(v) and v >= target:
            return i + 1
    return None


def _quantiles(xs: Sequence[float]) -> tuple[float, float, float]:
    a = np.asarray([x for x in xs if math.isfinite(x)], dtype=float)
    if not a.size:
        return (math.nan, math.nan, math.nan)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return float(q50), float(q25), float(q75)


def summarise(
    runs: Sequence[dict[str, Any]], budgets: Sequence[int]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Targets per task and one summary row per (task, searcher).

    ``runs``: dicts with ``task``, ``searcher``, ``seed`` and ``trace`` (objectives in node
    order); runs without a trace (skipped, errored) are left out. Target of a task: the
    median over all its runs of the best after ``max(budgets)`` trials. Each row: ``n``
    runs, ``best@K`` = (median, q25, q75) per budget K, ``to_target`` = median trials to
    target over runs (a run that never reaches it counts as infinity: ``inf`` when at least
    half never do), ``reached`` runs that reached it.
    """
    top = max(budgets)
    done = [r for r in runs if r.get("trace") is not None and len(r["trace"])]
    targets: dict[str, float] = {}
    for task in dict.fromkeys(r["task"] for r in done):
        finals = [best_at(r["trace"], top) for r in done if r["task"] == task]
        targets[task] = _quantiles(finals)[0]
    rows = []
    keys = dict.fromkeys((r["task"], r["searcher"]) for r in done)
    for task, searcher in keys:
        mine = [r for r in done if r["task"] == task and r["searcher"] == searcher]
        row: dict[str, Any] = {"task": task, "searcher": searcher, "n": len(mine)}
        for k in budgets:
            row[f"best@{k}"] = _quantiles([best_at(r["trace"], k) for r in mine])
        target = targets[task]
        hits = [trials_to_target(r["trace"][:top], target) for r in mine]
        reached = [h for h in hits if h is not None]
        ordered = sorted(float(h) if h is not None else math.inf for h in hits)
        row["to_target"] = float(np.median(ordered)) if math.isfinite(target) else math.nan
        if len(ordered) % 2 == 0 and len(ordered) and math.isinf(ordered[len(ordered) // 2]):
            row["to_target"] = math.inf
        row["reached"] = len(reached)
        row["target"] = target
        row["budget"] = top
        rows.append(row)
    return targets, rows


# ---------------------------------------------------------------------------- formatting


def nines(x: float) -> float:
    """−log10(1 − R²), monotone in R² (negative below R² = 0), capped at 9."""
    if not math.isfinite(x):
        return math.nan
    return min(9.0, -math.log10(max(1.0 - x, 1e-9)))


def fmt_r2(x: Any) -> str:
    """R² with two significant digits past its nines (4 to 9 decimals); – when missing."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    n = nines(x) if x > 0 else 0.0
    return f"{x:.{min(9, max(4, int(n) + 2))}f}"


def fmt_q(q: tuple[float, float, float]) -> str:
    med, lo, hi = q
    if not math.isfinite(med):
        return "–"
    return f"{fmt_r2(med)} [{fmt_r2(lo)}–{fmt_r2(hi)}]"


def fmt_target(row: dict[str, Any]) -> str:
    t = row["to_target"]
    if not isinstance(t, float) or math.isnan(t):
        return "–"
    med = f"> {row.get('budget', '?')}" if math.isinf(t) else f"{t:g}"
    return f"{med} ({row['reached']}/{row['n']})"


def verdicts(rows: list[dict[str, Any]], budgets: Sequence[int]) -> list[str]:
    """Issue 14 §3 per task: UCB ≥ TPE at the two largest budgets, UCB > random at every
    budget (medians over seeds), as measured."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        by = {r["searcher"]: r for r in rows if r["task"] == task}
        if "ucb" not in by:
            out.append(f"- {task}: no UCB runs.")
            continue
        parts = []
        for other, cmp_budgets, op in (
            ("tpe", budgets[-2:], "≥"),
            ("random", budgets, ">"),
            ("greedy", budgets, "≥"),
        ):
            if other not in by:
                parts.append(f"{other}: not run")
                continue
            marks = []
            for k in cmp_budgets:
                u, o = by["ucb"][f"best@{k}"][0], by[other][f"best@{k}"][0]
                ok = u >= o if op == "≥" else u > o
                marks.append(f"@{k} {'yes' if ok else 'NO'} ({fmt_r2(u)} vs {fmt_r2(o)})")
            parts.append(f"UCB {op} {other}: " + ", ".join(marks))
        out.append(f"- {task}: " + "; ".join(parts))
    return out


def machine() -> str:
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs (load average "
        f"{load} at the end), Python {platform.python_version()}, torch {torch}"
    )


def code_state() -> str:
    """The checkout's commit, and whether inr_tune/ had uncommitted changes when it ran."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "inr_tune", "configs", "experiments")
    n = len(dirty.splitlines())
    return f"commit {head}" + (
        f" with {n} uncommitted file(s) under inr_tune/, configs/, experiments/" if n else ""
    )


def markdown(
    runs: list[dict[str, Any]],
    budgets: Sequence[int],
    *,
    header: dict[str, str],
) -> str:
    targets, rows = summarise(runs, budgets)
    lines = ["# Search efficiency: UCB tree vs random, TPE, greedy (issue 14 §2)", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines.append("")
    cols = ["task", "searcher", "runs", *(f"best@{k} median [IQR]" for k in budgets)]
    cols += ["trials to target (reached)", "trial wall s (median)", "block wall s (median)"]
    lines += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        mine = [x for x in runs if x["task"] == r["task"] and x["searcher"] == r["searcher"]]
        tw = _quantiles([x.get("trial_wall_s", math.nan) for x in mine])[0]
        bw = _quantiles([x.get("block_wall_s", math.nan) for x in mine])[0]
        cells = [r["task"], r["searcher"], str(r["n"])]
        cells += [fmt_q(r[f"best@{k}"]) for k in budgets]
        cells += [fmt_target(r), _fmt(tw, ".1f"), _fmt(bw, ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Targets (median over all runs of the task of the best after "
        f"{max(budgets)} trials): " + ", ".join(f"{t} {fmt_r2(v)}" for t, v in targets.items()),
        "",
    ]
    if rows:
        lines += ["Against issue 14 §3's goal (medians over seeds, as measured):", ""]
        lines += verdicts(rows, budgets)
        lines.append("")
    bad = [x for x in runs if x.get("trace") is None]
    if bad:
        lines += ["Runs without a result:", ""]
        lines += [
            f"- {x['task']} {x['searcher']} seed {x['seed']}: {x.get('note', '')}" for x in bad
        ]
        lines.append("")
    return "\n".join(lines)


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if isinstance(x, float) and math.isfinite(x) else "–"


def figure(runs: list[dict[str, Any]], trials: int) -> Any:
    """Best-so-far (held-out R² in nines) vs trials: median line and IQR band per searcher,
    one panel per task (``matplotlib.figure.Figure``, no pyplot)."""
    from matplotlib.figure import Figure

    done = [r for r in runs if r.get("trace") is not None and len(r["trace"])]
    tasks = list(dict.fromkeys(r["task"] for r in done)) or ["(no runs)"]
    fig = Figure(figsize=(5.2 * len(tasks), 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    colours = {"ucb": "tab:blue", "random": "tab:grey", "tpe": "tab:orange", "greedy": "tab:green"}
    x = np.arange(1, trials + 1)
    for ax, task in zip(axes, tasks, strict=True):
        for searcher in dict.fromkeys(r["searcher"] for r in done if r["task"] == task):
            curves = np.array(
                [
                    [nines(v) for v in best_so_far(r["trace"], trials)]
                    for r in done
                    if r["task"] == task and r["searcher"] == searcher
                ]
            )
            with np.errstate(all="ignore"), _quiet_nan():
                med = np.nanmedian(curves, axis=0)
                lo, hi = np.nanpercentile(curves, [25, 75], axis=0)
            c = colours.get(searcher, "tab:purple")
            ax.plot(x, med, color=c, lw=1.8, label=f"{searcher} (n={len(curves)})")
            ax.fill_between(x, lo, hi, color=c, alpha=0.15, lw=0)
        ax.set_title(task)
        ax.set_xlabel("trials (node order)")
        ax.set_ylabel("best held-out R², nines = −log10(1 − R²)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("best so far: median over seeds, band = IQR")
    return fig


class _quiet_nan:
    """Silence numpy's all-NaN slice warnings (a trial index no run has reached yet)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


# ---------------------------------------------------------------------------- CSV


CSV_COLUMNS = (
    "task", "searcher", "proposer", "seed", "trials", "ok_trials", "best_8", "best_16",
    "best_32", "block_wall_s", "run_wall_s", "trial_wall_s", "training_time_s",
    "min_ratio_seen", "note", "trace",
)  # fmt: skip


def csv_rows(runs: list[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in runs:
        row = dict(r)
        tr = r.get("trace")
        row["trace"] = (
            "" if tr is None else ";".join("" if math.isnan(v) else repr(float(v)) for v in tr)
        )
        for k in (8, 16, 32):
            row[f"best_{k}"] = "" if tr is None or len(tr) < k else best_at(tr, k)
        w.writerow(row)
    return buf.getvalue()


# ---------------------------------------------------------------------------- running


def searcher_problem(searcher: str) -> str | None:
    """None when ``search.searcher=<searcher>`` is a known setting, else why not."""
    from inr_tune.errors import InrTuneError
    from inr_tune.settings import settings_from

    try:
        settings_from(None, [f"search.searcher={searcher}"], {})
    except InrTuneError as err:
        return str(err).splitlines()[0]
    return None


def benchmark_space(experiment: str, out: Path) -> Path:
    """The experiment's search space without ``total_steps`` (every trial gets the same
    short schedule), written to ``out/spaces/``; its path."""
    import yaml

    from inr_tune.search.experiment import load_experiment

    exp = load_experiment(experiment)
    spec = str(yaml.safe_load(exp.path.read_text())["space"])
    path = Path(spec)
    if not path.suffix:
        path = REPO / "configs" / "spaces" / f"{spec}.yaml"
    elif not path.is_absolute():
        path = exp.path.parent / path
    raw = yaml.safe_load(path.read_text())
    raw["params"] = {
        k: v for k, v in raw["params"].items() if v.get("key") != "training.total_steps"
    }
    raw["name"] = f"{raw.get('name', experiment)}_fixed_steps"
    path = out / "spaces" / f"{raw['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# The experiment's search space without total_steps: every trial of\n"
        "# benchmarks/search_efficiency.py trains the same short schedule.\n"
        + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    )
    return path


def journal_span(run_dir: Path) -> float:
    """Seconds from the run's first to its last journal line (the block, without Ray's
    start and stop); NaN without a journal."""
    import json

    path = run_dir / "journal.jsonl"
    if not path.is_file():
        return math.nan
    times = []
    for line in path.read_text().splitlines():
        try:
            times.append(float(json.loads(line)["time"]))
        except (ValueError, KeyError, TypeError):
            continue
    return max(times) - min(times) if len(times) > 1 else math.nan


def run_finished(run_dir: Path) -> bool:
    path = run_dir / "journal.jsonl"
    return path.is_file() and '"event":"run_end"' in path.read_text()


def measure(df: Any, run_dir: Path, parallel: int) -> dict[str, Any]:
    trace = objective_trace(df)
    span = journal_span(run_dir)
    col = df.get("wall_time")
    trial_wall = (
        float(np.nanmedian(col.astype(float))) if col is not None and len(col) else math.nan
    )
    tt = df.get("training_time")
    train = float(np.nanmedian(tt.astype(float))) if tt is not None and len(tt) else math.nan
    ok = df[df["status"].isin(OK_STATUSES)] if len(df) else df
    ratio = (
        float(ok["compression_ratio"].min()) if len(ok) and "compression_ratio" in ok else math.nan
    )
    return {
        "trace": trace,
        "trials": len(trace),
        "ok_trials": int(np.isfinite(trace).sum()),
        "block_wall_s": span,
        "trial_wall_s": trial_wall,
        "training_time_s": train,
        "min_ratio_seen": ratio,
    }


def run_one(
    task: Task,
    searcher: str,
    seed: int,
    *,
    proposer: str,
    trials: int,
    parallel: int,
    sets: list[str],
    run_dir: Path,
    with_key: bool,
    reuse: bool,
) -> dict[str, Any]:
    """One block; the run's measures (``trace`` None and a ``note`` when it has none)."""
    from inr_tune import load_run, run_search
    from inr_tune.errors import InrTuneError

    label = searcher if proposer == "rule" else f"{searcher}+{proposer}"
    row: dict[str, Any] = {"task": task.name, "searcher": label, "proposer": proposer, "seed": seed}
    if reuse and run_finished(run_dir):
        df = load_run(run_dir)
        return {**row, **measure(df, run_dir, parallel), "run_wall_s": math.nan, "note": "reused"}
    if (run_dir / "journal.jsonl").exists():
        return {
            **row,
            "trace": None,
            "note": f"{run_dir} holds an unfinished run (use another --runs)",
        }
    items = [*sets, "search.seed_reruns=0"]
    if with_key:
        items.append(f"search.searcher={searcher}")
    t0 = time.perf_counter()
    try:
        df = run_search(
            experiment=task.experiment,
            field=task.field,
            frames=task.frames,
            iterations=trials,
            parallel=parallel,
            blocks=1,
            proposer=proposer,
            seed=seed,
            out=str(run_dir),
            quiet=True,
            set=items,
        )
    except InrTuneError as err:
        return {**row, "trace": None, "note": f"error: {str(err).splitlines()[0]}"}
    except (ImportError, RuntimeError, OSError, ValueError) as err:
        return {**row, "trace": None, "note": f"error: {type(err).__name__}: {err}"[:300]}
    finally:
        gc.collect()
    wall = time.perf_counter() - t0
    return {**row, **measure(df, run_dir, parallel), "run_wall_s": wall, "note": ""}


def read_csv_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a CSV that ``csv_rows`` wrote (traces parsed; numbers as floats)."""
    import csv

    runs = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            r: dict[str, Any] = dict(row)
            tr = row.get("trace") or ""
            r["trace"] = (
                np.array([float(x) if x else math.nan for x in tr.split(";")]) if tr else None
            )
            for k in ("seed", "trials", "ok_trials"):
                r[k] = int(float(row[k])) if row.get(k) else row.get(k)
            for k in ("block_wall_s", "run_wall_s", "trial_wall_s", "training_time_s"):
                r[k] = float(row[k]) if row.get(k) else math.nan
            runs.append(r)
    return runs


def rerender(a: argparse.Namespace) -> int:
    """Rebuild the .md and .png from the .csv (the .md's header lines are kept)."""
    stem = "search_efficiency_quick" if a.quick else "search_efficiency"
    md_path, png_path, csv_path = (a.results / f"{stem}.{x}" for x in ("md", "png", "csv"))
    if not csv_path.is_file():
        print(f"--rerender: no {csv_path}", file=sys.stderr)
        return 2
    runs = read_csv_runs(csv_path)
    header: dict[str, str] = {}
    if md_path.is_file():
        for line in md_path.read_text().splitlines():
            if line.startswith("|"):
                break
            if line.startswith("- ") and ": " in line:
                key, value = line[2:].split(": ", 1)
                header[key] = value
    if a.note:
        header["Note"] = a.note
    trials = max((len(r["trace"]) for r in runs if r["trace"] is not None), default=a.trials)
    budgets = [b for b in a.budget_list if b <= trials] or [trials]
    md_path.write_text(markdown(runs, budgets, header=header))
    if any(r["trace"] is not None for r in runs):
        from inr_tune.plots import save_figure

        save_figure(figure(runs, trials), png_path, dpi=90)
    print(f"rebuilt {md_path} and {png_path} from {csv_path}")
    return 0


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
                    reuse=a.reuse,
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
