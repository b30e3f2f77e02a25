"""Fidelity per byte on a CPU: the best INR of a size-budgeted block against PCA, ZFP, SZ3.

    python benchmarks/pareto.py                                   # 6 windows × budgets 20, 100
    python benchmarks/pareto.py --windows F@400,stimulus@1000 --budgets 20
    python benchmarks/pareto.py --quick                           # ~2 min smoke run (F@400, 20×)
    python benchmarks/pareto.py --runs runs/pareto --reuse        # re-read finished runs only

For each window (MPM fields F, Jp, C, S at 400 frames; the fly-eye stimulus at 1000 and
10000 frames) and each budget of ``--budgets``, one search block runs as a subprocess:

    python -m inr_tune.block --experiment mpm|flyvis --field F --frames 400 --min-ratio 20
        --iterations 8 --parallel 4 --proposer rule --out <runs>/F@400_r20 [--set ...]

Every trial of the block has a compression ratio (window values / trainable parameters)
≥ the budget; configs under it are refused before they run. From the run's journal, the
best node at ratio ≥ budget (``inr_tune.reports.pareto.best_in_budget``: highest held-out
R², i.e. on the frames the INR never trained on) gives the row's INR: variant, ratio,
held-out R², training time. Beside it, the held-out R² of PCA, ZFP and SZ3 at that same
ratio (``baseline_at`` on ``inr_tune.baselines.load_or_compute`` of the run's dataset and
window, interpolated in (log ratio, nines) along each method's front; "–" where a method
does not reach the ratio), the best of them, and Δ nines = nines(INR) − nines(best
baseline), with nines(x) = −log10(1 − x) (capped at 9 by ``inr_tune.baselines.nines``).
A negative Δ means the INR is behind; such rows are reported as they are.

A block that exits non-zero is a row with its one-line error (the last line of its
stderr); the other blocks still run. Each block's output is shown indented as it runs and
kept in ``<run>/block.log`` (stdout) and ``<run>/block.err`` (stderr).

Writes ``benchmarks/results/pareto_cpu.md`` (machine, torch, date, total wall time, the
table) and ``pareto_cpu.csv`` beside it; ``--quick`` writes ``pareto_cpu_quick.md/.csv``
instead, so a smoke run does not overwrite a full one (``--md PATH`` chooses). The run
directories (journal, baselines.csv, pareto.png, trials) stay in ``--runs`` (default: a
new temporary directory, printed at the end).

Timings depend on the machine and on whatever else runs on it: on 2 shared cores, 4
concurrent trials each get half a core.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling pareto_rows.py
from pareto_rows import (
    finished_run,
    fmt_r2,
    markdown,
    read_row,
    table,
    verdict,
    write_csv,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

DEFAULT_WINDOWS = ("F@400", "Jp@400", "C@400", "S@400", "stimulus@1000", "stimulus@10000")
DEFAULT_BUDGETS = (20.0, 100.0)
FLYVIS_FIELDS = ("stimulus",)
#: --quick: one window, one budget, 4 trials, short training (~2 min on 2 busy cores)
QUICK_WINDOW, QUICK_BUDGET, QUICK_ITERATIONS = "F@400", 20.0, 4
QUICK_SETS = ("training.total_steps=600", "training.eval_every=300", "training.max_minutes=1.5")


# ----------------------------------------------------------------------------- windows
def parse_window(text: str) -> tuple[str, int, str]:
    """``"F@400"`` → (field, frames, experiment); the stimulus is flyvis, the rest MPM."""
    m = re.fullmatch(r"\s*([A-Za-z_][\w.-]*)@(\d+)\s*", text)
    if not m or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(
            f"window {text!r} must be FIELD@FRAMES, e.g. F@400 or stimulus@1000"
        )
    field, frames = m.group(1), int(m.group(2))
    return field, frames, "flyvis" if field in FLYVIS_FIELDS else "mpm"


def parse_windows(text: str) -> list[tuple[str, int, str]]:
    items = [w for w in text.split(",") if w.strip()]
    if not items:
        raise argparse.ArgumentTypeError("--windows needs at least one FIELD@FRAMES")
    return [parse_window(w) for w in items]


def positive_ratio(text: str) -> float:
    try:
        b = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a budget must be a number, got {text!r}") from None
    if not (b > 0 and math.isfinite(b)):
        raise argparse.ArgumentTypeError(f"a budget must be a positive number, got {text!r}")
    return b


def run_name(field: str, frames: int, budget: float) -> str:
    return f"{field}@{frames}_r{budget:g}"


# ----------------------------------------------------------------------------- one block
def block_command(
    field: str,
    frames: int,
    experiment: str,
    budget: float,
    out: Path,
    iterations: int,
    parallel: int,
    sets: list[str],
) -> list[str]:
    cmd = [sys.executable, "-m", "inr_tune.block", "--experiment", experiment]
    cmd += ["--field", field, "--frames", str(frames), "--min-ratio", f"{budget:g}"]
    cmd += ["--iterations", str(iterations), "--parallel", str(parallel), "--proposer", "rule"]
    cmd += ["--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _pump(stream: Any, sink: Any, echo: bool) -> None:
    """Copy the child's stdout to ``sink`` line by line, echoing it indented."""
    for line in iter(stream.readline, ""):
        sink.write(line)
        sink.flush()
        if echo:
            print(f"    │ {line.rstrip()}", flush=True)


