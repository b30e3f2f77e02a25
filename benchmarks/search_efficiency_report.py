"""benchmarks/search_efficiency.py's arithmetic and rendering: per-run objective traces,
best-so-far, trials to target, the per-task summary, and the markdown table, plot and CSV
(pure functions; the runs themselves are in search_efficiency.py)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEARCHERS = ("ucb", "random", "tpe", "greedy")
REPO = Path(__file__).resolve().parents[1]
OK_STATUSES = ("ok", "early_stopped")


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