def run_block(cmd: list[str], out: Path, echo: bool, timeout_min: float | None) -> str | None:
    """Run one block; None when it exited 0, else its one-line error."""
    out.mkdir(parents=True, exist_ok=True)
    log, err_path = out / "block.log", out / "block.err"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as sink, open(err_path, "w") as err_sink:
        sink.write("$ " + shlex.join(cmd) + "\n")
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err_sink,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: a timeout stops all of it
        )
        pump = threading.Thread(target=_pump, args=(proc.stdout, sink, echo), daemon=True)
        pump.start()
        timed_out = False
        try:
            proc.wait(timeout=None if timeout_min is None else timeout_min * 60)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc)
        except KeyboardInterrupt:
            _stop(proc)
            raise
        pump.join(timeout=10)
    if timed_out:
        return f"timed out after {timeout_min:g} min (--timeout); partial run in {out}"
    if proc.returncode == 0:
        return None
    return f"exit {proc.returncode}: {_last_line(err_path) or _last_line(log) or 'no output'}"


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the block's process group (Ray shuts its workers down), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(path: Path) -> str:
    """The error line of a log: its last ``error: …`` line, else its last non-empty line."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    line = (errors or lines or [""])[-1]
    return line[:300]


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/pareto.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--windows",
        type=parse_windows,
        default=None,
        metavar="FIELD@FRAMES,...",
        help=f"windows to run (default {','.join(DEFAULT_WINDOWS)}); stimulus → flyvis, "
        "other fields → mpm",
    )
    p.add_argument(
        "--budgets",
        type=positive_ratio,
        nargs="+",
        default=None,
        metavar="R",
        help="size budgets: least compression ratio of every trial (default 20 100)",
    )
    p.add_argument("--iterations", type=int, default=None, help="trials per block (default 8)")
    p.add_argument("--parallel", type=int, default=4, help="concurrent trials (default 4)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="passed to every block as --set (repeatable)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_WINDOW} at {QUICK_BUDGET:g}× only, --iterations "
        f"{QUICK_ITERATIONS}, --set {' --set '.join(QUICK_SETS)} (before your --set); ~2 min",
    )
    p.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="where the blocks' run directories go, one per window and budget "
        "(default: a new temporary directory)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="a run directory in --runs that already finished (run_end in its journal) is "
        "read, not run again; others are run (an unfinished one gets an error row)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="MIN",
        help="stop a block after MIN minutes and report it as a failed row (default: none)",
    )
    p.add_argument(
        "--md",
        type=Path,
        default=None,
        help="markdown report (default benchmarks/results/pareto_cpu.md, "
        "pareto_cpu_quick.md with --quick); the CSV goes beside it",
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the blocks' output")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.quick:
        windows = a.windows or [parse_window(QUICK_WINDOW)]
        budgets = a.budgets or [QUICK_BUDGET]
        a.iterations = a.iterations or QUICK_ITERATIONS
        a.sets = [*QUICK_SETS, *a.sets]
    else:
        windows = a.windows or [parse_window(w) for w in DEFAULT_WINDOWS]
        budgets = a.budgets or list(DEFAULT_BUDGETS)
        a.iterations = a.iterations or 8
    if a.iterations < 1 or a.parallel < 1:
        p.error("--iterations and --parallel must be ≥ 1")
    if a.timeout is not None and a.timeout <= 0:
        p.error("--timeout must be > 0 minutes")
    if a.reuse and a.runs is None:
        p.error("--reuse needs --runs DIR")
    for s in a.sets:
        if "=" not in s:
            p.error(f"--set {s!r} must be SECTION.KEY=VALUE")
    runs = a.runs or Path(tempfile.mkdtemp(prefix="inr_pareto_"))
    runs = runs.resolve()
    runs.mkdir(parents=True, exist_ok=True)
    md_path = (a.md or RESULTS / ("pareto_cpu_quick.md" if a.quick else "pareto_cpu.md")).resolve()
    csv_path = md_path.with_suffix(".csv")

    jobs = [(f, n, e, b) for (f, n, e) in windows for b in budgets]
    print(
        f"{len(jobs)} block(s): {', '.join(f'{f}@{n}' for f, n, _ in windows)} × budgets "
        f"{', '.join(f'{b:g}×' for b in budgets)}; {a.iterations} trials each, {a.parallel} at "
        f"a time, rule proposer; runs in {runs}",
        flush=True,
    )
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    interrupted = False
    for i, (field, frames, experiment, budget) in enumerate(jobs, start=1):
        window = f"{field}@{frames}"
        out = runs / run_name(field, frames, budget)
        base = {"window": window, "field": field, "n_frames": frames, "experiment": experiment}
        base |= {"budget": budget, "run_dir": str(out)}
        elapsed = (time.perf_counter() - t_start) / 60
        print(
            f"\n[{i}/{len(jobs)}] {window} at ≥ {budget:g}× ({elapsed:.1f} min so far)", flush=True
        )
        t0 = time.perf_counter()
        error: str | None = None
        reused = a.reuse and finished_run(out)
        if reused:
            print(f"    reusing the finished run {out}", flush=True)
        else:
            cmd = block_command(
                field, frames, experiment, budget, out, a.iterations, a.parallel, a.sets
            )
            print(f"    $ {shlex.join(cmd)}", flush=True)
            try:
                error = run_block(cmd, out, not a.quiet, a.timeout)
            except KeyboardInterrupt:
                error, interrupted = "interrupted (Ctrl-C)", True
        wall = time.perf_counter() - t0
        if error is None:
            try:
                row = {**base, **read_row(out, field, frames, budget)}
            except Exception as err:  # an unreadable run is a row, not a crash
                row = {**base, "status": "failed", "error": f"reading the run: {err}"[:300]}
        else:
            row = {**base, "status": "failed", "error": error}
        row["block_wall_s"] = row.get("run_seconds", wall) if reused else wall
        rows.append(row)
        if row["status"] == "ok":
            delta = verdict(row.get("delta_nines"))
            print(
                f"    → {row['variant']} {row['ratio']:.1f}× held-out R² {fmt_r2(row['inr_r2'])}"
                f"; best baseline {row.get('best_baseline') or '–'} "
                f"{fmt_r2(row.get('best_baseline_r2'))}; Δ nines {delta} ({wall / 60:.1f} min)",
                flush=True,
            )
        else:
            print(f"    → {row['status']}: {row.get('error')} ({wall / 60:.1f} min)", flush=True)
        if interrupted:
            print("interrupted: writing the rows so far", flush=True)
            break

    wall_s = time.perf_counter() - t_start
    cmd = shlex.join(["python", "benchmarks/pareto.py", *(sys.argv[1:] if argv is None else argv)])
    md = markdown(rows, cmd, a, wall_s, runs)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(md)
    write_csv(rows, csv_path)
    print()
    print(table(rows))
    ok = sum(r["status"] == "ok" for r in rows)
    print(
        f"\n{len(rows)} row(s), {ok} with an INR, in {wall_s / 60:.1f} min"
        f"\nwrote {_rel(md_path)} and {_rel(csv_path)}"
        f"\nrun directories (journal.jsonl, baselines.csv, pareto.png, block.log): {runs}"
    )
    return 130 if interrupted else 0


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
